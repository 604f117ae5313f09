"""The Python face's per-call cost, an older _machine.py against this tree's.

    git show main:app/engine/_machine.py > old_machine.py
    python bench/face_ab.py old_machine.py [--rounds 9] [--calls 200000]

Loads the older file as a module next to app.engine._machine (the rest of the face
is this tree's) and times get_lock_pfn + put_unlock_pfn pairs through both Machine
classes and through the raw cffi calls, in alternating rounds (forward, backward).
Prints ns per call, medians and spreads (wall and CPU), and the ratios new/old and
each face/raw cffi.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import Config, Machine
from app.engine._lib import ffi, lib

PAGE = 4096


def load_old(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("app.engine._machine_old", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Machine


def pairs(cls: Any, n: int) -> tuple[Callable[[], None], Any, int]:
    m = cls(Config(phys_pages=1 << 12))
    fd = m.memfd_create("calls", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, 16 * PAGE)
    m.fallocate(fd, [], 0, 16 * PAGE)

    def run() -> None:
        for _ in range(n):
            r = m.get_lock_pfn(fd, 3, True)
            m.put_unlock_pfn(r.pfn)

    return run, m, fd


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("old", nargs="?", help="an older app/engine/_machine.py")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--calls", type=int, default=200_000, help="pairs a round")
    a = ap.parse_args()
    if a.old is None:  # `make bench` runs every bench without arguments
        print("face_ab: no older _machine.py given (see --help): nothing to compare")
        return
    n = a.calls
    old, _, _ = pairs(load_old(a.old), n)
    new, m, fd = pairs(Machine, n)
    raw = m._m
    pfn, order = ffi.new("uint64_t *"), ffi.new("int *")

    def cffi_pairs() -> None:
        for _ in range(n):
            lib.ss_get_lock_pfn(raw, fd, 3, 1, pfn, order)
            lib.ss_put_unlock_pfn(raw, pfn[0])

    runs = {"old": old, "new": new, "raw cffi": cffi_pairs}
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(a.rounds):
        for k in list(runs) if r % 2 == 0 else list(reversed(runs)):
            t, c = time.perf_counter(), time.process_time()
            runs[k]()
            wall[k].append((time.perf_counter() - t) / n / 2 * 1e9)
            cpu[k].append((time.process_time() - c) / n / 2 * 1e9)

    def ratio(xs: list[float], ys: list[float]) -> str:
        rs = [x / y for x, y in zip(xs, ys, strict=True)]
        return f"{statistics.median(rs):.2f} ({min(rs):.2f}..{max(rs):.2f})"

    print(f"{a.rounds} alternating rounds of {n:,} pairs; ns per call, median (min..max)")
    for k in runs:
        w = wall[k]
        print(f"  {k:<9} wall {statistics.median(w):7.1f} ({min(w):.1f}..{max(w):.1f})", end="")
        print(f"  CPU {statistics.median(cpu[k]):7.1f}")
    print(
        f"  new/old   wall {ratio(wall['new'], wall['old'])}  CPU {ratio(cpu['new'], cpu['old'])}"
    )
    for k in ("old", "new"):
        w, c = ratio(wall[k], wall["raw cffi"]), ratio(cpu[k], cpu["raw cffi"])
        print(f"  {k}/raw   wall {w}  CPU {c}")


if __name__ == "__main__":
    main()
