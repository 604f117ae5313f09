"""Engine benchmarks, each against a baseline measured in the same run.

    python bench/engine.py [--gib 1] [--huge-gib 64] [--rounds 7] [--calls 200000]

1. Bulk fallocate then punch (KEEP_SIZE): ns per page for the real kernel's
   shmem (memfd_create + fallocate(2) of --gib on this machine, shmem THP as
   the machine has it), for the engine with 4 KiB pages (thp=never, the same
   size; via Machine and via the raw cffi calls) and for the engine with
   thp=always over --huge-gib (default 64 GiB: 16M frames).  Ratios kernel /
   engine per round.
2. get_lock_pfn + put_unlock_pfn from Python, through Machine and through
   the raw cffi calls, against one Python fallocate(2) call on an already
   allocated page (ctypes, as a Python program without a wrapper would).
3. Bytes per frame descriptor, and the engine's memory for a 1 TiB sparse
   file holding one page.

Rounds alternate the contenders (forward, then backward), so a slow spell of
this shared machine hits all of them; each figure is the median over rounds
with its spread (min..max), each ratio the median of the rounds' ratios.
Targets: 4 KiB bulk >= 10x the kernel, thp=always bulk >= 50x; an engine call
<= 0.5x a fallocate syscall and <= 1.5x the raw cffi calls; <= 64 bytes per
frame; a 1 TiB sparse file < 1 MiB.  BENCHMARKS.md records runs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import Config, Machine
from app.engine._lib import ffi, lib

PAGE = 4096
KEEP, PUNCH = 0x1, 0x2
PHYS_MAX = 1 << 26
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.memfd_create.argtypes = [ctypes.c_char_p, ctypes.c_uint]

Runner = Callable[[], tuple[float, float]]  # one round: (wall, CPU) seconds per unit


def alternate(
    runners: dict[str, Runner], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each runner once a round, forward on even rounds and backward on odd ones:
    ({name: wall times}, {name: CPU times})."""
    wall: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(rounds):
        for k in names if r % 2 == 0 else reversed(names):
            w, c = runners[k]()
            wall[k].append(w)
            cpu[k].append(c)
    return wall, cpu


def med(xs: list[float], scale: float = 1e9) -> str:
    return f"{statistics.median(xs) * scale:9.1f} ({min(xs) * scale:.1f}..{max(xs) * scale:.1f})"


def ratio(a: list[float], b: list[float]) -> str:
    rs = [x / y for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(rs):6.2f} ({min(rs):.2f}..{max(rs):.2f})"


