"""GUP pins of host mappings over REST (pin_user_pages / unpin_user_pages: what
O_DIRECT, vhost and VFIO do to the VMM's memory), and what a pinned page blocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.kvm_helpers import API, Kvm, kvm_session, mmapped_gmem_vm

pytestmark = pytest.mark.anyio
GM = ["KVM_MEM_GUEST_MEMFD"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
PAGE = 4096
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(tmp_path, profile="guest-memfd", variants=["inplace_conversion"]):
        yield x


async def _unpin(k: Kvm, pin_id: int, status: int = 204) -> None:
    r = await k.c.delete(f"{k.b}/pins/{pin_id}")
    k.check()
    assert r.status_code == status, r.text


async def test_pin_blocks_shared_to_private(k: Kvm) -> None:
    """ "[PATCH v8 00/46] guest_memfd: In-place conversion support" (Ackerley Tng, June
    2026), patch "KVM: guest_memfd: Ensure pages are not in use before conversion":
    shared -> private is EAGAIN while a folio's refcount is above what guest_memfd's
    filemap holds (a GUP pin of a host mapping raises it); error_offset is the first
    such page.  Unpinning lets the conversion through."""
    _, g, map_id = await mmapped_gmem_vm(k)
    p = await k.post(f"/mappings/{map_id}/pin", {"offset": 2 * PAGE + 7, "length": 1}, 201)
    assert (p["map_id"], p["offset"], p["pages"], len(p["pfns"])) == (map_id, 2 * PAGE, 1, 1)
    ext = (await k.get(f"/files/{g}/pages"))["extents"]
    assert [(x["start"], x["refcount"]) for x in ext if x["refcount"]] == [(2, 2)]  # + the pin
    ma2 = f"/files/{g}/memory_attributes2"
    e = await k.post(ma2, {"offset": 0, "size": 4 * PAGE, "attributes": PRIV}, 409)
    assert e["errno"] == "EAGAIN" and "error_offset=0x2000" in e["message"]
    assert e["error_offset"] == 2 * PAGE  # the uapi struct's out field
    await k.post(ma2, {"offset": 0, "size": 2 * PAGE, "attributes": PRIV})
    # a private page cannot be pinned: its fault is SIGBUS, GUP answers EFAULT
    e = await k.post(f"/mappings/{map_id}/pin", {"offset": 0, "length": PAGE}, 409)
    assert e["errno"] == "EFAULT" and "SIGBUS" in e["message"]
    await _unpin(k, p["pin_id"])
    await _unpin(k, p["pin_id"], 404)
    await k.post(ma2, {"offset": 2 * PAGE, "size": 2 * PAGE, "attributes": PRIV})
    ops = [o["op"] for o in (await k.get("/trace"))["ops"]]
    assert "mapping_pin" in ops and "mapping_unpin" in ops


async def test_punched_pinned_page_is_an_orphan_until_unpin(k: Kvm) -> None:
    """truncate_inode_folio drops only the page cache's reference: a pinned page that
    is punched stays allocated (an orphan frame) until unpin_user_pages drops the last
    reference.  The trace replays to the same frames."""
    _, g, map_id = await mmapped_gmem_vm(k)
    p = await k.post(f"/mappings/{map_id}/pin", {"offset": PAGE, "length": PAGE}, 201)
    pfn = p["pfns"][0]
    await k.post(f"/files/{g}/fallocate", {"mode": PUNCH, "offset": PAGE, "len": PAGE})
    ph = (await k.get(f"/phys?start={pfn}&end={pfn + 1}"))["extents"]
    assert ph[0]["state"] == "orphan"
    trace = await k.get("/trace")
    r2 = await k.c.post(API, json={"trace": trace})
    assert r2.status_code == 201, r2.text
    twin = r2.json()["id"]
    theirs = (await k.c.get(f"{API}/{twin}/phys?start={pfn}&end={pfn + 1}")).json()
    assert theirs["extents"][0]["state"] == "orphan"
    await _unpin(k, p["pin_id"])
    ph = (await k.get(f"/phys?start={pfn}&end={pfn + 1}"))["extents"]
    assert ph[0]["state"] == "free"
    r = await k.c.delete(f"{API}/{twin}/pins/{p['pin_id']}")
    assert r.status_code == 204  # the replayed session holds its own pin


async def test_pin_blocks_migration(k: Kvm) -> None:
    """A pinned page cannot move (migrate_folio: the refcount is not the expected one)."""
    _, map_id, _ = await k.shared(4 * PAGE)
    p = await k.post(f"/mappings/{map_id}/pin", {"offset": 0, "length": PAGE}, 201)
    e = await k.post("/migrate_page", {"pfn": p["pfns"][0]}, 409)
    assert e["errno"] == "EBUSY"
    await _unpin(k, p["pin_id"])
    await k.post("/migrate_page", {"pfn": p["pfns"][0]})


async def test_pin_bad_input(k: Kvm) -> None:
    fd, map_id, _ = await k.shared(4 * PAGE)
    e = await k.post(f"/mappings/{map_id}/pin", {"offset": 0, "length": 0}, 409)
    assert e["errno"] == "EINVAL"
    e = await k.post(f"/mappings/{map_id}/pin", {"offset": 3 * PAGE, "length": 2 * PAGE}, 409)
    assert e["errno"] == "EFAULT" and "SIGSEGV" in e["message"]  # past the mapping
    await k.post(f"/files/{fd}/ftruncate", {"length": 2 * PAGE})
    e = await k.post(f"/mappings/{map_id}/pin", {"offset": 3 * PAGE, "length": PAGE}, 409)
    assert e["errno"] == "EFAULT" and "SIGBUS" in e["message"]  # past the file's end
    e = await k.post(f"/mappings/{map_id}/pin", {"offset": 0, "length": 1 << 40}, 413)
    assert "max_pin_pages" in e["message"]
    await k.post(f"/mappings/{2**40}/pin", {"offset": 0, "length": PAGE}, 404)
    await k.post("/mappings/99/pin", {"offset": 0, "length": PAGE}, 404)
    await k.post(f"/mappings/{map_id}/pin", {"offset": -1, "length": PAGE}, 422)
    await k.post(f"/mappings/{map_id}/pin", {"offset": 0}, 422)
    await _unpin(k, 12345, 404)
    await _unpin(k, 2**62, 404)
