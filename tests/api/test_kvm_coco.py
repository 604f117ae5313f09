"""Confidential VMs over REST: the page's life in the page view, populate (SNP
LAUNCH_UPDATE / TDX INIT_MEM_REGION) with its errnos and measurement, launch
finish, pre-fault after it, and the ops in the log (trace, replay)."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.settings import Settings
from tests.api.helpers import running
from tests.api.kvm_helpers import API, Kvm

pytestmark = pytest.mark.anyio
GM = ["KVM_MEM_GUEST_MEMFD"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
PAGE = 4096


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    settings = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    async with running(settings) as (app, c):
        r = await c.post(API, json={"profile": "guest-memfd"})
        assert r.status_code == 201, r.text
        yield Kvm(app, c, r.json()["id"])


async def _cvm(k: Kvm, type: str, pages: int = 8) -> tuple[str, int]:
    vm = await k.vm(type)
    g = await k.gmem(vm, pages * PAGE)
    await k.region(vm, slot=0, flags=GM, memory_size=pages * PAGE, guest_memfd=g)
    return vm, g


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def snp_digest(pages: list[tuple[int, bytes]]) -> str:
    """SNP ABI spec PAGE_INFO chain (as sev-snp-measure computes it)."""
    ld = bytes(48)
    for gpa, content in pages:
        info = ld + hashlib.sha384(content).digest()
        ld = hashlib.sha384(info + struct.pack("<HBBBBBBQ", 0x70, 1, 0, 0, 0, 0, 0, gpa)).digest()
    return ld.hex()


async def test_page_view_shows_the_life_of_a_page(k: Kvm) -> None:
    vm, g = await _cvm(k, "KVM_X86_SNP_VM")
    await k.post(
        f"/files/{g}/fallocate", {"mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": PAGE}
    )
    ext = (await k.get(f"/files/{g}/pages"))["extents"]
    assert (ext[0]["state"], ext[0]["life"]) == ("present", "allocated")
    await k.post(f"/vms/{vm}/memory_attributes", {"address": 0, "size": PAGE, "attributes": PRIV})
    r = await k.access(vm, 0, private=True)
    ext = (await k.get(f"/files/{g}/pages"))["extents"]
    assert ext[0]["life"] == "prepared" and ext[1]["state"] == "hole" and ext[1]["life"] is None
    events = (await k.get("/events"))["events"]
    cbs = events[-1]["callbacks"]
    assert [(c["fn"], c["start"], c["end"]) for c in cbs] == [
        ("snp_rmp_assign", r["pfn"], r["pfn"] + 1)
    ]
    await k.post(
        f"/files/{g}/fallocate",
        {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": PAGE},
    )
    cbs = (await k.get("/events"))["events"][-1]["callbacks"]
    assert ("snp_rmp_reclaim", r["pfn"], r["pfn"] + 1) in [
        (c["fn"], c["start"], c["end"]) for c in cbs
    ]


async def test_tdx_removes_the_sept_entry_at_each_zap(k: Kvm) -> None:
    """arch/x86/kvm/vmx/tdx.c: a private mapping of a TD is its Secure EPT entry; every
    zap removes it (tdx_sept_remove_private_spte: TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK,
    TDH.MEM.PAGE.REMOVE), not only the free, and the next private fault adds it again
    (tdx_sept_set_private_spte: TDH.MEM.PAGE.AUG).  SNP's RMP entry outlives a zap."""

    for type, add, remove in (
        ("KVM_X86_TDX_VM", "tdx_sept_add", "tdx_sept_remove"),
        ("KVM_X86_SNP_VM", "snp_rmp_assign", "snp_rmp_reclaim"),
    ):
        vm, g = await _cvm(k, type)
        ma = f"/vms/{vm}/memory_attributes"
        await k.post(ma, {"address": 0, "size": PAGE, "attributes": PRIV})
        r = await k.access(vm, 0, private=True)
        span = (r["pfn"], r["pfn"] + 1)
        await k.post(ma, {"address": 0, "size": PAGE, "attributes": []})  # zaps the gfn
        cbs = [
            (c["fn"], c["start"], c["end"])
            for c in (await k.get("/events"))["events"][-1]["callbacks"]
        ]
        life = (await k.get(f"/files/{g}/pages"))["extents"][0]["life"]
        if type == "KVM_X86_TDX_VM":
            assert cbs == [(remove, *span)] and life == "zeroed"
        else:
            assert cbs == [] and life == "prepared"
        await k.post(ma, {"address": 0, "size": PAGE, "attributes": PRIV})
        await k.access(vm, 0, private=True)
        cbs = [
            (c["fn"], c["start"], c["end"])
            for c in (await k.get("/events"))["events"][-1]["callbacks"]
        ]
        assert cbs == ([(add, *span)] if type == "KVM_X86_TDX_VM" else [])
        # a punch of the mapped page: one removal (at the zap), none again at the free
        await k.post(
            f"/files/{g}/fallocate",
            {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": PAGE},
        )
        cbs = [c["fn"] for c in (await k.get("/events"))["events"][-1]["callbacks"]]
        assert cbs.count(remove) == 1


async def test_populate_measure_finish(k: Kvm) -> None:
    vm, _g = await _cvm(k, "KVM_X86_SNP_VM")
    up = f"/vms/{vm}/launch/update"
    src = bytes(range(256)) * 16
    e = await k.post(up, {"gpa": 0, "data_b64": b64(src)}, 409)
    assert e["errno"] == "EINVAL" and "not private" in e["message"]
    assert e["op"] == "KVM_SEV_SNP_LAUNCH_UPDATE"
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0, "size": 2 * PAGE, "attributes": PRIV}
    )
    e = await k.post(up, {"gpa": 0, "data_b64": b64(src[:100])}, 409)
    assert e["errno"] == "EINVAL" and "page aligned" in e["message"]
    r = await k.post(up, {"gpa": 0, "data_b64": b64(src)})
    assert (r["pages"], r["gpa"], r["size"]) == (1, PAGE, 0)
    e = await k.post(up, {"gpa": 0, "data_b64": b64(src)}, 409)
    assert e["errno"] == "EEXIST"
    # one private page done, the next gfn shared: SNP answers 1 with the rest
    r = await k.post(up, {"gpa": PAGE, "data_b64": b64(src * 2)})
    assert (r["pages"], r["gpa"], r["size"]) == (1, 2 * PAGE, PAGE)
    launch = await k.get(f"/vms/{vm}/launch")
    assert launch["state"] == "init" and launch["pages"] == 2
    assert launch["measurement"] == snp_digest([(0, src), (PAGE, src)])
    fin = await k.post(f"/vms/{vm}/launch/finish")
    assert fin["state"] == "finalized" and fin["measurement"] == launch["measurement"]
    e = await k.post(f"/vms/{vm}/launch/finish", {}, 409)
    assert e["errno"] == "EIO" and "finalized" in e["message"]
    # the guest reads what was populated
    assert (await k.access(vm, PAGE + 7, private=True))["value"] == src[7]
    # a VM that is not confidential has no launch ops
    sw = await k.vm()
    e = await k.post(f"/vms/{sw}/launch/update", {"gpa": 0, "data_b64": b64(src)}, 409)
    assert e["errno"] == "ENOTTY"
    assert (await k.get(f"/vms/{sw}/launch"))["state"] is None
    await k.post("/vms/77/launch/finish", {}, 404)
    await k.post(up, {"gpa": 0, "data_b64": "not base64!"}, 422)
    e = await k.post(up, {"gpa": 0, "data_b64": b64(bytes((1 << 20) + PAGE))}, 413)
    assert e["limit"] == "max_launch_bytes"


