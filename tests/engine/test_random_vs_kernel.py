"""Random operation logs on the engine and on this machine's kernel, op by op.

Hypothesis draws logs of userspace-visible operations (memfd_create with any
flags, ftruncate, F_ADD_SEALS / F_GET_SEALS without F_SEAL_GUEST, fallocate
with odd modes too, pread, pwrite, mmap, munmap, close, fstat, and
KVM_CREATE_GUEST_MEMFD with its operations where /dev/kvm works).  Each log
runs on an engine machine (profile guest-memfd: today's kernel) through
tests/engine/kernel_adapter.py and on the real kernel through
app.oracle.Kernel; every answer, ok / value or errno name, must be equal,
and the engine's invariant checker must pass after every step.

The kernel really allocates: a log allocates at most ALLOC_CAP bytes
(fallocate steps past it are dropped).  Runs are derandomized and bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import oracle
from app.engine import Config, EngineError, Machine
from tests.budget import DERANDOMIZE, examples
from tests.engine.kernel_adapter import EngineRunner

MEMFD_OK, MEMFD_WHY = oracle.available()
KVM_OK, KVM_WHY = oracle.kvm_available()
try:
    NOEXEC_SYSCTL = Path("/proc/sys/vm/memfd_noexec").read_text().strip()
except OSError:
    NOEXEC_SYSCTL = "0"

PAGE = 4096
MAX_FILESIZE = (1 << 63) - 1
NPAGES = 24  # where most offsets fall
ALLOC_CAP = 4 << 20  # bytes a log may ask fallocate to allocate

SETTINGS = settings(
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Op(NamedTuple):
    """One step in the oracle's vocabulary: op name and keyword arguments."""

    name: str
    args: dict[str, Any]


