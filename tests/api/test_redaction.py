"""A session's id is its only credential: no log line carries it whole (issue 10, 9)."""

from __future__ import annotations

import json
import logging

import pytest

from app import redact
from app.settings import Settings
from tests.api.helpers import new_session, running, with_

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"


async def test_no_log_line_carries_a_whole_session_id(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.service import ops

    def boom(m: object, a: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(ops.OPS, "close", ops.OPS["close"].__class__("close", ops.FdArgs, boom))
    async with running(with_(settings, log_requests=True)) as (_, c):
        with caplog.at_level(logging.INFO):
            sid = await new_session(c)
            await c.post(f"{API}/{sid}/memfds", json={})
            await c.get(f"/s/{sid}")
            await c.get(f"/s/{sid}/diff")
            r = await c.post(f"{API}/{sid}/files/3/close")
            assert r.status_code == 409 and r.json()["errno"] == "EIO"
            await c.delete(f"{API}/{sid}")
    ours = [r for r in caplog.records if r.name.startswith("sealscope")]  # not httpx's
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in ours)
    assert "unexpected error" in text and f"/s/{sid[:8]}~/diff" in text
    assert sid[:8] in text and sid not in text
    lines = [json.loads(r.getMessage()) for r in ours if r.name == "sealscope.access"]
    assert {x["session"] for x in lines if x["path"].startswith("/s/")} == {sid[:8]}


def test_redacted_paths() -> None:
    sid = "A" * 32
    assert redact.path(f"/api/v1/sessions/{sid}/files/3") == "/api/v1/sessions/AAAAAAAA~/files/3"
    assert redact.path(f"/s/{sid}") == "/s/AAAAAAAA~"
    assert redact.path("/api/v1/sessions") == "/api/v1/sessions"
    assert redact.path("/api/v1/scenarios/rfc-lifecycle") == "/api/v1/scenarios/rfc-lifecycle"