async def test_tdx_pre_fault_after_finalize_and_replay(k: Kvm) -> None:
    vm, g = await _cvm(k, "KVM_X86_TDX_VM")
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0, "size": 8 * PAGE, "attributes": PRIV}
    )
    r = await k.post(f"/vms/{vm}/launch/update", {"gpa": 0, "data_b64": b64(bytes(2 * PAGE))})
    assert r["pages"] == 2
    assert (await k.get(f"/vms/{vm}/launch"))["measurement"] is None  # MRTD: once finalized
    pf = f"/vms/{vm}/vcpus/0/pre_fault_memory"
    e = await k.post(pf, {"gpa": 0, "size": 8 * PAGE}, 409)
    assert e["errno"] == "EOPNOTSUPP"
    fin = await k.post(f"/vms/{vm}/launch/finish")
    assert fin["reported_as"].startswith("TDX MRTD") and len(fin["measurement"]) == 96
    r = await k.post(pf, {"gpa": 0, "size": 8 * PAGE})
    assert (r["gpa"], r["size"]) == (8 * PAGE, 0)
    ext = (await k.get(f"/files/{g}/pages"))["extents"]
    assert [(x["start"], x["end"], x["life"]) for x in ext] == [(0, 8, "prepared")]
    e = await k.post(f"/vms/{vm}/launch/update", {"gpa": 0, "data_b64": b64(bytes(PAGE))}, 409)
    assert e["errno"] == "EINVAL" and e["op"] == "KVM_TDX_INIT_MEM_REGION"
    trace = await k.get("/trace")
    names = [o["op"] for o in trace["ops"]]
    assert "launch_update" in names and "launch_finish" in names
    r2 = await k.c.post(API, json={"trace": trace})
    assert r2.status_code == 201, r2.text
    twin = r2.json()["id"]
    theirs = (await k.c.get(f"{API}/{twin}/vms/{vm}/launch")).json()
    assert theirs == await k.get(f"/vms/{vm}/launch")


