"""GET /api/v1/history over REST: each design's story replayed as a batch on a session
of that design gives the errno the history screen shows, op by op (the screen plays
the real service, no answer is written in), the in-place proposal's column included."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from tests.api.helpers import running

pytestmark = pytest.mark.anyio
API = "/api/v1"


async def test_each_column_replays_over_rest(tmp_path: Path) -> None:
    settings = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    async with running(settings) as (app, c):
        r = await c.get(f"{API}/history")
        assert r.status_code == 200
        h = r.json()
        for d in h["designs"]:
            assert d["available"], d["key"]
            cfg = {"profile": d["profile"], "variants": d["variants"], "phys_pages": 4096}
            sid = (await c.post(f"{API}/sessions", json=cfg)).json()["id"]
            ops = [
                o
                for ch in h["chapters"]
                for cell in ch["cells"]
                if cell["design"] == d["key"]
                for o in cell["ops"]
            ]
            body = {"ops": [{"op": o["op"], "args": o["args"]} for o in ops]}
            got = await c.post(f"{API}/sessions/{sid}/ops", json=body)
            assert got.status_code == 200, got.text
            app.state.registry.get(sid).machine.check()
            errnos = [x["errno"] for x in got.json()["results"]]
            assert errnos == [o["errno"] for o in ops], d["key"]
            if d["key"] == "in-place":
                assert errnos.count("EAGAIN") == 1 and errnos.count(None) == len(ops) - 1
                conv = [o for o in ops if o["op"] == "set_memory_attributes2"]
                assert len(conv) == 4
