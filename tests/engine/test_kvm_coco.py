"""Confidential VMs through the Python face: the page's life and its arch hooks,
populate with its measurement (checked against an independent SHA-384 with
hashlib), launch finish, pre-fault after it."""

from __future__ import annotations

import hashlib
import struct

import pytest

from app.engine import Config, EngineError, Machine

GMEM = ["KVM_MEM_GUEST_MEMFD"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
PAGE = 4096


def confidential(vm_type: str, pages: int = 8) -> tuple[Machine, int, int]:
    m = Machine(Config(profile="guest-memfd", phys_pages=4096))
    vm = m.vm_create("cvm", vm_type)
    m.vcpu_create(vm)
    g = m.vm_guest_memfd(vm, pages * PAGE)
    m.set_user_memory_region(vm, 0, GMEM, 0, pages * PAGE, 0, guest_memfd=g)
    return m, vm, g


def snp_digest(pages: list[tuple[int, bytes]]) -> str:
    """SNP ABI spec PAGE_INFO chain, as sev-snp-measure computes it."""
    ld = bytes(48)
    for gpa, content in pages:
        info = ld + hashlib.sha384(content).digest()
        info += struct.pack("<HBBBBBBQ", 0x70, 1, 0, 0, 0, 0, 0, gpa)
        assert len(info) == 0x70
        ld = hashlib.sha384(info).digest()
    return ld.hex()


def tdx_mrtd(pages: list[tuple[int, bytes]]) -> str:
    """TDX module: TDH.MEM.PAGE.ADD then TDH.MR.EXTEND per 256 bytes, one SHA-384."""
    h = hashlib.sha384()
    for gpa, content in pages:
        h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", gpa) + bytes(104))
        for off in range(0, PAGE, 256):
            h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", gpa + off) + bytes(104))
            h.update(content[off : off + 256])
    return h.hexdigest()


def data(n: int, seed: int) -> bytes:
    return bytes((seed + i * 13) & 0xFF for i in range(n * PAGE))


def lives(m: Machine, fd: int) -> list[tuple[int, int, str, str | None]]:
    runs, _ = m.page_runs(fd)
    return [(r.start, r.end, r.state, r.life) for r in runs]


@pytest.mark.parametrize(
    ("vm_type", "add", "reclaim"),
    [
        ("KVM_X86_SNP_VM", "snp_rmp_assign", "snp_rmp_reclaim"),
        ("KVM_X86_TDX_VM", "tdx_sept_add", "tdx_sept_remove"),
    ],
)
def test_page_life_and_hooks(vm_type: str, add: str, reclaim: str) -> None:
    m, vm, g = confidential(vm_type)
    m.fallocate(g, ["FALLOC_FL_KEEP_SIZE"], 0, PAGE)
    assert lives(m, g)[0] == (0, 1, "present", "allocated")
    m.set_memory_attributes(vm, 0, PAGE, PRIV)
    r = m.vcpu_access(vm, 0, 0, private=True)
    ev = m.events(m.event_count - 1, 1)[0]
    assert [(c.fn, c.start, c.end) for c in ev.callbacks] == [(add, r.pfn, r.pfn + 1)]
    assert lives(m, g)[0] == (0, 1, "present", "prepared")
    m.fallocate(g, ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], 0, PAGE)
    ev = m.events(m.event_count - 1, 1)[0]
    assert (reclaim, r.pfn, r.pfn + 1) in [(c.fn, c.start, c.end) for c in ev.callbacks]
    assert lives(m, g)[0][2:] == ("hole", None)
    m.check()


@pytest.mark.parametrize("vm_type", ["KVM_X86_SNP_VM", "KVM_X86_TDX_VM"])
def test_populate_measures_in_order(vm_type: str) -> None:
    m, vm, _g = confidential(vm_type)
    m.set_memory_attributes(vm, 0, 4 * PAGE, PRIV)
    a, b = data(2, 1), data(1, 7)
    assert m.launch_update(vm, 2 * PAGE, a).pages == 2
    assert m.launch_update(vm, 0, b) == (1, PAGE, 0)
    done = [(2 * PAGE, a[:PAGE]), (3 * PAGE, a[PAGE:]), (0, b)]
    before = m.launch_info(vm)
    assert before.state == "init" and before.pages == 3
    if vm_type == "KVM_X86_SNP_VM":
        assert before.measurement == snp_digest(done)
    else:
        assert before.measurement is None  # MRTD: after TDH.MR.FINALIZE
    m.launch_finish(vm)
    info = m.launch_info(vm)
    want = snp_digest(done) if vm_type == "KVM_X86_SNP_VM" else tdx_mrtd(done)
    assert info == ("finalized", 3, want)
    assert m.vcpu_access(vm, 0, 2 * PAGE + 9, private=True).value == a[9]
    m.check()


def test_populate_errors_in_kvm_gmem_populate_order() -> None:
    m, vm, g = confidential("KVM_X86_SNP_VM")
    with pytest.raises(EngineError) as ei:
        m.launch_update(vm, 0, data(1, 0))
    assert ei.value.name == "EINVAL" and "not private" in ei.value.message
    assert ei.value.op == "KVM_SEV_SNP_LAUNCH_UPDATE"
    assert lives(m, g)[0][3] == "allocated"  # allocated before the attribute check
    m.set_memory_attributes(vm, 0, 2 * PAGE, PRIV)
    m.launch_update(vm, 0, data(1, 0))
    with pytest.raises(EngineError) as ei:
        m.launch_update(vm, 0, data(1, 0))
    assert ei.value.name == "EEXIST"
    # SNP: pages done, then a shared gfn: success with the rest
    assert m.launch_update(vm, PAGE, data(2, 0)) == (1, 2 * PAGE, PAGE)
    m.check()


def test_pre_fault_only_after_the_launch() -> None:
    m, vm, g = confidential("KVM_X86_TDX_VM")
    m.set_memory_attributes(vm, 0, 8 * PAGE, PRIV)
    with pytest.raises(EngineError) as ei:
        m.pre_fault_memory(vm, 0, 0, 8 * PAGE)
    assert ei.value.name == "EOPNOTSUPP"
    m.launch_finish(vm)
    assert m.pre_fault_memory(vm, 0, 0, 8 * PAGE) == (8 * PAGE, 0)
    assert lives(m, g) == [(0, 8, "present", "prepared")]
    with pytest.raises(EngineError) as ei:
        m.launch_update(vm, 0, data(1, 0))
    assert ei.value.name == "EINVAL" and ei.value.op == "KVM_TDX_INIT_MEM_REGION"
    m.check()
