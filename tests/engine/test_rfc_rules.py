"""SEMANTICS.md's rfc-v2 rules, one test each, with the invariant checker
run after every operation (the `Checked` wrapper)."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import Config, EngineError, Machine

P = 4096
KEEP = ["FALLOC_FL_KEEP_SIZE"]
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


class Checked:
    """A Machine whose every call is followed by Machine.check()."""

    def __init__(self, **cfg: Any) -> None:
        self.m = Machine(Config(**{"phys_pages": 1 << 14, **cfg}))

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.m, name)
        if not callable(fn):
            return fn

        def call(*a: Any, **kw: Any) -> Any:
            try:
                return fn(*a, **kw)
            finally:
                self.m.check()

        return call


def errno_of(fn: Any, *a: Any) -> str:
    with pytest.raises(EngineError) as e:
        fn(*a)
    return e.value.name


def guest_file(m: Checked, size: int = 8 * P, owner_kind: str = "recorder") -> tuple[int, int]:
    fd = m.memfd_create("vm", ["MFD_ALLOW_SEALING"])
    m.add_seals(fd, ["F_SEAL_GUEST"])
    m.ftruncate(fd, size)
    owner = m.owner_create(owner_kind, "o")
    m.register_guest(fd, owner)
    return fd, owner


def last_callbacks(m: Checked) -> list[tuple[str, int, int]]:
    ev = m.m.events()[-1]
    return [(c.fn, c.start, c.end) for c in ev.callbacks]


# ---- memfd_create ----


@pytest.mark.parametrize(
    "flags,name",
    [(["MFD_NOEXEC_SEAL"], "a"), (["MFD_EXEC"], "a"), ([0x40], "a"), ([], "x" * 250)],
    ids=["noexec-seal-is-6.3", "exec-is-6.3", "unknown-bit", "name-250"],
)
def test_memfd_create_einval(flags: list[Any], name: str) -> None:
    assert errno_of(Checked().memfd_create, name, flags) == "EINVAL"


def test_memfd_without_allow_sealing_starts_sealed() -> None:
    m = Checked()
    fd = m.memfd_create("x" * 249)
    assert m.file(fd).seals == ["F_SEAL_SEAL"]
    assert errno_of(m.add_seals, fd, ["F_SEAL_GUEST"]) == "EPERM"


# ---- F_ADD_SEALS ----


def test_seal_guest_needs_empty_file() -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, 8192)
    with pytest.raises(EngineError) as e:
        m.add_seals(fd, ["F_SEAL_GUEST"])
    assert (e.value.name, e.value.op) == ("EBUSY", "F_ADD_SEALS")
    assert "8192" in e.value.message


@pytest.mark.parametrize("flags", [["MAP_SHARED"], ["MAP_PRIVATE"]])
def test_seal_guest_refused_while_mapped(flags: list[str]) -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    mid = m.mmap(fd, 0, P, ["PROT_READ"], flags)
    assert errno_of(m.add_seals, fd, ["F_SEAL_GUEST"]) == "EBUSY"
    m.munmap(mid)
    m.add_seals(fd, ["F_SEAL_GUEST"])
    assert m.file(fd).seals == ["F_SEAL_GUEST"]


def test_seal_write_refused_by_read_only_shared_map_not_private() -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.mmap(fd, 0, P, ["PROT_READ", "PROT_WRITE"], ["MAP_PRIVATE"])
    mid = m.mmap(fd, 0, P, ["PROT_READ"], ["MAP_SHARED"])
    assert errno_of(m.add_seals, fd, ["F_SEAL_WRITE"]) == "EBUSY"
    m.munmap(mid)
    m.add_seals(fd, ["F_SEAL_WRITE"])


def test_seal_write_refused_while_owner_holds_a_page() -> None:
    m = Checked()
    fd, _ = guest_file(m)
    r = m.get_lock_pfn(fd, 2, True)
    assert errno_of(m.add_seals, fd, ["F_SEAL_WRITE"]) == "EBUSY"
    m.put_unlock_pfn(r.pfn)
    m.add_seals(fd, ["F_SEAL_WRITE"])


def test_unknown_seal_bit_beats_seal_seal() -> None:
    m = Checked()
    fd = m.memfd_create("a")
    assert errno_of(m.add_seals, fd, [0x40]) == "EINVAL"
    assert errno_of(m.add_seals, fd, ["F_SEAL_SHRINK"]) == "EPERM"


# ---- ftruncate ----


@pytest.mark.parametrize(
    "seal,size,new,errno",
    [
        ("F_SEAL_SHRINK", 8192, 4096, "EPERM"),
        ("F_SEAL_GROW", 8192, 12288, "EPERM"),
        ("F_SEAL_GUEST", 0, 4097, "EINVAL"),
        ("F_SEAL_GUEST", 0, -1, "EINVAL"),
    ],
)
def test_ftruncate_refusals(seal: str, size: int, new: int, errno: str) -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, size)
    m.add_seals(fd, [seal])
    assert errno_of(m.ftruncate, fd, new) == errno


def test_shrink_invalidates_each_page_with_inclusive_end() -> None:
    m = Checked()
    fd, _owner = guest_file(m)
    m.fallocate(fd, [], 0, 8 * P)
    m.fallocate(fd, PUNCH, 5 * P, P)  # a hole at 5
    m.ftruncate(fd, 4 * P)
    assert last_callbacks(m) == [
        ("invalidate_page_range", 4, 4),
        ("invalidate_page_range", 6, 6),
        ("invalidate_page_range", 7, 7),
    ]
    assert m.file(fd).nr_pages == 4


# ---- fallocate ----


def test_fallocate_callback_once_end_exclusive() -> None:
    m = Checked()
    fd, owner = guest_file(m)
    m.fallocate(fd, [], 100, 2 * P)  # pages [0, 3)
    assert last_callbacks(m) == [("fallocate", 0, 3)]
    cb = m.m.events()[-1].callbacks[0]
    assert cb.owner_id == owner and cb.end_inclusive is False


@pytest.mark.parametrize(
    "mode,offset,length,errno",
    [
        (["FALLOC_FL_PUNCH_HOLE"], 0, P, "EOPNOTSUPP"),
        ([], -1, P, "EINVAL"),
        ([], 0, 0, "EINVAL"),
        ([], 2**63 - P, 2 * P, "EFBIG"),
        (PUNCH, 1, P, "EINVAL"),
        (PUNCH, 0, P + 1, "EINVAL"),
    ],
    ids=[
        "punch-without-keep",
        "negative-offset",
        "zero-len",
        "efbig",
        "guest-unaligned-offset",
        "guest-unaligned-len",
    ],
)
def test_fallocate_refusals(mode: list[str], offset: int, length: int, errno: str) -> None:
    m = Checked()
    fd, _ = guest_file(m)
    assert errno_of(m.fallocate, fd, mode, offset, length) == errno
    assert m.m.events()[-1].callbacks == []


@pytest.mark.parametrize("seal", ["F_SEAL_WRITE", "F_SEAL_FUTURE_WRITE"])
def test_punch_refused_by_write_seals(seal: str) -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.fallocate(fd, [], 0, 2 * P)
    m.add_seals(fd, [seal])
    assert errno_of(m.fallocate, fd, PUNCH, 0, P) == "EPERM"


def test_grow_seal_refuses_allocation_past_end_even_keep_size() -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, P)
    m.add_seals(fd, ["F_SEAL_GROW"])
    assert errno_of(m.fallocate, fd, KEEP, 0, 2 * P) == "EPERM"
    m.fallocate(fd, KEEP, 0, P)


def test_out_of_frames_gives_back_this_calls_pages_and_no_callback() -> None:
    m = Checked(phys_pages=1024)
    fd, _ = guest_file(m, size=4096 * P)
    m.fallocate(fd, [], 0, 8 * P)
    free = m.phys().free
    assert errno_of(m.fallocate, fd, [], 0, 2000 * P) == "ENOMEM"
    assert m.m.events()[-1].callbacks == []
    assert m.phys().free == free and m.file(fd).nr_pages == 8


def test_partial_punch_zeroes_without_freeing() -> None:
    m = Checked()
    fd = m.memfd_create("a")
    m.pwrite(fd, 0, b"x" * (2 * P))
    m.fallocate(fd, PUNCH, 10, 2 * P - 20)  # no whole page inside
    assert m.file(fd).nr_pages == 2
    data = m.pread(fd, 0, 2 * P)
    assert data[:10] == b"x" * 10 and data[10:-10] == bytes(2 * P - 20) and data[-10:] == b"x" * 10


# ---- read, write, mmap under F_SEAL_GUEST ----


def test_userspace_locked_out_but_read_at_eof_answers_zero() -> None:
    m = Checked()
    fd, _ = guest_file(m, size=2 * P)
    assert errno_of(m.pread, fd, 0, 10) == "EPERM"
    assert m.pread(fd, 2 * P, 10) == b""
    assert errno_of(m.pwrite, fd, 0, b"x") == "EPERM"
    assert errno_of(m.mmap, fd, 0, P, ["PROT_READ"], ["MAP_PRIVATE"]) == "EPERM"


def test_grow_seal_write_past_end_is_short_then_eperm() -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, P)
    m.add_seals(fd, ["F_SEAL_GROW"])
    assert m.pwrite(fd, 4000, b"y" * 200) == 96
    assert errno_of(m.pwrite, fd, P, b"y") == "EPERM"


def test_write_seal_refuses_shared_writable_map_only() -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.add_seals(fd, ["F_SEAL_WRITE"])
    assert errno_of(m.mmap, fd, 0, P, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]) == "EPERM"
    m.mmap(fd, 0, P, ["PROT_READ", "PROT_WRITE"], ["MAP_PRIVATE"])
    assert errno_of(m.pwrite, fd, 0, b"z") == "EPERM"


# ---- memfd_register_guest ----


def test_register_rules() -> None:
    m = Checked()
    fd = m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    a = m.owner_create("kvm", "a")
    b = m.owner_create("recorder", "b")
    assert errno_of(m.register_guest, fd, None) == "EINVAL"
    m.register_guest(fd, a)
    ev = m.m.events()[-1]
    assert ev.ok and ev.hazard == "unsealed_register"  # the RFC does not require the seal
    m.register_guest(fd, a)
    assert errno_of(m.register_guest, fd, b) == "EPERM"
    assert m.file(fd).owners == [a]


# ---- get_lock_pfn / put_unlock_pfn ----


def test_get_lock_pfn_past_end_is_errno_through_pfn() -> None:
    m = Checked()
    fd, _ = guest_file(m, size=2 * P)
    with pytest.raises(EngineError) as e:
        m.get_lock_pfn(fd, 2, True)
    assert e.value.name == "EINVAL" and e.value.hazard == "errno_as_pfn"
    assert m.m.events()[-1].raw == 2**64 - 22


def test_get_lock_pfn_without_alloc_on_hole_is_the_null_oops() -> None:
    m = Checked()
    fd, _ = guest_file(m)
    with pytest.raises(EngineError) as e:
        m.get_lock_pfn(fd, 1, False)
    assert e.value.hazard == "null_page"
    assert m.file(fd).nr_pages == 0


def test_get_lock_pfn_alloc_makes_no_fallocate_callback() -> None:
    m = Checked()
    fd, _ = guest_file(m)
    r = m.get_lock_pfn(fd, 1, True)
    assert r.pfn is not None and r.order == 0 and not r.pending
    assert last_callbacks(m) == []
    run = m.page_runs(fd, 1, 2)[0][0]
    assert (run.locked, run.refcount, run.pfn) == (True, 2, r.pfn)
    m.put_unlock_pfn(r.pfn)
    run = m.page_runs(fd, 1, 2)[0][0]
    assert (run.locked, run.refcount, run.dirty) == (False, 1, True)


def test_put_unlock_pfn_on_unlocked_page_is_vm_bug_on() -> None:
    m = Checked()
    fd, _ = guest_file(m)
    r = m.get_lock_pfn(fd, 0, True)
    m.put_unlock_pfn(r.pfn)
    with pytest.raises(EngineError) as e:
        m.put_unlock_pfn(r.pfn)
    assert e.value.hazard == "vm_bug_on_page"


def test_second_locker_waits_then_gets_the_page() -> None:
    m = Checked()
    fd, _ = guest_file(m)
    first = m.get_lock_pfn(fd, 3, True)
    second = m.get_lock_pfn(fd, 3, True)
    assert second.pending and second.pfn is None
    assert [w.seq for w in m.waiters()] == [second.seq]
    m.put_unlock_pfn(first.pfn)
    wake = m.m.events()[-1]
    assert wake.op == "wake" and wake.wakes_seq == second.seq
    assert m.page_runs(fd, 3, 4)[0][0].locked
    m.put_unlock_pfn(first.pfn)
    assert m.waiters() == []


def test_punch_waits_for_locked_page_and_never_frees_it() -> None:
    m = Checked()
    fd, _owner = guest_file(m)
    m.fallocate(fd, [], 0, 4 * P)
    held = m.get_lock_pfn(fd, 2, False)
    assert m.fallocate(fd, PUNCH, 0, 4 * P) is True  # pending
    ev = m.m.events()[-1]
    assert ev.pending and [c.start for c in ev.callbacks] == [0, 1, 3]
    assert m.file(fd).nr_pages == 1
    assert any(t.what == "wait" for t in ev.touches)
    # a truncate meanwhile sleeps behind the punch on the inode lock
    m.ftruncate(fd, 2 * P)
    assert m.file(fd).size == 8 * P
    m.put_unlock_pfn(held.pfn)
    wakes = [e for e in m.m.events() if e.op == "wake"]
    assert next(w.wakes_seq for w in wakes) == ev.seq
    assert [(c.start, c.end) for c in wakes[0].callbacks] == [(2, 2)]
    assert m.file(fd).nr_pages == 0 and m.file(fd).size == 2 * P
    assert m.phys().used == 0


# ---- huge pages ----


def test_huge_page_order_nine_and_split_with_clamped_ranges() -> None:
    m = Checked(thp="within_size")
    fd, _ = guest_file(m, size=4 << 20)
    m.fallocate(fd, [], 0, 4 << 20)
    runs, _ = m.page_runs(fd)
    assert [(r.start, r.end, r.order) for r in runs] in (
        [(0, 1024, 9)],
        [(0, 512, 9), (512, 1024, 9)],
    )
    r = m.get_lock_pfn(fd, 513, False)
    assert r.order == 9
    m.put_unlock_pfn(r.pfn)
    m.fallocate(fd, PUNCH, 256 * P, 512 * P)  # pages [256, 768)
    assert last_callbacks(m) == [
        ("invalidate_page_range", 256, 511),
        ("invalidate_page_range", 512, 767),
    ]
    assert m.file(fd).nr_pages == 512
    orders = {(r.start, r.order) for r in m.page_runs(fd)[0] if r.state == "present"}
    assert orders == {(0, 0), (768, 0)}


def test_thp_always_allocates_whole_2m_even_for_one_page() -> None:
    m = Checked(thp="always")
    fd = m.memfd_create("a")
    m.fallocate(fd, [], 0, P)
    assert m.file(fd).nr_pages == 512
    m.ftruncate(fd, 0)
    assert m.file(fd).nr_pages == 0


def test_within_size_no_huge_page_past_i_size() -> None:
    m = Checked(thp="within_size")
    fd = m.memfd_create("a")
    m.ftruncate(fd, 1 << 20)
    m.fallocate(fd, [], 0, 1 << 20)
    assert {r.order for r in m.page_runs(fd)[0] if r.state == "present"} == {0}


# ---- owner: the simulated KVM ----


def test_kvm_fault_maps_huge_and_punch_zaps() -> None:
    m = Checked(thp="within_size")
    fd = m.memfd_create("vm", ["MFD_ALLOW_SEALING"])
    m.add_seals(fd, ["F_SEAL_GUEST"])
    m.ftruncate(fd, 4 << 20)
    kvm = m.owner_create("kvm", "kvm0")
    m.memslot_create(kvm, fd, 0x1000, 0, 1024)
    m.fallocate(fd, [], 0, 4 << 20)
    f = m.fault(kvm, 0x1000 + 5)
    assert f.order == 9
    assert m.gfn_runs(kvm)[0].npages == 512
    m.fallocate(fd, PUNCH, 0, P)
    assert m.gfn_runs(kvm) == []
    assert m.owner(kvm).nzapped == 512


def test_fault_outside_memslots_is_efault() -> None:
    m = Checked()
    kvm = m.owner_create("kvm", "k")
    assert errno_of(m.fault, kvm, 7) == "EFAULT"


def test_invalidate_frees_nothing() -> None:
    m = Checked()
    fd, _ = guest_file(m)
    m.fallocate(fd, [], 0, 3 * P)
    cbs = m.invalidate(fd, 1, 5)
    assert [(c.start, c.end) for c in cbs] == [(1, 1), (2, 2)]
    assert m.file(fd).nr_pages == 3


def test_deterministic() -> None:
    def run() -> list[Any]:
        m = Checked(thp="always")
        fd, _ = guest_file(m, size=4 << 20)
        m.fallocate(fd, [], 0, 3 << 20)
        m.fallocate(fd, PUNCH, 4 * P, 600 * P)
        return [(e.op, e.result, e.callbacks, e.touches) for e in m.m.events()]

    assert run() == run()
