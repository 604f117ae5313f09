"""The Python face of the engine (docs/engine-python-face.md).

Errors (one type, errno by name, words naming the rule), views as runs,
event decoding, clones and the machine's lock.  The kernel semantics
themselves are tested against the real kernel and in engine_c/tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

import app.engine._machine as machine_module
from app.engine import (
    Callback,
    Config,
    EngineError,
    Event,
    InvariantError,
    Machine,
    PageRun,
    PfnResult,
)

PAGE = 4096
KEEP = "FALLOC_FL_KEEP_SIZE"
PUNCH = "FALLOC_FL_PUNCH_HOLE"


def memfd(m: Machine, size: int = 0, seals: tuple[str, ...] = ()) -> int:
    fd = m.memfd_create("t", ["MFD_ALLOW_SEALING"])
    if size:
        m.ftruncate(fd, size)
    if seals:
        m.add_seals(fd, seals)
    return fd


def guest_file(m: Machine, pages: int = 4) -> tuple[int, int]:
    """A guest-sealed memfd of `pages` pages with a recorder registered."""
    fd = memfd(m, seals=("F_SEAL_GUEST",))
    m.ftruncate(fd, pages * PAGE)
    owner = m.owner_create("recorder", "rec")
    m.register_guest(fd, owner)
    return fd, owner


# ---- errors ----


def test_error_carries_errno_op_rule_and_event() -> None:
    m = Machine()
    fd = memfd(m, size=8192)
    with pytest.raises(EngineError) as info:
        m.add_seals(fd, ["F_SEAL_GUEST"])
    e = info.value
    assert (e.name, e.errno, e.op) == ("EBUSY", 16, "F_ADD_SEALS")
    assert e.message == "F_SEAL_GUEST needs an empty file (size is 8192)"
    assert e.hazard is None
    assert e.seq == m.event_count
    assert e.to_dict() == {
        "errno": "EBUSY",
        "errno_value": 16,
        "op": "F_ADD_SEALS",
        "message": "F_SEAL_GUEST needs an empty file (size is 8192)",
    }
    ev = m.events(after=e.seq - 1)[0]
    assert (ev.op, ev.ok, ev.errno, ev.errno_value, ev.args) == (
        "F_ADD_SEALS",
        False,
        "EBUSY",
        16,
        {"seals": 0x20},
    )


def test_bad_fd_is_also_a_lookup_error() -> None:
    m = Machine()
    with pytest.raises(LookupError) as info:
        m.close(99)
    assert isinstance(info.value, EngineError)
    assert info.value.name == "EBADF"
    assert "fd 99" in info.value.message
    with pytest.raises(LookupError):
        m.file(99)
    with pytest.raises(LookupError):
        m.owner(5)


Setup = Callable[[Machine], Callable[[], object]]


def _shrink_sealed(m: Machine) -> Callable[[], object]:
    fd = memfd(m, 8192, ("F_SEAL_SHRINK",))
    return lambda: m.ftruncate(fd, 4096)


def _grow_sealed(m: Machine) -> Callable[[], object]:
    fd = memfd(m, 8192, ("F_SEAL_GROW",))
    return lambda: m.ftruncate(fd, 12288)


def _no_sealing(m: Machine) -> Callable[[], object]:
    fd = m.memfd_create("plain")
    return lambda: m.add_seals(fd, ["F_SEAL_GROW"])


def _write_seal_mapped(m: Machine) -> Callable[[], object]:
    fd = memfd(m, 8192)
    m.mmap(fd, 0, PAGE, ["PROT_READ"], ["MAP_SHARED"])
    return lambda: m.add_seals(fd, ["F_SEAL_WRITE"])


def _guest_sealed(m: Machine) -> int:
    fd = memfd(m, seals=("F_SEAL_GUEST",))
    m.ftruncate(fd, 8192)
    return fd


def _second_owner(m: Machine) -> Callable[[], object]:
    fd, _ = guest_file(m)
    other = m.owner_create("kvm", "other")
    return lambda: m.register_guest(fd, other)


def _gmem_machine() -> Machine:
    return Machine(Config(profile="guest-memfd", phys_pages=4096))


RULES: list[tuple[str, Setup, str, str]] = [
    ("shrink-sealed", _shrink_sealed, "EPERM", "F_SEAL_SHRINK forbids shrinking"),
    ("grow-sealed", _grow_sealed, "EPERM", "F_SEAL_GROW forbids growing"),
    ("no-allow-sealing", _no_sealing, "EPERM", "without MFD_ALLOW_SEALING"),
    ("write-seal-mapped", _write_seal_mapped, "EBUSY", "MAP_SHARED mapping exists"),
    (
        "punch-needs-keep-size",
        lambda m: lambda: m.fallocate(memfd(m, 8192), [PUNCH], 0, PAGE),
        "EOPNOTSUPP",
        "FALLOC_FL_PUNCH_HOLE needs FALLOC_FL_KEEP_SIZE",
    ),
    (
        "fallocate-len-0",
        lambda m: lambda: m.fallocate(memfd(m), [], 0, 0),
        "EINVAL",
        "len > 0",
    ),
    (
        "read-guest-sealed",
        lambda m: lambda: m.pread(_guest_sealed(m), 0, 10),
        "EPERM",
        "F_SEAL_GUEST forbids reading",
    ),
    (
        "write-guest-sealed",
        lambda m: lambda: m.pwrite(_guest_sealed(m), 0, b"x"),
        "EPERM",
        "F_SEAL_GUEST forbids write",
    ),
    (
        "mmap-guest-sealed",
        lambda m: lambda: m.mmap(_guest_sealed(m), 0, PAGE, ["PROT_READ"], ["MAP_SHARED"]),
        "EPERM",
        "F_SEAL_GUEST forbids mmap",
    ),
    (
        "guest-size-unaligned",
        lambda m: lambda: m.ftruncate(_guest_sealed(m), 100),
        "EINVAL",
        "multiple of 4096",
    ),
    (
        "register-no-owner",
        lambda m: lambda: m.register_guest(memfd(m), None),
        "EINVAL",
        "needs an owner",
    ),
    ("register-second-owner", _second_owner, "EPERM", "another owner"),
    (
        "get-lock-pfn-past-end",
        lambda m: lambda: m.get_lock_pfn(guest_file(m, 2)[0], 2, True),
        "EINVAL",
        "at or past the end of the file (2 pages)",
    ),
    (
        "name-too-long",
        lambda m: lambda: m.memfd_create("x" * 250),
        "EINVAL",
        "at most 249",
    ),
    (
        "no-guest-memfd-in-rfc",
        lambda m: lambda: m.gmem_create(PAGE),
        "ENOTTY",
        "rfc-v2 profile",
    ),
    (
        "munmap-unknown",
        lambda m: lambda: m.munmap(42),
        "EINVAL",
        "no mapping with id 42",
    ),
    (
        "fault-outside-memslots",
        lambda m: lambda: m.fault(m.owner_create("kvm", "k"), 100),
        "EFAULT",
        "gfn 100 is in no memslot",
    ),
]


@pytest.mark.parametrize(
    ("setup", "errno", "words"), [r[1:] for r in RULES], ids=[r[0] for r in RULES]
)
def test_failures_name_their_rule(setup: Setup, errno: str, words: str) -> None:
    m = Machine()
    call = setup(m)
    with pytest.raises(EngineError) as info:
        call()
    assert info.value.name == errno
    assert words in info.value.message
    assert " failed: " not in info.value.message  # not the generic fallback


GMEM_RULES: list[tuple[str, Callable[[Machine, int], object], str, str]] = [
    ("ftruncate", lambda m, fd: m.ftruncate(fd, PAGE), "EINVAL", "fixed at creation"),
    ("pread", lambda m, fd: m.pread(fd, 0, 1), "ESPIPE", "pread"),
    ("seals", lambda m, fd: m.add_seals(fd, ["F_SEAL_GROW"]), "EINVAL", "no seals"),
    ("mmap", lambda m, fd: m.mmap(fd, 0, PAGE, ["PROT_READ"], ["MAP_SHARED"]), "ENODEV", "MMAP"),
    ("mode-0", lambda m, fd: m.fallocate(fd, [], 0, PAGE), "EOPNOTSUPP", "KEEP_SIZE"),
    ("unaligned", lambda m, fd: m.fallocate(fd, [KEEP], 1, PAGE), "EINVAL", "page-aligned"),
    ("past-end", lambda m, fd: m.fallocate(fd, [KEEP], 0, 4 * PAGE), "EINVAL", "past its end"),
]


@pytest.mark.parametrize(
    ("call", "errno", "words"), [r[1:] for r in GMEM_RULES], ids=[r[0] for r in GMEM_RULES]
)
def test_guest_memfd_failures_name_their_rule(
    call: Callable[[Machine, int], object], errno: str, words: str
) -> None:
    m = _gmem_machine()
    fd = m.gmem_create(2 * PAGE)
    with pytest.raises(EngineError) as info:
        call(m, fd)
    assert (info.value.name, info.value.op) == (errno, m.events()[-1].op)
    assert words in info.value.message


def test_hazards_are_reported_on_the_error_and_the_event() -> None:
    m = Machine()
    fd, _ = guest_file(m)
    with pytest.raises(EngineError) as hole:
        m.get_lock_pfn(fd, 0, False)
    assert hole.value.hazard == "null_page"
    assert "NULL" in hole.value.message
    with pytest.raises(EngineError) as unlocked:
        m.put_unlock_pfn(0)
    assert unlocked.value.hazard == "vm_bug_on_page"
    hazards = [e.hazard for e in m.events() if e.hazard]
    assert hazards == ["null_page", "vm_bug_on_page"]


def test_registering_on_an_unsealed_memfd_is_accepted_with_a_hazard() -> None:
    m = Machine()
    fd = memfd(m)
    m.register_guest(fd, m.owner_create("kvm", "k"))
    assert m.events()[-1].hazard == "unsealed_register"


BAD_NAMES: list[tuple[str, Callable[[Machine], object]]] = [
    ("misspelt-seal", lambda m: m.add_seals(memfd(m), ["F_SEAL_GUST"])),
    ("memfd-flag", lambda m: m.memfd_create("x", ["MFD_FOO"])),
    ("fallocate-mode", lambda m: m.fallocate(memfd(m), ["FALLOC_FL_ZERO_RANGE"], 0, 1)),
    ("prot", lambda m: m.mmap(memfd(m), 0, PAGE, ["PROT_EXEC"], ["MAP_SHARED"])),
    ("owner-kind", lambda m: m.owner_create("xen", "x")),
]


@pytest.mark.parametrize("call", [c for _, c in BAD_NAMES], ids=[i for i, _ in BAD_NAMES])
def test_unknown_names_are_value_errors_and_reach_no_engine(
    call: Callable[[Machine], object],
) -> None:
    m = Machine()
    with pytest.raises(ValueError) as info:
        call(m)
    assert not isinstance(info.value, EngineError)
    assert all(e.ok for e in m.events())  # only the setup's own calls


def test_exec_seal_in_rfc_is_the_kernels_einval() -> None:
    """5.15 has no F_SEAL_EXEC: an unknown seal bit, EINVAL, and no F_SEAL_GUEST (0x20)."""
    m = Machine()
    fd = memfd(m)
    with pytest.raises(EngineError) as info:
        m.add_seals(fd, ["F_SEAL_EXEC"])
    assert (info.value.name, info.value.op) == ("EINVAL", "F_ADD_SEALS")
    assert "F_SEAL_EXEC" in info.value.message
    assert not m.file(fd).seals and not m.events()[-1].ok


def test_guest_seal_is_unknown_in_the_guest_memfd_profile() -> None:
    m = _gmem_machine()
    fd = memfd(m)
    with pytest.raises(ValueError, match="F_SEAL_GUEST"):
        m.add_seals(fd, ["F_SEAL_GUEST"])
    m.add_seals(fd, ["F_SEAL_EXEC"])
    assert "F_SEAL_EXEC" in m.file(fd).seals  # (it implies the write seals too)
    assert Machine().seal_names(0x21) == ["F_SEAL_SEAL", "F_SEAL_GUEST"]
    assert m.seal_names(0x21) == ["F_SEAL_SEAL", "F_SEAL_EXEC"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"phys_pages": 1000},
        {"phys_pages": 512},
        {"phys_pages": 2**27},
        {"profile": "rfc-v3"},
        {"thp": "sometimes"},
        {"variants": frozenset({"multi_ownr"})},
    ],
    ids=["not-multiple", "too-small", "too-big", "profile", "thp", "variant"],
)
def test_bad_config_is_a_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Config(**kwargs)


def test_out_of_range_ints_wrap_like_a_c_cast() -> None:
    m = Machine()
    fd = memfd(m)
    with pytest.raises(EngineError) as info:
        m.ftruncate(fd, 2**64 - 1)  # (int64_t)-1
    assert info.value.name == "EINVAL"
    m.close(2**32 + fd)  # (int)(2**32 + fd) == fd, as in C
    with pytest.raises(LookupError):
        m.file(fd)
    with pytest.raises(LookupError):
        m.file(2**40)


# ---- results and views ----


def test_results_are_frozen() -> None:
    m = Machine()
    info = m.file(memfd(m))
    with pytest.raises(AttributeError):  # a NamedTuple
        info.size = 1  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):  # a frozen dataclass
        m.config.phys_pages = 1  # type: ignore[misc]
    runs, _ = m.frame_runs()
    with pytest.raises(AttributeError):
        runs[0].end = 0  # type: ignore[misc]


def test_page_runs_grow_with_runs_not_with_the_file() -> None:
    m = Machine(Config(phys_pages=1 << 18))
    fd = memfd(m)
    m.fallocate(fd, [], 0, 512 << 20)  # 131072 pages, one run
    runs, nxt = m.page_runs(fd)
    assert [(r.start, r.end, r.state) for r in runs] == [(0, 131072, "present")]
    assert nxt == 131072
    frames, _ = m.frame_runs()
    assert sum(f.end - f.start for f in frames if f.state == "cache") == 131072
    assert len(frames) < 64
    phys = m.phys()
    assert phys.used == 131072 and phys.free + phys.used == phys.total
    assert sum(n << order for order, n in phys.free_by_order.items()) == phys.free


def test_page_runs_page_through_with_next() -> None:
    m = Machine()
    fd = memfd(m, 16 * PAGE)
    for index in range(0, 16, 2):
        m.pwrite(fd, index * PAGE, b"x")
    whole, end = m.page_runs(fd)
    assert end == 16 and len(whole) == 16
    assert [r.state for r in whole[:3]] == ["present", "hole", "present"]
    pieces: list[PageRun] = []
    start = 0
    while start < 16:
        runs, start = m.page_runs(fd, start, 16, max_runs=3)
        assert 0 < len(runs) <= 3
        pieces += runs
    assert pieces == whole


def test_page_runs_stop_at_the_file_end_unless_asked() -> None:
    m = Machine()
    fd = memfd(m, 2 * PAGE + 1)
    runs, nxt = m.page_runs(fd)
    assert [(r.start, r.end, r.state) for r in runs] == [(0, 3, "hole")]
    assert nxt == 3
    m.fallocate(fd, [KEEP], 8 * PAGE, PAGE)  # past the end, size kept
    runs, nxt = m.page_runs(fd)
    assert [(r.start, r.end, r.state) for r in runs] == [(0, 8, "hole"), (8, 9, "present")]
    runs, nxt = m.page_runs(fd, 0, 20)
    assert runs[-1] == PageRun(9, 20, "hole", None, None, False, 0, False, [], 0)
    assert nxt == 20


def test_locked_page_shows_in_its_run_and_its_frame() -> None:
    m = Machine()
    fd, owner = guest_file(m)
    got = m.get_lock_pfn(fd, 1, True)
    assert isinstance(got, PfnResult) and not got.pending and got.order == 0
    assert got.pfn is not None
    runs, _ = m.page_runs(fd)
    page = next(r for r in runs if r.state == "present")
    assert (page.start, page.end, page.pfn, page.locked, page.refcount) == (1, 2, got.pfn, True, 2)
    frames, _ = m.frame_runs(got.pfn, got.pfn + 1)
    assert [(f.state, f.fd, f.index) for f in frames] == [("cache", fd, 1)]
    m.put_unlock_pfn(got.pfn)
    runs, _ = m.page_runs(fd, 1, 2)
    assert (runs[0].locked, runs[0].dirty, runs[0].refcount) == (False, True, 1)
    assert m.file(fd).owners == [owner]


def test_huge_pages_show_as_order_9_runs() -> None:
    m = Machine(Config(thp="always"))
    fd = memfd(m, 4 << 20)
    m.fallocate(fd, [], 0, 4 << 20)
    runs, _ = m.page_runs(fd)
    assert {r.order for r in runs} == {9}
    assert sum(r.end - r.start for r in runs) == 1024


def test_owner_memslots_and_gfn_runs() -> None:
    m = Machine()
    fd = memfd(m, seals=("F_SEAL_GUEST",))
    m.ftruncate(fd, 8 * PAGE)
    kvm = m.owner_create("kvm", "kvm0")
    m.register_guest(fd, kvm)
    slot = m.memslot_create(kvm, fd, 0x100, 0, 8)
    assert (slot.fd, slot.gfn, slot.index, slot.npages) == (fd, 0x100, 0, 8)
    a, b = m.fault(kvm, 0x100), m.fault(kvm, 0x101)
    assert not a.pending and a.pfn is not None and b.pfn is not None
    info = m.owner(kvm)
    assert (info.kind, info.name, info.memslots, info.nmapped) == ("kvm", "kvm0", [slot], 2)
    runs = m.gfn_runs(kvm)
    assert sum(r.npages for r in runs) == 2 and runs[0].gfn == 0x100
    assert [o.id for o in m.owners()] == [kvm]
    assert [f.fd for f in m.files()] == [fd]


# ---- events ----


def test_event_args_are_named_per_op() -> None:
    m = Machine()
    fd, _ = guest_file(m)
    m.fallocate(fd, [KEEP], PAGE, 2 * PAGE)
    got = m.get_lock_pfn(fd, 1, False)
    assert got.pfn is not None
    m.put_unlock_pfn(got.pfn)
    plain = memfd(m, PAGE)
    m.pwrite(plain, 10, b"abc")
    assert m.pread(plain, 10, 3) == b"abc"
    mid = m.mmap(plain, 0, PAGE, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"])
    m.munmap(mid)
    by_op = {e.op: e for e in m.events()}
    assert by_op["fallocate"].args == {"mode": 1, "offset": PAGE, "len": 2 * PAGE}
    assert by_op["get_lock_pfn"].args == {"index": 1, "alloc": 0}
    assert by_op["get_lock_pfn"].out == {"pfn": got.pfn, "order": 0}
    assert by_op["get_lock_pfn"].raw == got.pfn
    assert by_op["put_unlock_pfn"].args == {"pfn": got.pfn}
    assert by_op["pwrite"].args == {"offset": 10, "count": 3}
    assert by_op["pwrite"].result == 3
    assert by_op["pread"].args == {"offset": 10, "count": 3}
    assert by_op["mmap"].args == {"offset": 0, "length": PAGE, "prot": 3, "flags": 1}
    assert by_op["munmap"].args == {"map_id": mid}
    assert by_op["memfd_create"].args["flags"] == 2
    assert by_op["memfd_register_guest"].args == {"owner": 0}
    assert m.event_count == m.events()[-1].seq == len(m.events())
    assert [e.seq for e in m.events(after=2, limit=3)] == [3, 4, 5]
    assert all(isinstance(e, Event) for e in m.events())


def test_callbacks_decode_with_their_end_convention() -> None:
    m = Machine()
    fd, owner = guest_file(m)
    m.fallocate(fd, [], 0, 2 * PAGE)
    alloc = m.events()[-1]
    assert alloc.callbacks == [Callback("fallocate", owner, 0, 2, end_inclusive=False)]
    assert [t.what for t in alloc.touches] == ["alloc"]
    m.fallocate(fd, [PUNCH, KEEP], 0, 2 * PAGE)
    punch = m.events()[-1]
    assert punch.callbacks == [
        Callback("invalidate_page_range", owner, 0, 0, end_inclusive=True),
        Callback("invalidate_page_range", owner, 1, 1, end_inclusive=True),
    ]
    assert {t.what for t in punch.touches} == {"free"}
    m.fallocate(fd, [], 0, 2 * PAGE)
    made = m.invalidate(fd, 0, 1)
    assert [(c.fn, c.start, c.end) for c in made] == [
        ("invalidate_page_range", 0, 0),
        ("invalidate_page_range", 1, 1),
    ]
    assert m.events()[-1].callbacks == made


def test_a_punch_waits_on_a_locked_page_and_wakes() -> None:
    m = Machine()
    fd, _ = guest_file(m)
    got = m.get_lock_pfn(fd, 1, True)
    assert got.pfn is not None
    assert m.fallocate(fd, [PUNCH, KEEP], 0, 4 * PAGE) is True
    punch = m.events()[-1]
    assert punch.pending and punch.ok and punch.result is None
    assert [(w.seq, w.op, w.fd, w.pfn) for w in m.waiters()] == [
        (punch.seq, "fallocate", fd, got.pfn)
    ]
    assert m.file(fd).pending == 1
    assert m.pwrite(memfd(m), 0, b"x") == 1  # another file: not queued, 1 byte
    m.put_unlock_pfn(got.pfn)
    wake = m.events()[-1]
    assert (wake.op, wake.wakes_seq, wake.wakes_op, wake.ok) == (
        "wake",
        punch.seq,
        "fallocate",
        True,
    )
    assert m.waiters() == [] and m.file(fd).nr_pages == 0
    assert not any(e.pending for e in m.events() if e.op == "pwrite")


def test_get_lock_pfn_on_a_locked_page_is_pending() -> None:
    m = Machine()
    fd, _ = guest_file(m)
    first = m.get_lock_pfn(fd, 0, True)
    second = m.get_lock_pfn(fd, 0, True)
    assert second == PfnResult(None, None, True, m.event_count)
    assert first.pfn is not None
    m.put_unlock_pfn(first.pfn)
    wake = next(e for e in m.events() if e.op == "wake")
    assert wake.wakes_seq == second.seq and wake.out == {"pfn": first.pfn, "order": 0}


def test_a_write_queued_behind_a_punch_is_pending_not_one_byte() -> None:
    m = Machine()
    fd = memfd(m, 4 * PAGE)
    owner = m.owner_create("recorder", "r")
    m.register_guest(fd, owner)
    got = m.get_lock_pfn(fd, 0, True)
    assert got.pfn is not None
    assert m.fallocate(fd, [PUNCH, KEEP], 0, PAGE) is True
    assert m.pwrite(fd, 2 * PAGE, b"y") == 0  # pending, not "1 byte written"
    queued = m.events()[-1]
    assert (queued.op, queued.pending, queued.result) == ("pwrite", True, None)
    m.put_unlock_pfn(got.pfn)
    assert m.pread(fd, 2 * PAGE, 1) == b"y"


# ---- clones, checks, the lock ----


def test_clone_is_independent_both_ways() -> None:
    m = Machine()
    fd = memfd(m, 4 * PAGE)
    m.pwrite(fd, 0, b"before")
    twin = m.clone()
    assert twin.config == m.config and twin._lock is not m._lock
    m.pwrite(fd, 0, b"AFTER!")
    m.ftruncate(fd, 8 * PAGE)
    assert twin.pread(fd, 0, 6) == b"before" and twin.file(fd).size == 4 * PAGE
    twin.close(fd)
    assert m.file(fd).size == 8 * PAGE and m.pread(fd, 0, 6) == b"AFTER!"
    assert twin.event_count == m.event_count - 1  # pwrite+ftruncate vs pread+close
    m.check()
    twin.check()


def test_check_passes_and_invariant_error_is_an_assertion() -> None:
    m = Machine()
    fd, _ = guest_file(m)
    m.fallocate(fd, [], 0, 4 * PAGE)
    m.check()
    assert issubclass(InvariantError, AssertionError)
    assert m.memory_bytes() > 0


class _LockChecked:
    """Stands in for the C library: every ss_* call asserts the lock is held."""

    def __init__(self, lib: Any, lock: threading.Lock) -> None:
        self._lib, self._lock, self.calls = lib, lock, 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._lib, name)
        if not name.startswith("ss_") or name == "ss_machine_free":
            return target

        def call(*args: Any) -> Any:
            assert self._lock.locked(), f"{name} called without the machine's lock"
            self.calls += 1
            return target(*args)

        return call


def test_every_engine_call_holds_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.engine._views as views_module

    m = Machine()
    checked = _LockChecked(machine_module.lib, m._lock)
    monkeypatch.setattr(machine_module, "lib", checked)
    monkeypatch.setattr(views_module, "lib", checked)
    fd, owner = guest_file(m)
    m.fallocate(fd, [], 0, 2 * PAGE)
    with pytest.raises(EngineError):
        m.pread(fd, 0, 1)
    m.get_seals(fd)
    m.file(fd)
    m.files()
    m.owner(owner)
    m.owners()
    m.page_runs(fd)
    m.frame_runs(0, 64)
    m.phys()
    m.waiters()
    m.events()
    m.check()
    m.memory_bytes()
    assert checked.calls > 20


def test_threads_share_a_machine_safely() -> None:
    m = Machine()
    fds = [memfd(m, 64 * PAGE) for _ in range(4)]
    before = m.event_count
    errors: list[BaseException] = []

    def work(fd: int) -> None:
        try:
            for i in range(100):
                m.pwrite(fd, (i % 64) * PAGE, b"z" * 100)
                m.page_runs(fd)
                m.events(after=m.event_count - 1)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(fd,)) for fd in fds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert m.event_count == before + 400
    assert [e.seq for e in m.events()] == list(range(1, m.event_count + 1))
    m.check()
