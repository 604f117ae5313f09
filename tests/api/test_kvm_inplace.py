"""Variant inplace_conversion over REST: a PROPOSAL, not merged ("[PATCH v8 00/46]
guest_memfd: In-place conversion support", Ackerley Tng, 18 Jun 2026)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.kvm_helpers import Kvm, kvm_session, mmapped_gmem_vm

pytestmark = pytest.mark.anyio
GM = ["KVM_MEM_GUEST_MEMFD"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
PAGE = 4096


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(tmp_path, profile="guest-memfd", variants=["inplace_conversion"]):
        yield x


async def test_shared_to_private_needs_no_extra_reference(k: Kvm) -> None:
    """Patch "Ensure pages are not in use before conversion": shared -> private fails
    with EAGAIN and error_offset at the first page with a reference beyond
    guest_memfd's own; private -> shared takes no such check."""
    vm, g, map_id = await mmapped_gmem_vm(k)
    ma2 = f"/files/{g}/memory_attributes2"
    await k.post(f"/mappings/{map_id}/access", {"offset": 5, "write": True, "value": 0x42})
    held = await k.post(f"/files/{g}/get_lock_pfn", {"index": 1})
    e = await k.post(ma2, {"offset": 0, "size": 4 * PAGE, "attributes": PRIV}, 409)
    assert e["errno"] == "EAGAIN" and "error_offset=0x1000" in e["message"]
    assert e["error_offset"] == PAGE
    await k.post("/put_unlock_pfn", {"pfn": held["pfn"]})
    r = await k.post(ma2, {"offset": 0, "size": 2 * PAGE, "attributes": PRIV})
    assert r["proposal"].startswith("proposal, not merged") and r["error_offset"] == 0
    assert r["extents"] == [{"start": 0, "end": 2, "attributes": PRIV}]
    # the host cannot touch a private page; the guest reads the same bytes in place
    h = await k.post(f"/mappings/{map_id}/access", {"offset": 5})
    assert h["signal"] == "SIGBUS"
    a = await k.access(vm, 5, private=True)
    assert a["exit"] is None and a["value"] == 0x42 and a["backing"] == "private"
    # private -> shared with a hold: no check; content mode ZERO zeroes
    held = await k.post(f"/files/{g}/get_lock_pfn", {"index": 0})
    r = await k.post(
        ma2,
        {
            "offset": 0,
            "size": PAGE,
            "attributes": [],
            "flags": ["KVM_SET_MEMORY_ATTRIBUTES2_MODE_ZERO"],
        },
    )
    await k.post("/put_unlock_pfn", {"pfn": held["pfn"]})
    h = await k.post(f"/mappings/{map_id}/access", {"offset": 5})
    assert (h["signal"], h["value"]) == (None, 0)
    # the VM ioctl no longer takes PRIVATE (v8: PRIVATE lives in guest_memfd)
    e = await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0, "size": PAGE, "attributes": PRIV}, 409
    )
    assert e["errno"] == "EINVAL"
    ops = [o["op"] for o in (await k.get("/trace"))["ops"]]
    assert ops.count("set_memory_attributes2") >= 2


async def test_content_mode_the_arch_cannot_honour(k: Kvm) -> None:
    snp = await k.vm("KVM_X86_SNP_VM")
    g = await k.gmem(snp, 4 * PAGE)
    e = await k.post(
        f"/files/{g}/memory_attributes2",
        {"offset": 0, "size": PAGE, "flags": ["KVM_SET_MEMORY_ATTRIBUTES2_MODE_PRESERVE"]},
        409,
    )
    assert e["errno"] == "EOPNOTSUPP" and "cannot honour" in e["message"]
    for body in (
        {"offset": 1, "size": PAGE},
        {"offset": 0, "size": 0},
        {"offset": 0, "size": 8 * PAGE},
        {"offset": 0, "size": PAGE, "attributes": ["NOPE"]},
        {"offset": 0, "size": PAGE, "flags": ["NOPE"]},
    ):
        e = await k.post(f"/files/{g}/memory_attributes2", body, 409)
        assert e["errno"] == "EINVAL", body
        assert "error_offset" not in e  # the out field comes with EAGAIN only
    await k.post(f"/files/{2**40}/memory_attributes2", {"offset": 0, "size": PAGE}, 404)


async def test_no_such_ioctl_without_the_variant(tmp_path: Path) -> None:
    async for k in kvm_session(tmp_path, profile="guest-memfd"):
        vm = await k.vm()
        g = await k.gmem(vm, 4 * PAGE)
        e = await k.post(f"/files/{g}/memory_attributes2", {"offset": 0, "size": PAGE}, 409)
        assert e["errno"] == "ENOTTY"


async def test_side_by_side_with_todays_guest_memfd(tmp_path: Path) -> None:
    """The diff puts the proposal next to 6.18: the VM's PRIVATE attribute works in
    today's guest_memfd and is EINVAL under in-place conversion (v8)."""
    async for k in kvm_session(tmp_path, profile="guest-memfd"):
        vm = await k.vm()
        g = await k.gmem(vm, 4 * PAGE)
        await k.region(vm, slot=0, flags=GM, memory_size=4 * PAGE, guest_memfd=g)
        await k.post(
            f"/vms/{vm}/memory_attributes", {"address": 0, "size": PAGE, "attributes": PRIV}
        )
        d = await k.post("/diff", {"variant": "inplace_conversion"})
        assert d["b"]["label"].startswith("proposal, not merged")
        assert d["diverging"] >= 1
        row = next(r for r in d["rows"] if r["differs"])
        assert row["op"] == "set_memory_attributes"


async def test_hugetlb_1g_split_and_merge(tmp_path: Path) -> None:
    """Variant hugetlb_1g, a proposal ("[RFC PATCH v2 00/51] 1G page support for
    guest_memfd", May 2025): a 1 GiB folio (order 18) splits to 4 KiB pages when part
    of it converts, and merges back once its range has one attribute again."""
    gib = 1 << 30
    body = {"profile": "guest-memfd", "variants": ["hugetlb_1g"], "phys_pages": 2 * gib // PAGE}
    async for k in kvm_session(tmp_path, **body):
        vm = await k.vm()
        flags = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
        e = await k.post(f"/vms/{vm}/guest_memfd", {"size": gib + PAGE, "flags": flags}, 409)
        assert e["errno"] == "EINVAL"
        g = await k.gmem(vm, gib, flags)
        await k.post(
            f"/files/{g}/fallocate", {"mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": PAGE}
        )
        ext = (await k.get(f"/files/{g}/pages"))["extents"]
        assert [(x["start"], x["end"], x["order"]) for x in ext] == [(0, gib // PAGE, 18)]
        head = ext[0]["pfn"]
        ma2 = f"/files/{g}/memory_attributes2"
        await k.post(ma2, {"offset": 5 * PAGE, "size": PAGE, "attributes": PRIV})
        touches = (await k.get("/events"))["events"][-1]["touches"]
        assert "split" in [t["what"] for t in touches]
        ph = await k.get(f"/phys?start={head}&end={head + gib // PAGE}")
        assert [x["order"] for x in ph["extents"]] == [0]
        await k.post(ma2, {"offset": 5 * PAGE, "size": PAGE, "attributes": []})
        touches = (await k.get("/events"))["events"][-1]["touches"]
        assert "merge" in [t["what"] for t in touches]
        ph = await k.get(f"/phys?start={head}&end={head + gib // PAGE}")
        assert [x["order"] for x in ph["extents"]] == [18]
