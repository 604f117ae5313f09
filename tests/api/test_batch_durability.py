"""A batch is durable all or nothing: SIGKILL of the service in the middle of batches
keeps every op of each acknowledged batch, and none of an unacknowledged one half."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx

from app.engine import Config
from app.session import Session
from app.settings import Settings
from app.store import Store
from tests.api.helpers import Server

API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
SIZE = 2000


def _batch(k: int) -> list[dict[str, Any]]:
    """Batch k: its ops carry k in their offsets, so the store shows whose they are."""
    return [
        {
            "op": "fallocate",
            "args": {
                "fd": 3,
                "mode": PUNCH if i % 2 else [],
                "offset": (k * 7 + i % 64) * 4096,
                "len": 4096,
            },
        }
        for i in range(SIZE)
    ]


def _drive(url: str, sid: str, acked: list[int], sent: list[int]) -> None:
    """Batches until the server dies (one is always on its way then)."""
    with httpx.Client(base_url=url, timeout=10) as c:
        k = 0
        while k < 200:
            sent.append(k)
            try:
                r = c.post(f"{API}/{sid}/ops", json={"ops": _batch(k)})
            except httpx.HTTPError:
                return
            assert r.status_code == 200, r.text
            acked.append(k)
            k += 1


def test_sigkill_mid_batch_is_all_or_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data).start()
    with httpx.Client(base_url=server.url) as c:
        sid = c.post(API, json={}).json()["id"]
        setup = [
            {"op": "memfd_create", "args": {"name": "vm0"}},
            {"op": "ftruncate", "args": {"fd": 3, "length": 1 << 24}},
        ]
        assert c.post(f"{API}/{sid}/ops", json={"ops": setup}).json()["seq"] == 2
    acked: list[int] = []
    sent: list[int] = []
    t = threading.Thread(target=_drive, args=(server.url, sid, acked, sent))
    t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the next batch is on its way
    server.kill()
    t.join(timeout=30)
    assert len(acked) >= 3 and sent[-1] not in acked  # killed with a batch in flight

    ops = next(s for s in Store(data / "sealscope.db").load() if s.id == sid).ops
    body = ops[2:]
    assert len(body) % SIZE == 0  # whole batches only
    stored = [body[i * SIZE].args_dict()["offset"] // 4096 // 7 for i in range(len(body) // SIZE)]
    # every acknowledged batch, in order; the one in flight entirely or not at all
    assert stored in (acked, [*acked, sent[-1]])
    for i, k in enumerate(stored):
        got = [o.args_dict() for o in body[i * SIZE : (i + 1) * SIZE]]
        assert got == [w["args"] for w in _batch(k)]
    session = Session(sid, Config(), Settings(), 0.0)
    assert session.load(ops) == []
    session.machine.check()