def op(opname: str, /, **kw: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.builds(Op, st.just(opname), st.fixed_dictionaries(kw))


# ---- strategies ----

KEEP, PUNCH = "FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"
MODES = [
    [],
    [KEEP],
    [PUNCH, KEEP],
    [PUNCH],
    [0x08],  # COLLAPSE_RANGE
    [0x10],  # ZERO_RANGE
    [KEEP, 0x10],
    [0x20],  # INSERT_RANGE
    [0x40],  # UNSHARE_RANGE
    [KEEP, 0x40],
    [0x80],  # WRITE_ZEROES
    [KEEP, 0x80],
    [0x100],
    [-1],
]
MFD_FLAGS = [
    ["MFD_ALLOW_SEALING"],
    [],
    ["MFD_CLOEXEC", "MFD_ALLOW_SEALING"],
    ["MFD_NOEXEC_SEAL"],
    ["MFD_NOEXEC_SEAL", "MFD_ALLOW_SEALING"],
    ["MFD_EXEC", "MFD_ALLOW_SEALING"],
    ["MFD_EXEC", "MFD_NOEXEC_SEAL"],
    ["MFD_HUGETLB", "MFD_ALLOW_SEALING"],
    [0x40],
    [0x54000000],  # a huge page size without MFD_HUGETLB
]
SEALS = [
    "F_SEAL_SEAL",
    "F_SEAL_SHRINK",
    "F_SEAL_GROW",
    "F_SEAL_WRITE",
    "F_SEAL_FUTURE_WRITE",
    "F_SEAL_EXEC",
    "F_SEAL_WRITE",
    "F_SEAL_GROW",
    0x40,
]
GMEM_FLAGS = [
    [],
    ["GUEST_MEMFD_FLAG_MMAP"],
    ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"],
    ["GUEST_MEMFD_FLAG_INIT_SHARED"],
    [4],
]
R, W = "PROT_READ", "PROT_WRITE"


def positions() -> st.SearchStrategy[int]:
    aligned = st.integers(0, NPAGES).map(lambda k: k * PAGE)
    odd = st.builds(lambda k, r: k * PAGE + r, st.integers(0, NPAGES), st.integers(1, PAGE - 1))
    edges = st.sampled_from([-1, -PAGE, 2 << 20, 1 << 62, MAX_FILESIZE - PAGE, MAX_FILESIZE])
    return st.one_of(aligned, aligned, odd, edges)


def lengths() -> st.SearchStrategy[int]:
    aligned = st.integers(1, NPAGES).map(lambda k: k * PAGE)
    odd = st.builds(lambda k, r: k * PAGE + r, st.integers(0, NPAGES), st.integers(1, PAGE - 1))
    return st.one_of(aligned, aligned, odd, st.sampled_from([0, -1, -PAGE, 1 << 62]))


def log_strategy(kvm: bool) -> st.SearchStrategy[list[Op]]:
    fds = [3, 3, 3, 3, 4, 4, 4, 5, 9]
    fd = st.sampled_from(fds)
    pos = positions()
    data = st.one_of(
        st.binary(max_size=40),
        st.builds(lambda b, n: bytes([b]) * n, st.integers(1, 255), st.integers(1, 9000)),
    )
    ops = [
        st.just(Op("nop", {})),  # first: the shrinker turns irrelevant steps into it
        op("memfd_create", name=st.just("p"), flags=st.sampled_from(MFD_FLAGS)),
        op("memfd_create", name=st.just("p"), flags=st.sampled_from(MFD_FLAGS[:3])),
        op("memfd_create", name=st.sampled_from(["", "a" * 249, "a" * 250]), flags=st.just([])),
        op("ftruncate", fd=fd, length=pos),
        op("ftruncate", fd=fd, length=st.integers(0, NPAGES).map(lambda k: k * PAGE)),
        op("F_ADD_SEALS", fd=fd, seals=st.lists(st.sampled_from(SEALS), max_size=3)),
        op("F_GET_SEALS", fd=fd),
        op("fallocate", fd=fd, mode=st.sampled_from(MODES), offset=pos, len=lengths()),
        op("fallocate", fd=fd, mode=st.sampled_from(MODES[:3]), offset=pos, len=lengths()),
        op("pread", fd=fd, offset=pos, count=st.one_of(st.integers(0, 9000), st.just(-1))),
        op("pwrite", fd=fd, offset=pos, data=data),
        op(
            "mmap",
            fd=fd,
            offset=st.one_of(
                st.integers(0, NPAGES).map(lambda k: k * PAGE), st.sampled_from([1, -PAGE])
            ),
            length=st.sampled_from([PAGE, 4 * PAGE, 1, 0, -1]),
            prot=st.sampled_from([[R], [R, W], [], [R, W]]),
            flags=st.sampled_from(
                [["MAP_SHARED"], ["MAP_PRIVATE"], ["MAP_SHARED", "MAP_PRIVATE"], [], ["MAP_SHARED"]]
            ),
        ),
        op("munmap", which=st.integers(0, 4)),
        op("close", fd=st.sampled_from([*fds, 4, 4])),
        op("fstat_size", fd=fd),
    ]
    if kvm:
        size = st.one_of(
            st.integers(1, NPAGES).map(lambda k: k * PAGE), st.sampled_from([0, 4095, 4097])
        )
        ops += [
            op("KVM_CREATE_GUEST_MEMFD", size=size, flags=st.sampled_from(GMEM_FLAGS)),
            op("KVM_CREATE_GUEST_MEMFD", size=size, flags=st.sampled_from(GMEM_FLAGS[:3])),
        ]
    return st.lists(st.one_of(ops), min_size=10, max_size=50)


# ---- running a log on both ----


def known_divergence(name: str, args: dict[str, Any], hugetlb: set[int]) -> bool:
    """Steps where the engine is known to answer differently (reported, with a
    strict xfail): left out of the logs until fixed.  None are open now."""
    return False


def replay(log: list[Op], skip_known: bool = True) -> None:
    engine = EngineRunner(Machine(Config(profile="guest-memfd", phys_pages=1 << 16)))
    maps: list[int] = []  # map ids handed out (the same on both sides, or a step differs)
    hugetlb: set[int] = set()  # fds of MFD_HUGETLB memfds
    allocated = 0
    done: list[str] = []
    with oracle.Kernel() as kernel:
        for name, raw in log:
            if name == "nop":
                continue
            args = dict(raw)
            if name == "munmap":
                which = args.pop("which")
                args["map_id"] = maps[which % len(maps)] if maps and which < 4 else 77
            if name == "fallocate" and PUNCH not in args["mode"] and args["len"] > 0:
                if allocated + args["len"] > ALLOC_CAP:
                    continue  # the kernel would really allocate it
                allocated += args["len"]
            if skip_known and known_divergence(name, args, hugetlb):
                continue
            done.append(f"{name}({', '.join(f'{k}={v!r:.40}' for k, v in args.items())})")
            want = kernel.run(name, args)
            try:
                got = engine.run(name, args)
            except EngineError as e:  # the adapter's fstat_size lets EBADF out
                got = (False, e.name)
            if got != want:
                steps = "\n  ".join(done)
                raise AssertionError(
                    f"step {len(done)}: kernel {want!r:.200}, engine {got!r:.200}\n  {steps}"
                )
            engine.m.check()
            if name == "mmap" and want[0]:
                maps.append(int(want[1]))  # type: ignore[call-overload]
            if name == "munmap" and want[0]:
                maps.remove(args["map_id"])
            if name in ("memfd_create", "KVM_CREATE_GUEST_MEMFD", "close") and want[0]:
                fd = args["fd"] if name == "close" else int(want[1])  # type: ignore[call-overload]
                hugetlb.discard(fd)
                if name == "memfd_create" and "MFD_HUGETLB" in args["flags"]:
                    hugetlb.add(fd)


needs_memfd = pytest.mark.skipif(not MEMFD_OK, reason=f"no memfd on this machine: {MEMFD_WHY}")
needs_noexec_0 = pytest.mark.skipif(
    NOEXEC_SYSCTL != "0",
    reason=f"vm.memfd_noexec is {NOEXEC_SYSCTL}; the engine simulates 0",
)


@needs_memfd
@needs_noexec_0
@settings(SETTINGS, max_examples=examples(200))
@given(log_strategy(kvm=False))
def test_random_memfd_logs_match_the_kernel(log: list[Op]) -> None:
    replay([Op("memfd_create", {"name": "p", "flags": ["MFD_ALLOW_SEALING"]}), *log])


@needs_memfd
@needs_noexec_0
@pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm with guest_memfd: {KVM_WHY}")
@settings(SETTINGS, max_examples=examples(200))
@given(log_strategy(kvm=True))
def test_random_logs_with_guest_memfd_match_the_kernel(log: list[Op]) -> None:
    setup = [
        Op("memfd_create", {"name": "p", "flags": ["MFD_ALLOW_SEALING"]}),
        Op("KVM_CREATE_GUEST_MEMFD", {"size": 16 * PAGE, "flags": ["GUEST_MEMFD_FLAG_MMAP"]}),
    ]
    replay([*setup, *log])


@needs_memfd
def test_mmap_checks_the_map_type_last() -> None:
    """Found by these logs (fixed): do_mmap() checks len, its rounding, the offset
    overflow, and only then the MAP_TYPE switch."""
    log = [
        Op("memfd_create", {"name": "p", "flags": ["MFD_ALLOW_SEALING"]}),
        Op("mmap", {"fd": 3, "offset": -PAGE, "length": PAGE, "prot": [R], "flags": []}),
        Op("mmap", {"fd": 3, "offset": 0, "length": -1, "prot": [R], "flags": []}),
    ]
    replay(log)


@needs_memfd
def test_hugetlb_mmap_unaligned_offset_is_einval() -> None:
    # hugetlbfs_file_mmap(): an offset that is not huge-page aligned (fixed)
    log = [
        Op("memfd_create", {"name": "p", "flags": ["MFD_HUGETLB", "MFD_ALLOW_SEALING"]}),
        Op("mmap", {"fd": 3, "offset": PAGE, "length": PAGE, "prot": [R], "flags": ["MAP_SHARED"]}),
    ]
    replay(log, skip_known=False)


@needs_memfd
def test_hugetlb_fallocate_checks_f_seal_grow_before_allocating() -> None:
    """Found by a soak of these logs (fixed): hugetlbfs_fallocate() refuses growth past
    F_SEAL_GROW (EPERM) before it looks for huge pages (ENOSPC on this machine)."""
    log = [
        Op("memfd_create", {"name": "p", "flags": ["MFD_HUGETLB", "MFD_ALLOW_SEALING"]}),
        Op("F_ADD_SEALS", {"fd": 3, "seals": ["F_SEAL_GROW"]}),
        Op("fallocate", {"fd": 3, "mode": [], "offset": 0, "len": PAGE}),
        Op("fallocate", {"fd": 3, "mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": PAGE}),
    ]
    replay(log, skip_known=False)
