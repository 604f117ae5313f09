"""app/service/view_answers.py: the pages answer formatted as bytes is, byte for byte,
the Pages model serialised (as the route answered before), over holes, small and huge
pages, locked, dirty and mapped pages, waiters, guest_memfd pages with their life, a
`next`, and through the route itself."""

from __future__ import annotations

import httpx
import pytest

from app.engine import Config, Machine, PageRun
from app.models.views import PageExtent, Pages
from app.service.view_answers import pages_json

PAGE = 4096
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


def model_bytes(runs: list[PageRun], nxt: int | None) -> bytes:
    """The answer the route built before: a validated PageExtent a run, then Pages."""
    extents = [
        PageExtent(
            start=r.start,
            end=r.end,
            state=r.state,
            pfn=r.pfn,
            order=r.order,
            locked=r.locked,
            refcount=r.refcount,
            dirty=r.dirty,
            mapped_by=[str(o) for o in r.mapped_by],
            waiters=r.waiters,
            life=r.life,
        )
        for r in runs
    ]
    model = Pages(extents=extents, next=nxt)
    return Pages.__pydantic_serializer__.to_json(model)


def same(m: Machine, fd: int, start: int = 0, end: int | None = None, limit: int = 1000) -> bytes:
    runs, nxt = m.page_runs(fd, start, end, limit)
    more = nxt if len(runs) >= limit else None
    fast = pages_json(runs, more)
    assert fast == model_bytes(runs, more)
    return fast


def test_memfd_pages_of_every_kind_match_the_model() -> None:
    m = Machine(Config(thp="always", variants=frozenset({"multi_owner"})))
    fd = m.memfd_create("vm0", ["MFD_ALLOW_SEALING"])
    assert same(m, fd) == b'{"extents":[],"next":null}'
    m.add_seals(fd, ["F_SEAL_GUEST"])
    m.ftruncate(fd, 8 << 20)
    kvm, rec = m.owner_create("kvm", "kvm0"), m.owner_create("recorder", "r")
    m.register_guest(fd, kvm)
    m.register_guest(fd, rec)
    m.fallocate(fd, [], 0, 4 << 20)  # two huge pages
    m.fallocate(fd, PUNCH, 5 * PAGE, 3 * PAGE)  # split one: holes among small pages
    m.memslot_create(kvm, fd, 0, 0, 1024)
    m.fault(kvm, 600)  # mapped by the VM
    locked = m.get_lock_pfn(fd, 700, True)  # a locked page
    assert m.fallocate(fd, PUNCH, 700 * PAGE, PAGE)  # waits on it: a waiter
    out = same(m, fd)
    for piece in (b'"state":"hole"', b'"order":9', b'"locked":true', b'"mapped_by":["0"]'):
        assert piece in out, piece
    assert b'"waiters":1' in out and b'"pfn":null' in out
    same(m, fd, 3, 9)
    first = same(m, fd, limit=2)
    assert first.endswith(b'"next":' + str(m.page_runs(fd, 0, None, 2)[1]).encode() + b"}")
    m.put_unlock_pfn(locked.pfn or 0)
    same(m, fd, 690, 710)
    m.check()


def test_guest_memfd_pages_carry_their_life() -> None:
    m = Machine(Config(profile="guest-memfd"))
    fd = m.gmem_create(1 << 20)
    m.fallocate(fd, ["FALLOC_FL_KEEP_SIZE"], 0, 4 * PAGE)
    out = same(m, fd)
    assert b'"life":"' in out
    m.check()


@pytest.mark.anyio
@pytest.mark.parametrize("query", ["", "?start=1&end=6", "?limit=1", "?start=300&end=400"])
async def test_the_route_answers_the_same_bytes(client: httpx.AsyncClient, query: str) -> None:
    s = (await client.post("/api/v1/sessions", json={"phys_pages": 4096})).json()
    b = f"/api/v1/sessions/{s['id']}"
    await client.post(f"{b}/memfds", json={"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]})
    await client.post(f"{b}/files/3/ftruncate", json={"length": 1 << 20})
    await client.post(f"{b}/files/3/fallocate", json={"mode": [], "offset": PAGE, "len": 3 * PAGE})
    r = await client.get(f"{b}/files/3/pages{query}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    runs = [
        PageRun(**{**e, "mapped_by": [int(o) for o in e["mapped_by"]]}) for e in body["extents"]
    ]
    assert runs and r.content == model_bytes(runs, body["next"])
    assert (body["next"] is not None) == ("limit=1" in query)
