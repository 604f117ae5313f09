"""Ops whose work grows with pages: their answers and events stay bounded (the first
4096 callbacks and the total, the rest paged), they run off the event loop, and their
logs replay within the same bounds (restart, trace import, rewind)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.engine import Config, Machine
from app.service.ops import BIG, OPS
from app.settings import Settings
from tests.api.helpers import guest_file, new_session, running

U64 = 2**64 - 1
PAGES = 10_000


async def _big_invalidate(c: httpx.AsyncClient) -> tuple[str, httpx.Response]:
    sid = await new_session(c, phys_pages=16384)
    b = f"/api/v1/sessions/{sid}"
    await guest_file(c, sid, size=PAGES * 4096, kind="recorder")
    r = await c.post(f"{b}/files/3/fallocate", json={"mode": [], "offset": 0, "len": PAGES * 4096})
    assert r.status_code == 200, r.text
    r = await c.post(f"{b}/files/3/invalidate", json={"start": 0, "end": U64})
    assert r.status_code == 200, r.text
    return sid, r


@pytest.mark.anyio
async def test_invalidate_answer_is_bounded_and_pageable(client: httpx.AsyncClient) -> None:
    sid, r = await _big_invalidate(client)
    body = r.json()
    assert len(body["callbacks"]) == 4096
    assert body["callbacks_total"] == PAGES and body["callbacks_kept"] == PAGES
    assert len(r.content) < 600_000
    assert [c["start"] for c in body["callbacks"][:3]] == [0, 1, 2]
    page = await client.get(
        f"/api/v1/sessions/{sid}/events/{body['seq']}/callbacks", params={"first": PAGES - 10}
    )
    got = page.json()
    assert got["total"] == PAGES and got["kept"] == PAGES
    assert [c["start"] for c in got["callbacks"]] == list(range(PAGES - 10, PAGES))


@pytest.mark.anyio
async def test_big_invalidate_replays_on_restart_import_and_rewind(settings: Settings) -> None:
    async with running(settings) as (_, c):
        sid, r = await _big_invalidate(c)
        seq = r.json()["seq"]
        b = f"/api/v1/sessions/{sid}"
        trace = (await c.get(f"{b}/trace")).json()
        imported = await c.post("/api/v1/sessions", json={"trace": trace})
        assert imported.status_code == 201, imported.text
        nops = len(trace["ops"])
        assert (await c.get(f"{b}/at/{nops}")).status_code == 200
        assert (await c.post(f"{b}/rewind", json={"seq": nops})).status_code == 200
    async with running(settings) as (_, c):  # a restart replays the stored log
        ev = (await c.get(f"/api/v1/sessions/{sid}/events", params={"after": seq - 1})).json()
        first = ev["events"][0]
        assert first["op"] == "invalidate" and first["callbacks_total"] == PAGES
        assert len(first["callbacks"]) == 4096


def test_engine_keeps_runs_not_pages() -> None:
    """A page-by-page invalidate of 100,000 contiguous pages adds one record to the
    engine's log, not 100,000 (24 bytes each)."""
    m = Machine(Config("rfc-v2", 1 << 17))
    fd = m.memfd_create("vm", ["MFD_ALLOW_SEALING"])
    m.add_seals(fd, ["F_SEAL_GUEST"])
    m.ftruncate(fd, 100_000 * 4096)
    m.register_guest(fd, m.owner_create("recorder", "r"))
    m.fallocate(fd, [], 0, 100_000 * 4096)
    before = m.memory_bytes()
    cbs = m.invalidate(fd, 0, U64)
    assert len(cbs) == 4096  # the face hands back the first ones, not a list per page
    assert m.memory_bytes() - before < 64 * 1024
    ev = m.events(m.event_count - 1, 1, max_items=0)[0]
    assert (ev.ncallbacks, ev.callbacks_kept) == (100_000, 100_000)
    assert m.event_callbacks(ev.seq, 99_999, 5)[0].start == 99_999


def _big_machine() -> tuple[Machine, int, int]:
    m = Machine(Config("rfc-v2", 8192))
    fd = m.memfd_create("big", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, 4 * BIG * 4096)
    m.fallocate(fd, [], 0, 4 * BIG * 4096)
    map_id = m.mmap(fd, 0, 4096, ["PROT_READ"], ["MAP_SHARED"])
    return m, fd, map_id


HEAVY: list[tuple[str, dict[str, Any]]] = [
    ("ftruncate", {"fd": 3, "length": 0}),
    ("fcntl", {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_WRITE"]}),
    ("close", {"fd": 3}),
    ("munmap", {"map_id": 1}),
    ("invalidate", {"fd": 3, "start": 0, "end": U64}),
    ("fallocate", {"fd": 3, "mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"],
                   "offset": 0, "len": 4 * BIG * 4096}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args"), HEAVY, ids=[h[0] for h in HEAVY])
def test_ops_over_many_pages_run_off_the_loop(name: str, args: dict[str, Any]) -> None:
    m, _, _ = _big_machine()
    spec = OPS[name]
    assert spec.heavy is not None and spec.heavy(m, spec.args.model_validate(args))


@pytest.mark.anyio
async def test_an_events_answer_carries_a_bounded_number_of_callbacks(
    client: httpx.AsyncClient,
) -> None:
    """20 punches of 5,000 pages: each event carries 4,096 callbacks, an answer at most
    65,536 in all (16 events); the rest come with the next page."""
    sid = await new_session(client, phys_pages=8192)
    b = f"/api/v1/sessions/{sid}"
    await guest_file(client, sid, size=5000 * 4096, kind="recorder")
    fill = {"mode": [], "offset": 0, "len": 5000 * 4096}
    punch = {**fill, "mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]}
    for _ in range(20):
        assert (await client.post(f"{b}/files/3/fallocate", json=fill)).status_code == 200
        assert (await client.post(f"{b}/files/3/fallocate", json=punch)).status_code == 200
    got: list[dict[str, Any]] = []
    after, pages = 0, 0
    while True:
        page = (await client.get(f"{b}/events", params={"after": after})).json()["events"]
        if not page:
            break
        assert sum(len(e["callbacks"]) for e in page) <= 1 << 16
        got += page
        after, pages = page[-1]["seq"], pages + 1
    assert pages >= 2  # 20 x 4,096 callbacks do not fit in one answer
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    assert sum(e["callbacks_total"] == 5000 for e in got) == 20
