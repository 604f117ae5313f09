"""Write pins over REST: pin_user_pages(FOLL_WRITE | FOLL_LONGTERM) through a VMM mapping
(engine_c/kvm_pin.c).  Without PROT_WRITE EFAULT and nothing pinned; through MAP_SHARED
the page is faulted in for write and dirty; through MAP_PRIVATE the copy is made and
pinned; on a guest_memfd the write pin pins the read pin's page.  A read pin's request,
event and logged args are as they were before the write field.  ss_check runs after
every request (tests/api/kvm_helpers.py)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.kvm_helpers import API, PAGE, Kvm, kvm_session, mmapped_gmem_vm

pytestmark = pytest.mark.anyio
RW = ["PROT_READ", "PROT_WRITE"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(
        tmp_path, profile="guest-memfd", thp="never", variants=["inplace_conversion"]
    ):
        yield x


async def _ram(k: Kvm, prot: list[str], flags: list[str]) -> tuple[int, int]:
    """A 4-page memfd and a mapping of it: fd, map id."""
    fd = (await k.post("/memfds", {"name": "ram"}, 201))["fd"]
    await k.post(f"/files/{fd}/ftruncate", {"length": 4 * PAGE})
    body = {"offset": 0, "length": 4 * PAGE, "prot": prot, "flags": flags}
    return int(fd), int((await k.post(f"/files/{fd}/mmap", body, 201))["map_id"])


async def _pin(k: Kvm, map_id: int, offset: int, length: int, write: bool) -> Any:
    body = {"offset": offset, "length": length, "write": write}
    return await k.post(f"/mappings/{map_id}/pin", body, 201)


async def _unpin(k: Kvm, pin_id: int, base: str | None = None) -> None:
    r = await k.c.delete(f"{base or k.b}/pins/{pin_id}")
    assert r.status_code == 204, r.text


async def _last_event(k: Kvm) -> Any:
    return (await k.get("/events"))["events"][-1]


async def _pages(k: Kvm, fd: int) -> list[Any]:
    return list((await k.get(f"/files/{fd}/pages"))["extents"])


async def _phys(k: Kvm, pfn: int) -> Any:
    return (await k.get(f"/phys?start={pfn}&end={pfn + 1}"))["extents"][0]


async def _used(k: Kvm) -> int:
    return int((await k.get("/phys"))["used"])


async def test_a_write_pin_of_a_read_only_mapping_is_efault(k: Kvm) -> None:
    """check_vma_flags: FOLL_WRITE on a VMA without VM_WRITE (no FOLL_FORCE) is EFAULT,
    before any page is faulted in or pinned."""
    fd, ro = await _ram(k, ["PROT_READ"], ["MAP_SHARED"])
    used = await _used(k)
    e = await k.post(f"/mappings/{ro}/pin", {"offset": 0, "length": 2 * PAGE, "write": True}, 409)
    assert e["errno"] == "EFAULT" and "PROT_WRITE" in e["message"]
    assert "check_vma_flags" in e["message"]
    ev = await _last_event(k)
    assert ev["args"]["write"] == 1 and ev["errno"] == "EFAULT"
    assert await _used(k) == used  # nothing faulted in
    assert all(x["state"] == "hole" for x in await _pages(k, fd))
    # a read pin of it is fine; its event and its logged args carry no write
    p = await _pin(k, ro, 0, PAGE, False)
    ev = await _last_event(k)
    assert ev["args"] == {"map_id": ro, "offset": 0, "length": PAGE}
    ops = (await k.get("/trace"))["ops"]
    assert ops[-1]["op"] == "mapping_pin" and "write" not in ops[-1]["args"]
    assert ops[-2]["args"]["write"] is True  # the refused write pin is logged as asked
    await _unpin(k, p["pin_id"])


async def test_a_shared_write_pin_allocates_and_dirties(k: Kvm) -> None:
    """MAP_SHARED: the write fault allocates a hole as a write touch does and
    fault_dirty_shared_page marks the page dirty; the pin holds a reference."""
    fd, mp = await _ram(k, RW, ["MAP_SHARED"])
    await k.post(f"/mappings/{mp}/access", {"offset": 0, "write": False, "value": 0})
    assert [(x["start"], x["dirty"]) for x in await _pages(k, fd) if x["state"] != "hole"] == [
        (0, False)
    ]
    used = await _used(k)
    p = await _pin(k, mp, 0, 2 * PAGE, True)
    assert p["pages"] == 2 and await _used(k) == used + 1  # page 1 was a hole
    present = [x for x in await _pages(k, fd) if x["state"] != "hole"]
    assert [(x["start"], x["end"], x["dirty"], x["refcount"]) for x in present] == [(0, 2, True, 2)]
    ev = await _last_event(k)
    assert ev["args"]["write"] == 1
    kinds = [t["what"] for t in ev["touches"]]
    assert "alloc" in kinds and "lock" in kinds and "cow" not in kinds
    await _unpin(k, p["pin_id"])
    present = [x for x in await _pages(k, fd) if x["state"] != "hole"]
    assert [(x["dirty"], x["refcount"]) for x in present] == [(True, 1)]


async def test_a_private_write_pin_pins_the_copy(k: Kvm) -> None:
    """MAP_PRIVATE: the write fault breaks COW as a write through the mapping does, and
    the copy is pinned; later writes through the mapping write that copy, never the
    file; munmap leaves the pinned copy an orphan until the unpin frees it.  The trace
    replays to the same frames."""
    fd, mp = await _ram(k, RW, ["MAP_PRIVATE"])
    await k.post(f"/files/{fd}/pwrite", {"offset": 5, "data_b64": base64.b64encode(b"f").decode()})
    file_pfn = (await _pages(k, fd))[0]["pfn"]
    used = await _used(k)
    p = await _pin(k, mp, 0, PAGE, True)
    copy = p["pfns"][0]
    assert copy != file_pfn and await _used(k) == used + 1
    ev = await _last_event(k)
    assert [t["pfn"] for t in ev["touches"] if t["what"] == "cow"] == [copy]
    assert (await _phys(k, copy))["state"] == "cow" and (await _phys(k, copy))["map_id"] == mp
    body = {"offset": 6, "write": True, "value": 0x67}
    assert (await k.post(f"/mappings/{mp}/access", body))["value"] == 0x67
    ev = await _last_event(k)
    assert not [t for t in ev["touches"] if t["what"] == "cow"]  # the pinned copy
    assert await _used(k) == used + 1
    r = await k.post(f"/files/{fd}/pread", {"offset": 5, "count": 2})
    assert base64.b64decode(r["data_b64"]) == b"f\0"  # the file never sees it
    body = {"offset": 5, "write": False, "value": 0}
    assert (await k.post(f"/mappings/{mp}/access", body))["value"] == ord("f")
    trace = await k.get("/trace")
    r2 = await k.c.post(API, json={"trace": trace})
    assert r2.status_code == 201, r2.text
    twin = f"{API}/{r2.json()['id']}"
    theirs = (await k.c.get(f"{twin}/phys?start={copy}&end={copy + 1}")).json()["extents"]
    assert theirs[0]["state"] == "cow"
    assert (await k.c.delete(f"{k.b}/mappings/{mp}")).status_code == 204
    k.check()
    assert (await _phys(k, copy))["state"] == "orphan"
    await _unpin(k, p["pin_id"])
    assert (await _phys(k, copy))["state"] == "free"
    await _unpin(k, p["pin_id"], twin)  # the replayed session holds its own pin


async def test_a_gmem_write_pin_pins_the_read_pins_page(k: Kvm) -> None:
    """guest_memfd mmap is shared only (kvm_gmem_mmap refuses a COW mapping: EINVAL);
    a write pin pins the page a read pin does, and shared -> private is EAGAIN at it."""
    _, g, mp = await mmapped_gmem_vm(k)
    body = {"offset": 0, "length": 4 * PAGE, "prot": RW, "flags": ["MAP_PRIVATE"]}
    assert (await k.post(f"/files/{g}/mmap", body, 409))["errno"] == "EINVAL"
    r = await _pin(k, mp, 2 * PAGE, PAGE, False)
    w = await _pin(k, mp, 2 * PAGE, PAGE, True)
    assert w["pfns"] == r["pfns"]
    ext = [x for x in await _pages(k, g) if x["refcount"]]
    assert [(x["start"], x["refcount"], x["dirty"]) for x in ext] == [(2, 3, True)]
    ma2 = f"/files/{g}/memory_attributes2"
    e = await k.post(ma2, {"offset": 0, "size": 4 * PAGE, "attributes": PRIV}, 409)
    assert e["errno"] == "EAGAIN" and e["error_offset"] == 2 * PAGE
    await _unpin(k, r["pin_id"])
    await _unpin(k, w["pin_id"])
    await k.post(ma2, {"offset": 0, "size": 4 * PAGE, "attributes": PRIV})


async def test_write_must_be_a_bool(k: Kvm) -> None:
    _, mp = await _ram(k, RW, ["MAP_SHARED"])
    await k.post(f"/mappings/{mp}/pin", {"offset": 0, "length": PAGE, "write": "yes"}, 422)
    await k.post(f"/mappings/{mp}/pin", {"offset": 0, "length": PAGE, "write": [1]}, 422)
