"""Engine benchmarks, each against a baseline measured in the same run.

    python bench/engine.py [--gib 1]

1. Bulk fallocate then punch of N GiB in 4 KiB pages: ns per page for the
   engine (thp=never) and for the real kernel's shmem (memfd_create +
   fallocate(2) on this machine, shmem THP as the machine has it); ratio.
2. get_lock_pfn + put_unlock_pfn from Python: calls per second, against the
   cost of one Python fallocate(2) call on an already allocated page.
3. Bytes per frame descriptor, and the engine's memory for a 1 TiB sparse
   file holding one page.

Prints a table; BENCHMARKS.md records a run. Targets: engine >= 10x faster
per page than shmem in bulk; an engine call <= 0.5x a fallocate syscall;
<= 64 bytes per frame; a 1 TiB sparse file < 1 MiB.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import Config, Machine
from app.engine._lib import ffi, lib

PAGE = 4096
KEEP, PUNCH = 0x1, 0x2
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.memfd_create.argtypes = [ctypes.c_char_p, ctypes.c_uint]


def best(fn, repeat: int = 3) -> float:
    """The fastest of `repeat` runs of fn() (seconds): the least disturbed."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def kernel_bulk(nbytes: int) -> float:
    fd = _libc.memfd_create(b"bench", 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "memfd_create")
    try:

        def run() -> None:
            if _libc.fallocate(fd, 0, 0, nbytes) or _libc.fallocate(fd, KEEP | PUNCH, 0, nbytes):
                raise OSError(ctypes.get_errno(), "fallocate")

        return best(run) / (nbytes // PAGE)
    finally:
        os.close(fd)


def engine_bulk(nbytes: int) -> float:
    m = Machine(Config(phys_pages=max(1 << 18, 2 * nbytes // PAGE)))
    fd = m.memfd_create("bench")

    def run() -> None:
        m.fallocate(fd, ["FALLOC_FL_KEEP_SIZE"], 0, nbytes)
        m.fallocate(fd, ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], 0, nbytes)

    t = best(run) / (nbytes // PAGE)
    m.check()
    return t


def engine_c_bulk(nbytes: int) -> float:
    """The same through the raw cffi calls: the C engine's own cost."""
    m = Machine(Config(phys_pages=max(1 << 18, 2 * nbytes // PAGE)))
    fd = m.memfd_create("bench")
    raw = m._m

    def run() -> None:
        assert lib.ss_fallocate(raw, fd, KEEP, 0, nbytes) == 0
        assert lib.ss_fallocate(raw, fd, KEEP | PUNCH, 0, nbytes) == 0

    return best(run) / (nbytes // PAGE)


def call_costs(n: int) -> tuple[float, float, float]:
    """(engine get_lock+put pair, raw cffi pair, one fallocate syscall), seconds."""
    m = Machine(Config(phys_pages=1 << 12))
    fd = m.memfd_create("calls", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, 16 * PAGE)
    m.fallocate(fd, [], 0, 16 * PAGE)

    def face() -> None:
        for _ in range(n):
            r = m.get_lock_pfn(fd, 3, True)
            m.put_unlock_pfn(r.pfn)

    raw = m._m
    pfn = ffi.new("uint64_t *")
    order = ffi.new("int *")

    def cffi_pair() -> None:
        for _ in range(n):
            lib.ss_get_lock_pfn(raw, fd, 3, 1, pfn, order)
            lib.ss_put_unlock_pfn(raw, pfn[0])

    kfd = _libc.memfd_create(b"calls", 0)
    _libc.fallocate(kfd, 0, 0, PAGE)

    def syscall() -> None:
        for _ in range(n):
            _libc.fallocate(kfd, 0, 0, PAGE)

    try:
        return best(face) / n, best(cffi_pair) / n, best(syscall) / n
    finally:
        os.close(kfd)


def sparse_tib() -> int:
    m = Machine(Config(phys_pages=1 << 10))
    before = m.memory_bytes()
    fd = m.memfd_create("tib")
    m.ftruncate(fd, 1 << 40)
    m.fallocate(fd, [], (1 << 40) - PAGE, PAGE)
    return m.memory_bytes() - before


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gib", type=float, default=1.0, help="bulk size in GiB (default 1)")
    ap.add_argument("--calls", type=int, default=200_000, help="calls for the per-call costs")
    a = ap.parse_args()
    nbytes = int(a.gib * (1 << 30)) // PAGE * PAGE

    k = kernel_bulk(nbytes)
    e = engine_bulk(nbytes)
    c = engine_c_bulk(nbytes)
    face, cffi_pair, sc = call_costs(a.calls)
    per_call = face / 2
    row = "  {:<36}{:10.1f}   {}"
    print(f"bulk fallocate + punch of {nbytes >> 20} MiB in 4 KiB pages (ns/page, best of 3)")
    print(row.format("kernel shmem (memfd + fallocate(2))", k * 1e9, ""))
    print(row.format("engine via Machine", e * 1e9, f"kernel/engine = {k / e:5.1f}x (>= 10x)"))
    print(row.format("engine via raw cffi", c * 1e9, f"kernel/engine = {k / c:5.1f}x"))
    print("per-call cost from Python (ns per call)")
    print(row.format("fallocate(2) syscall, 1 page", sc * 1e9, ""))
    ratio = f"engine/syscall = {per_call / sc:4.2f} (<= 0.5); {1 / face:,.0f} pairs/s"
    print(row.format("get_lock_pfn / put_unlock_pfn", per_call * 1e9, ratio))
    raw_ratio = f"engine/syscall = {cffi_pair / 2 / sc:4.2f}"
    print(row.format("same via raw cffi", cffi_pair / 2 * 1e9, raw_ratio))
    print(f"bytes per frame descriptor: {int(lib.ss_frame_size())} (<= 64)")
    print(f"engine memory, 1 TiB sparse file with one page: {sparse_tib():,} bytes (< 1 MiB)")


if __name__ == "__main__":
    main()
