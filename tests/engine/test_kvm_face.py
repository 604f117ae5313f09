"""The KVM side through the Python face: u64 values, unknown names, errors, records."""

from __future__ import annotations

import pytest

from app.engine import Config, EngineError, Machine

GMEM = ["KVM_MEM_GUEST_MEMFD"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
U64_MAX = 2**64 - 1


def machine(profile: str = "guest-memfd", thp: str = "never") -> Machine:
    return Machine(Config(profile=profile, phys_pages=4096, thp=thp))


def err(fn, *args, **kw) -> EngineError:  # type: ignore[no-untyped-def]
    with pytest.raises(EngineError) as ei:
        fn(*args, **kw)
    return ei.value


@pytest.fixture
def vm() -> tuple[Machine, int, int]:
    m = machine()
    vm = m.vm_create("vm0", "KVM_X86_SW_PROTECTED_VM")
    m.vcpu_create(vm)
    return m, vm, m.vm_guest_memfd(vm, 1 << 21)


@pytest.mark.parametrize(
    "field", ["guest_phys_addr", "memory_size", "userspace_addr", "guest_memfd_offset"]
)
@pytest.mark.parametrize("value", [2**63, U64_MAX, U64_MAX - 4095])
def test_u64_fields_reach_the_engine(vm: tuple[Machine, int, int], field: str, value: int) -> None:
    m, v, g = vm
    kw = dict(guest_phys_addr=0, memory_size=4096, userspace_addr=0, guest_memfd_offset=0)
    kw[field] = value
    e = err(m.set_user_memory_region, v, 0, GMEM, guest_memfd=g, **kw)
    assert e.name == "EINVAL" and e.op == "KVM_SET_USER_MEMORY_REGION2"
    assert e.seq == m.event_count
    m.check()


def test_unknown_names_are_einval_in_kernel_order(vm: tuple[Machine, int, int]) -> None:
    m, v, _g = vm
    assert err(m.vm_create, "x", "KVM_X86_SEV_VM").name == "EINVAL"
    e = err(m.set_user_memory_region, v, 0, ["KVM_MEM_BOGUS"], 0, 4096, 0, guest_memfd=99)
    assert e.name == "EINVAL" and "check_memory_region_flags" in e.message  # beats EBADF
    assert err(m.set_memory_attributes, v, 0, 4096, ["NOPE"]).name == "EINVAL"
    assert "not supported" in err(m.set_memory_attributes, v, 0, 4096, ["NOPE"]).message
    assert err(m.vm_guest_memfd, v, 4096, ["GUEST_MEMFD_FLAG_BOGUS"]).name == "EINVAL"


def test_conversion_round_trip_and_shared_bytes(vm: tuple[Machine, int, int]) -> None:
    m, v, g = vm
    fd = m.memfd_create("shared")
    m.ftruncate(fd, 1 << 21)
    mid = m.mmap(fd, 0, 1 << 21, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"])
    addr = m.mapping_addr(mid)
    slot = m.set_user_memory_region(v, 0, GMEM, 0, 1 << 21, addr, 0, g)
    assert slot is not None and slot.guest_memfd == g and slot.userspace_addr == addr
    r = m.vcpu_access(v, 0, 0x1234, write=True, value=0x5A)
    assert (r.exit, r.backing, r.fd, r.index, r.value) == (None, "shared", fd, 1, 0x5A)
    assert m.pread(fd, 0x1234, 1) == b"\x5a"
    assert m.mapping_access(mid, 0x1234).value == 0x5A
    m.set_memory_attributes(v, 0x1000, 4096, PRIV)
    assert [(a.start, a.end) for a in m.attr_runs(v)] == [(1, 2)]
    assert m.gfn_runs(v) == []  # the conversion zapped the shared mapping
    r = m.vcpu_access(v, 0, 0x1234)
    assert (r.backing, r.fd, r.value) == ("private", g, 0)
    ex = m.vcpu_access(v, 0, 0x1234, private=False).exit
    assert ex is None  # SW_PROTECTED: the attribute makes the access private
    m.set_memory_attributes(v, 0x1000, 4096, [])
    ex = m.vcpu_access(v, 0, 0x1234, private=True).exit
    assert ex is not None and ex.reason == "KVM_EXIT_MEMORY_FAULT"
    assert (ex.flags, ex.gpa, ex.size, ex.errno) == (
        ["KVM_MEMORY_EXIT_FLAG_PRIVATE"],
        0x1000,
        4096,
        "EFAULT",
    )
    ev = m.events()[-1]
    assert ev.op == "vcpu_access" and [t.what for t in ev.touches] == ["exit"]
    assert m.clone().vm(v).nattr_runs == 0
    m.check()


def test_rfc_profile() -> None:
    m = machine("rfc-v2")
    v = m.vm_create("vm0")
    m.vcpu_create(v)
    assert err(m.vm_guest_memfd, v, 4096).name == "ENOTTY"
    sh, pr = m.memfd_create("shared"), m.memfd_create("private", ["MFD_ALLOW_SEALING"])
    m.add_seals(pr, ["F_SEAL_GUEST"])
    m.ftruncate(sh, 1 << 20)
    m.ftruncate(pr, 1 << 20)
    s = m.set_user_memory_region(v, 0, ["KVM_MEM_FD"], 0, 1 << 20, 0, fd=sh, private_fd=pr)
    assert s is not None and (s.fd, s.private_fd) == (sh, pr)
    ex = m.vcpu_access(v, 0, 0x3000, private=True).exit
    assert ex is not None and ex.type == "KVM_EXIT_MEM_MAP_PRIVATE"
    assert m.events()[-1].hazard == "null_page"
    m.fallocate(pr, [], 0x3000, 4096)
    r = m.vcpu_access(v, 0, 0x3000, private=True, write=True, value=3)
    assert (r.backing, r.fd, r.value) == ("private", pr, 3)
    assert m.set_user_memory_region(v, 0, ["KVM_MEM_FD"], 0, 0, 0, fd=sh, private_fd=pr) is None
    assert err(m.set_user_memory_region, v, 1, ["KVM_MEM_FD"], 0, 4096, 0, fd=2**40).name == "EBADF"
    m.check()


def test_legacy_memslot_and_fault_refuse_a_vm_saying_why() -> None:
    m = machine()
    vm = m.vm_create("vm0")
    g = m.vm_guest_memfd(vm, 4096)
    e = err(m.memslot_create, vm, g, 0, 0, 1)
    assert e.name == "EINVAL" and "KVM_SET_USER_MEMORY_REGION2" in e.message
    e = err(m.fault, vm, 0)
    assert e.name == "EINVAL" and "KVM_RUN" in e.message
    k = m.owner_create("kvm", "legacy")  # a legacy owner still takes them
    assert m.memslot_create(k, m.gmem_create(4096), 0, 0, 1).npages == 1
    m.check()


def test_rfc_errno_as_pfn_hazard_is_on_the_error() -> None:
    m = machine("rfc-v2")
    v = m.vm_create("vm0")
    m.vcpu_create(v)
    sh = m.memfd_create("shared")
    m.ftruncate(sh, 4096)
    m.set_user_memory_region(v, 0, ["KVM_MEM_FD"], 0, 1 << 20, 0, fd=sh)
    e = err(m.vcpu_access, v, 0, 0x5000)  # past the shared file's end
    assert (e.name, e.hazard, e.op) == ("EFAULT", "errno_as_pfn", "KVM_RUN")
    assert "patch 07" in e.message
    m.check()


def test_rfc_get_lock_pfn_alloc_zaps_the_stale_shared_mapping() -> None:
    """The fuzzer's rfc-thp-get-lock-pfn-private.bin: with thp=always, get_lock_pfn
    allocates the private file's 2 MiB folio holding gfn 0 without the fallocate
    callback; the VM's shared mapping of gfn 0 goes and the event says why."""
    m = machine("rfc-v2", thp="always")
    v = m.vm_create("vm0")
    m.vcpu_create(v)
    sh, pr = m.memfd_create("shared"), m.memfd_create("private", ["MFD_ALLOW_SEALING"])
    m.add_seals(pr, ["F_SEAL_GUEST"])
    m.ftruncate(sh, 4 << 20)
    m.ftruncate(pr, 4 << 20)
    m.set_user_memory_region(v, 0, ["KVM_MEM_FD"], 0, 4 << 20, 0, fd=sh, private_fd=pr)
    assert m.vcpu_access(v, 0, 0, write=True, value=7).fd == sh
    got = m.get_lock_pfn(pr, 130, alloc=True)
    assert got.pfn is not None and got.order == 9
    assert m.events()[-1].hazard == "alloc_unnotified"
    m.put_unlock_pfn(got.pfn)
    m.check()
    r = m.vcpu_access(v, 0, 0, private=True)
    assert (r.backing, r.fd, r.value) == ("private", pr, 0)
    m.check()
