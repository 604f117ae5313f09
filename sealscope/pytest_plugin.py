"""The pytest plugin (entry point pytest11 "sealscope").

Fixtures:
  sealscope          a fresh session (sealscope.client.Session), deleted afterwards. Its
                     settings come from `@pytest.mark.sealscope(profile=..., thp=...,
                     variants=[...], phys_pages=...)` or an indirect parametrization
                     (`@pytest.mark.parametrize("sealscope", [{"thp": "always"}],
                     indirect=True)`), the latter winning.
  sealscope_client   the Client they are made with: a server (`--sealscope-url URL` or
                     SEALSCOPE_URL), else an in-process service (needs the engine).
Helper:
  assert_like_kernel(session)  the session's log, op by op, answers as this machine's
                     kernel does (the compare endpoint): fails at the first unexplained
                     divergence, skips where the kernel cannot be asked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from sealscope.client import Client, SealscopeError, Session
from sealscope.models.compare import CompareRow

SETTINGS = ("profile", "phys_pages", "thp", "variants")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sealscope")
    group.addoption(
        "--sealscope-url",
        default=os.environ.get("SEALSCOPE_URL"),
        help="a sealscope server to drive (default: $SEALSCOPE_URL, else in-process)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sealscope(profile=, thp=, variants=, phys_pages=): the sealscope fixture's session",
    )


@pytest.fixture(scope="session")
def sealscope_client(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Client]:
    url = pytestconfig.getoption("sealscope_url")
    if url:
        with Client(url) as c:
            yield c
        return
    from sealscope.local import local_client

    with local_client(tmp_path_factory.mktemp("sealscope") / "data") as c:
        yield c


@pytest.fixture
def sealscope(sealscope_client: Client, request: pytest.FixtureRequest) -> Iterator[Session]:
    wanted: dict[str, Any] = {}
    marker = request.node.get_closest_marker("sealscope")
    if marker is not None:
        wanted.update(marker.kwargs)
    param = getattr(request, "param", None)
    if isinstance(param, dict):
        wanted.update(param)
    unknown = set(wanted) - set(SETTINGS)
    if unknown:
        raise pytest.UsageError(f"sealscope: unknown settings {sorted(unknown)} ({SETTINGS})")
    session = sealscope_client.create_session(**wanted)
    yield session
    with contextlib.suppress(SealscopeError):  # the test may have deleted it itself
        session.delete()


def _row(r: CompareRow) -> str:
    k = r.kernel
    kernel = "not run" if k is None else (k.errno or f"ok {k.value}")
    engine = r.engine.errno or f"ok {r.engine.value}"
    return f"op {r.n} {r.op} {r.args}: engine {engine}, kernel {kernel}"


def assert_like_kernel(session: Session) -> int:
    """The session's log behaves op by op as this machine's kernel (intended differences
    allowed, e.g. F_SEAL_GUEST). Returns the ops compared; fails naming the first op that
    diverges without a reason; skips where the kernel cannot be asked."""
    first, compared = 1, 0
    while True:
        c = session.compare(first=first, limit=5000, only_diverging=True)
        if not c.available:
            pytest.skip(f"the kernel cannot be compared here: {c.reason}")
        compared += c.compared
        bad = [r for r in c.rows if r.status == "diverge"]
        if bad:
            pytest.fail(
                f"{c.unexpected} op(s) diverge from Linux {c.kernel}; the first: {_row(bad[0])}",
                pytrace=False,
            )
        if c.next is None:
            return compared
        first = c.next