def timed(fn: Callable[[], None], units: int) -> tuple[float, float]:
    """(wall, CPU) seconds per unit: CPU time (this process's, the kernel's work in
    its syscalls included) leaves out the time other processes of this shared
    machine take from it."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t) / units, (time.process_time() - c) / units


def phys_for(pages: int) -> int:
    return min(PHYS_MAX, (pages + (1 << 18)) // 1024 * 1024)


def kernel_bulk(nbytes: int) -> tuple[Runner, Callable[[], None]]:
    fd = _libc.memfd_create(b"bench", 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "memfd_create")

    def run() -> None:
        if _libc.fallocate(fd, KEEP, 0, nbytes) or _libc.fallocate(fd, KEEP | PUNCH, 0, nbytes):
            raise OSError(ctypes.get_errno(), "fallocate")

    return (lambda: timed(run, nbytes // PAGE)), (lambda: os.close(fd))


def engine_bulk(nbytes: int, thp: str) -> tuple[Runner, Machine]:
    """Through Machine.fallocate."""
    m = Machine(Config(phys_pages=phys_for(nbytes // PAGE), thp=thp))
    fd = m.memfd_create("bench")

    def run() -> None:
        m.fallocate(fd, ["FALLOC_FL_KEEP_SIZE"], 0, nbytes)
        m.fallocate(fd, ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], 0, nbytes)

    return (lambda: timed(run, nbytes // PAGE)), m


def engine_c_bulk(nbytes: int) -> Runner:
    """The same through the raw cffi calls: the C engine's own cost."""
    m = Machine(Config(phys_pages=phys_for(nbytes // PAGE)))
    fd = m.memfd_create("bench")
    raw = m._m

    def run() -> None:
        assert lib.ss_fallocate(raw, fd, KEEP, 0, nbytes) == 0
        assert lib.ss_fallocate(raw, fd, KEEP | PUNCH, 0, nbytes) == 0

    return lambda: timed(run, nbytes // PAGE)


def call_runners(n: int) -> tuple[dict[str, Runner], Callable[[], None]]:
    """Machine pair, raw cffi pair (seconds per pair), one fallocate syscall."""
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

    runners = {
        "face": lambda: timed(face, n),
        "cffi": lambda: timed(cffi_pair, n),
        "syscall": lambda: timed(syscall, n),
    }
    return runners, lambda: os.close(kfd)


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
    ap.add_argument("--gib", type=float, default=1.0, help="kernel and 4 KiB bulk size (GiB)")
    ap.add_argument("--huge-gib", type=float, default=64.0, help="thp=always bulk size (GiB)")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    ap.add_argument("--calls", type=int, default=200_000, help="calls a round, per-call costs")
    a = ap.parse_args()
    nbytes = int(a.gib * (1 << 30)) // PAGE * PAGE
    hbytes = int(a.huge_gib * (1 << 30)) // (2 << 20) * (2 << 20)
    if hbytes // PAGE > PHYS_MAX - (1 << 18):
        ap.error(f"--huge-gib: at most {(PHYS_MAX - (1 << 18)) * PAGE >> 30} GiB of frames")

    kernel, close_kernel = kernel_bulk(nbytes)
    e4k, m4k = engine_bulk(nbytes, "never")
    huge, mhuge = engine_bulk(hbytes, "always")
    bulk, bulk_cpu = alternate(
        {"kernel": kernel, "engine": e4k, "cffi": engine_c_bulk(nbytes), "huge": huge}, a.rounds
    )
    close_kernel()
    m4k.check()
    mhuge.check()
    del m4k, mhuge
    calls, close_calls = call_runners(a.calls)
    per, per_cpu = alternate(calls, a.rounds)
    close_calls()

    k, kc = bulk["kernel"], bulk_cpu["kernel"]
    row = "  {:<46}{:<30}{}"
    print(f"{a.rounds} alternating rounds; each figure: median (min..max) over rounds;")
    print("ratios: of wall times, then of CPU times (the same rounds)")
    print("bulk fallocate + punch, ns per page (wall)")
    print(row.format(f"kernel shmem, {nbytes >> 20} MiB (memfd + fallocate(2))", med(k), ""))
    for name, key, target in (
        (f"engine 4 KiB, {nbytes >> 20} MiB, via Machine", "engine", " (>= 10x)"),
        ("engine 4 KiB, same, via raw cffi", "cffi", ""),
        (f"engine thp=always, {hbytes >> 30} GiB, via Machine", "huge", " (>= 50x)"),
    ):
        print(row.format(name, med(bulk[key]), ""))
        rw, rc = ratio(k, bulk[key]), ratio(kc, bulk_cpu[key])
        print(row.format("", "", f"kernel/engine {rw}; CPU {rc}{target}"))
    # per pair -> per call
    face, cffi = [x / 2 for x in per["face"]], [x / 2 for x in per["cffi"]]
    face_c, cffi_c = [x / 2 for x in per_cpu["face"]], [x / 2 for x in per_cpu["cffi"]]
    sc, sc_c = per["syscall"], per_cpu["syscall"]
    print("per-call cost from Python, ns per call (wall)")
    print(row.format("fallocate(2) syscall, 1 page (ctypes)", med(sc), ""))
    print(row.format("get_lock_pfn / put_unlock_pfn via Machine", med(face), ""))
    print(
        row.format("", "", f"engine/syscall {ratio(face, sc)}; CPU {ratio(face_c, sc_c)} (<= 0.5)")
    )
    print(
        row.format(
            "", "", f"Machine/raw cffi {ratio(face, cffi)}; CPU {ratio(face_c, cffi_c)} (<= 1.5)"
        )
    )
    print(row.format("same via raw cffi", med(cffi), ""))
    print(row.format("", "", f"engine/syscall {ratio(cffi, sc)}; CPU {ratio(cffi_c, sc_c)}"))
    pairs = 1 / statistics.median(per["face"])
    print(f"  {pairs:,.0f} get_lock_pfn + put_unlock_pfn pairs/s through Machine")
    print(f"bytes per frame descriptor: {int(lib.ss_frame_size())} (<= 64)")
    print(f"engine memory, 1 TiB sparse file with one page: {sparse_tib():,} bytes (< 1 MiB)")


if __name__ == "__main__":
    main()