async def test_memory_failure(k: Kvm) -> None:
    """virt/kvm/guest_memfd.c kvm_gmem_error_folio: zap, keep (MF_DELAYED); then
    kvm_gmem_get_pfn's -EHWPOISON (KVM_RUN -1/EHWPOISON with a MEMORY_FAULT exit)."""
    vm = await k.vm("KVM_X86_DEFAULT_VM")
    g = await k.gmem(vm, 4 * PAGE, ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"])
    mp = await k.post(
        f"/files/{g}/mmap",
        {
            "offset": 0,
            "length": 4 * PAGE,
            "prot": ["PROT_READ", "PROT_WRITE"],
            "flags": ["MAP_SHARED"],
        },
        201,
    )
    await k.region(
        vm, slot=0, flags=GM, memory_size=4 * PAGE, userspace_addr=mp["addr"], guest_memfd=g
    )
    r = await k.access(vm, PAGE, write=True, value=5)
    assert r["exit"] is None
    e = await k.post("/memory_failure", {"pfn": 2**40}, 409)
    assert e["errno"] == "ENXIO"
    mf = await k.post("/memory_failure", {"pfn": r["pfn"]})
    assert (mf["fd"], mf["index"]) == (g, 1)
    assert (await k.get(f"/vms/{vm}"))["mapped"] == []
    ext = (await k.get(f"/files/{g}/pages"))["extents"]
    assert [x["life"] for x in ext if x["start"] == 1] == ["hwpoison"]
    e = await k.post("/memory_failure", {"pfn": r["pfn"]}, 409)
    assert e["errno"] == "EHWPOISON"
    r2 = await k.access(vm, PAGE)
    assert r2["exit"]["reason"] == "KVM_EXIT_MEMORY_FAULT" and r2["exit"]["errno"] == "EHWPOISON"
    h = await k.post(f"/mappings/{mp['map_id']}/access", {"offset": PAGE})
    assert h["signal"] == "SIGBUS"
    await k.post(
        f"/files/{g}/fallocate",
        {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": PAGE, "len": PAGE},
    )
    # the punch frees the folio, but the hwpoisoned frame stays off the free lists for
    # good (take_page_off_buddy); the index gets a fresh page on another frame
    pfn = r["pfn"]
    ph = (await k.get(f"/phys?start={pfn}&end={pfn + 1}"))["extents"]
    assert [(x["state"], x["fd"]) for x in ph] == [("hwpoison", None)]
    touches = (await k.get("/events"))["events"][-1]["touches"]
    assert "hwpoison_kept" in [t["what"] for t in touches]
    e = await k.post("/memory_failure", {"pfn": pfn}, 409)
    assert e["errno"] == "EHWPOISON"
    r3 = await k.access(vm, PAGE)
    assert r3["exit"] is None and r3["value"] == 0 and r3["pfn"] != pfn
    trace = await k.get("/trace")
    assert "memory_failure" in [o["op"] for o in trace["ops"]]
    r4 = await k.c.post(API, json={"trace": trace})
    assert r4.status_code == 201, r4.text
    twin = (await k.c.get(f"{API}/{r4.json()['id']}/phys?start={pfn}&end={pfn + 1}")).json()
    assert twin["extents"][0]["state"] == "hwpoison"


async def test_no_direct_map_per_frame(tmp_path: Path) -> None:
    """Variant no_direct_map, a proposal ("Direct Map Removal Support for guest_memfd",
    Patrick Roy, v7 Sep 2025): folios leave the direct map after preparation and get
    it back only when freed; the frame view shows it."""
    settings = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    async with running(settings) as (app, c):
        body = {"profile": "guest-memfd", "variants": ["no_direct_map"]}
        r = await c.post(API, json=body)
        assert r.status_code == 201, r.text
        k = Kvm(app, c, r.json()["id"])
        vm, g = await _cvm(k, "KVM_X86_SNP_VM")
        await k.post(
            f"/vms/{vm}/memory_attributes", {"address": 0, "size": PAGE, "attributes": PRIV}
        )
        a = await k.access(vm, 0, private=True)
        pfn = a["pfn"]
        ph = await k.get(f"/phys?start={pfn}&end={pfn + 1}")
        assert ph["extents"][0]["no_direct_map"] is True
        fns = [c["fn"] for c in (await k.get("/events"))["events"][-1]["callbacks"]]
        assert fns == ["snp_rmp_assign", "direct_map_remove"]
        await k.post(
            f"/files/{g}/fallocate",
            {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": PAGE},
        )
        fns = [c["fn"] for c in (await k.get("/events"))["events"][-1]["callbacks"]]
        assert "direct_map_restore" in fns
        ph = await k.get(f"/phys?start={pfn}&end={pfn + 1}")
        assert ph["extents"][0]["no_direct_map"] is False
        d = await k.post("/diff", {"variant": "guest-memfd"})
        assert d["a"]["label"].startswith("proposal, not merged")
