"""The request log's one-call path (app/middleware.py log_line): the same lines as
through logging, taken by app/cli.py's BatchedStderr without a LogRecord, and through
logging whenever anything else stands on the way."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from app.cli import BatchedStderr
from app.middleware import access, log_line
from app.serving import RateLimitedWarnings
from app.settings import Settings
from tests.api.helpers import new_session, running, with_

pytestmark = pytest.mark.anyio


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def batched() -> Iterator[BatchedStderr]:
    """A BatchedStderr as the access log's only handler (as under `sealscope serve`)."""
    h = BatchedStderr()
    h.addFilter(RateLimitedWarnings())
    h.flush = lambda: None  # type: ignore[method-assign]  # keep the lines to read them
    saved = access.propagate, access.level
    access.addHandler(h)
    access.propagate = False
    access.setLevel(logging.INFO)
    try:
        yield h
    finally:
        access.removeHandler(h)
        access.propagate, access.level = saved


async def test_served_lines_are_taken_whole(settings: Settings, batched: BatchedStderr) -> None:
    assert batched.takes_lines
    async with running(with_(settings, log_requests=True)) as (_, c):
        sid = await new_session(c)
        await c.get(f"/api/v1/sessions/{sid}/files/9")
    lines = [json.loads(x) for x in batched.lines]
    assert [(x["method"], x["status"], x["session"]) for x in lines] == [
        ("POST", 201, sid[:8]),
        ("GET", 404, sid[:8]),
    ]


def test_anything_else_on_the_way_goes_through_logging(
    batched: BatchedStderr, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = '{"method": "GET", "path": "/", "status": 200, "ms": 0.1, "session": null}'
    with monkeypatch.context() as m:
        m.setattr(access, "handle", lambda record: pytest.fail("a LogRecord was made"))
        log_line(line)  # the one-call path: no record
    assert batched.lines == [line]
    other = Records()
    access.addHandler(other)  # a second handler: logging, and both get the line
    try:
        log_line(line)
    finally:
        access.removeHandler(other)
    assert batched.lines == [line, line] and [r.getMessage() for r in other.records] == [line]
    refuse = logging.Filter("elsewhere")  # a logger filter: it decides, here it drops
    access.addFilter(refuse)
    try:
        log_line(line)
    finally:
        access.removeFilter(refuse)
    assert batched.lines == [line, line]
    batched.setFormatter(logging.Formatter("x %(message)s"))  # not plain: formatted
    assert not batched.takes_lines
    log_line(line)
    assert batched.lines[-1] == "x " + line
