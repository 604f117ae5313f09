"""Copy-on-write clones against the full copy, measured in the same run.

    python bench/clone.py [--gib 64] [--ops 10000] [--rounds 7] [--previews 9]

1. Clone of a --gib machine (default 64 GiB: 16M frames) holding a 48 GiB file
   (thp=always), 16 MiB of written pages and a few thousand events:
   Machine.clone() (copy on write) against Machine.clone(full=True) (the deep
   copy every clone was before): wall time of the clone and the bytes it holds
   beside its original (ss_memory_owned: what the two do not share); then the
   first write to the clone (one chunk, one tree path, one page copied).
2. Preview of op n (Session.machine_at: the nearest snapshot, cloned, then the
   ops since replayed; then the file's and the machine's views read, as the
   /at/{n} page does) on a session of --ops ops over that machine, with the
   service's default snapshot settings: the registry of this tree (copy-on-write
   snapshots, costed by what they hold beside the live machine) against the one
   before (full-copy snapshots costed at memory_bytes: a 64 GiB machine is over
   the session budget, so none, and every preview replays from op 0).  The ops:
   punch and refill 2 MiB of the file, write a page, read a page, at random
   offsets of a --hot-gib window (default: the whole file).  --budget-mib sets
   the session's snapshot budget (SEALSCOPE_SNAPSHOT_BUDGET, default 128 MiB).

Rounds alternate the contenders (forward, then backward); each figure is the
median over rounds with its spread (min..max), each ratio the median of the
rounds' ratios.  Targets: a clone < 5 ms and < 1 MiB beside its original; a
preview < 50 ms.  BENCHMARKS.md records runs.
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import Config, Machine
from app.service.ops import parse
from app.service.replay import apply
from app.session import Budget, Session
from app.settings import Settings
from app.store import StoredOp

PAGE = 4096
HUGE = 2 << 20
GIB = 1 << 30
KEEP, PUNCH = "FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"


def med(xs: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    f = (fmt + " ({}..{})").format
    m, lo, hi = statistics.median(xs) * scale, min(xs) * scale, max(xs) * scale
    return f(m, fmt.format(lo), fmt.format(hi))


def ratio(a: list[float], b: list[float]) -> str:
    rs = [x / max(y, 1e-12) for x, y in zip(a, b, strict=True)]
    return f"{statistics.median(rs):.0f}x ({min(rs):.0f}..{max(rs):.0f})"


def alternate(runners: dict[str, Callable[[int], dict[str, float]]], rounds: int) -> dict[str, Any]:
    """Each runner once a round (given the round number), forward on even rounds and
    backward on odd ones: {name: {figure: [one value a round]}}."""
    out: dict[str, dict[str, list[float]]] = {k: {} for k in runners}
    names = list(runners)
    for r in range(rounds):
        for k in names if r % 2 == 0 else reversed(names):
            for fig, v in runners[k](r).items():
                out[k].setdefault(fig, []).append(v)
    return out


# ---- 1. the clone ---------------------------------------------------------------------


def big_machine(gib: float) -> tuple[Machine, int]:
    m = Machine(Config(phys_pages=int(gib * GIB) // PAGE, thp="always"))
    fd = m.memfd_create("guest", ["MFD_ALLOW_SEALING"])
    size = int(gib * 0.75 * GIB) // HUGE * HUGE
    m.ftruncate(fd, size)
    m.fallocate(fd, [], 0, size)
    rnd = random.Random(1)
    for _ in range(4096):  # 16 MiB written, a few thousand events
        m.pwrite(fd, rnd.randrange(size // PAGE) * PAGE, rnd.randbytes(64))
    return m, fd


def clone_runner(m: Machine, fd: int, full: bool) -> Callable[[int], dict[str, float]]:
    def run(_round: int) -> dict[str, float]:
        t = time.perf_counter()
        c = m.clone(full=full)
        took = time.perf_counter() - t
        owned = c.memory_owned(beside=m)
        t = time.perf_counter()
        c.pwrite(fd, 12345 * PAGE, b"x")
        write = time.perf_counter() - t
        wrote = c.memory_owned(beside=m) - owned
        del c
        return {"s": took, "owned": owned, "write": write, "wrote": wrote}

    return run


# ---- 2. the preview -------------------------------------------------------------------


class FullCopySession(Session):
    """The registry before copy-on-write clones: full-copy snapshots, each costed at the
    machine's memory_bytes (app/registry.py as of 26ce8ec)."""

    def snapshot(self) -> None:
        n = self.seq
        if n == 0 or n in self.snapshots:
            return
        size = self.machine.memory_bytes()
        while self.snapshots and size * (len(self.snapshots) + 1) > self.snap_budget:
            self.snap_every *= 2
            keys = sorted(self.snapshots)
            self.drop_snapshots(set(keys[-2::-2] or keys).__contains__)
        if size <= self.snap_budget and self.budget.take(size):
            self.snapshots[n] = self.machine.clone(full=True)
            self.snap_bytes[n] = size

    def machine_at(self, n: int) -> Machine:
        from app.service.replay import replay

        base = max((k for k in self.snapshots if k <= n), default=0)
        m = self.snapshots[base].clone(full=True) if base else Machine(self.config)
        replay(m, self.full_ops(base, n), strict=False)
        return m


def workload(size: int, hot: int, nops: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    rnd = random.Random(seed)
    ops: list[tuple[str, dict[str, Any]]] = [
        ("memfd_create", {"name": "guest", "flags": ["MFD_ALLOW_SEALING"]}),
        ("ftruncate", {"fd": 3, "length": size}),
        ("fallocate", {"fd": 3, "offset": 0, "len": size}),
    ]
    while len(ops) < nops:
        k = rnd.randrange(4)
        if k == 0:
            off = rnd.randrange(hot // HUGE) * HUGE
            ops.append(("fallocate", {"fd": 3, "mode": [PUNCH, KEEP], "offset": off, "len": HUGE}))
            ops.append(("fallocate", {"fd": 3, "offset": off, "len": HUGE}))
        elif k in (1, 2):
            data = base64.b64encode(rnd.randbytes(16)).decode()
            off = rnd.randrange(hot // PAGE) * PAGE
            ops.append(("pwrite", {"fd": 3, "offset": off, "data_b64": data}))
        else:
            off = rnd.randrange(hot // PAGE) * PAGE
            ops.append(("pread", {"fd": 3, "offset": off, "count": 16}))
    return ops[:nops]


def build(
    cls: type[Session], cfg: Config, ops: list[tuple[str, dict[str, Any]]], settings: Settings
) -> Session:
    s = cls("bench", cfg, settings, 0.0, Budget(settings.snapshot_total))
    for name, args in ops:
        spec, parsed = parse(name, args)
        out = apply(s.machine, spec, parsed)
        if out.error is not None:
            raise RuntimeError(f"{name} {args}: {out.error}")
        s.record(StoredOp(s.seq + 1, name, parsed.model_dump_json(), None, s.machine.event_count))
    return s


def preview_runner(s: Session, ns: list[int]) -> Callable[[int], dict[str, float]]:
    def run(r: int) -> dict[str, float]:
        n = ns[r]
        t = time.perf_counter()
        m = s.machine_at(n)
        m.file(3)
        m.files()
        m.phys()
        took = time.perf_counter() - t
        base = max((k for k in s.snapshots if k <= n), default=0)
        return {"s": took, "replayed": n - base}

    return run


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gib", type=float, default=64.0, help="machine size (GiB)")
    ap.add_argument("--ops", type=int, default=10_000, help="ops of the preview session")
    ap.add_argument("--hot-gib", type=float, default=0.0, help="ops' window (0: the file)")
    ap.add_argument("--rounds", type=int, default=7, help="clone rounds (default 7)")
    ap.add_argument("--previews", type=int, default=9, help="preview rounds (default 9)")
    ap.add_argument(
        "--budget-mib", type=int, default=0, help="a session's snapshot budget (0: the default)"
    )
    a = ap.parse_args()
    settings = Settings(**({"snapshot_budget": a.budget_mib << 20} if a.budget_mib else {}))

    t = time.perf_counter()
    m, fd = big_machine(a.gib)
    print(
        f"machine: {a.gib:g} GiB ({m.config.phys_pages} frames), {m.memory_bytes() >> 20} MiB"
        f" in the engine, built in {time.perf_counter() - t:.1f} s"
    )
    cl = alternate({"full": clone_runner(m, fd, True), "cow": clone_runner(m, fd, False)}, a.rounds)
    m.check()
    full, cow = cl["full"], cl["cow"]
    row = "  {:<34}{:<34}{}"
    print(f"\n1. clone, {a.rounds} rounds: median (min..max)")
    print(row.format("", "full copy", "copy on write"))
    print(row.format("clone (ms)", med(full["s"], 1e3), med(cow["s"], 1e3)))
    print(
        row.format(
            "held beside the original (KiB)",
            med(full["owned"], 1 / 1024, "{:.0f}"),
            med(cow["owned"], 1 / 1024, "{:.0f}"),
        )
    )
    print(
        row.format("first write to the clone (ms)", med(full["write"], 1e3), med(cow["write"], 1e3))
    )
    print(
        row.format(
            "  bytes it copied (KiB)",
            med(full["wrote"], 1 / 1024, "{:.0f}"),
            med(cow["wrote"], 1 / 1024, "{:.0f}"),
        )
    )
    print(
        f"  full / cow: time {ratio(full['s'], cow['s'])}, "
        f"bytes held {ratio(full['owned'], cow['owned'])}"
    )
    del m

    cfg = Config(phys_pages=int(a.gib * GIB) // PAGE, thp="always")
    size = int(a.gib * 0.75 * GIB) // HUGE * HUGE
    hot = int(a.hot_gib * GIB) // HUGE * HUGE or size
    ops = workload(size, hot, a.ops, 2)
    t = time.perf_counter()
    new = build(Session, cfg, ops, settings)
    t_new = time.perf_counter() - t
    t = time.perf_counter()
    old = build(FullCopySession, cfg, ops, settings)
    t_old = time.perf_counter() - t
    snaps = sorted(new.snapshots)
    print(
        f"\n2. preview of op n, a session of {a.ops} ops on {a.gib:g} GiB "
        f"(ops in a {hot / GIB:g} GiB window), {a.previews} rounds; a snapshot every "
        f"{settings.snapshot_every} ops within {settings.snapshot_budget >> 20} MiB a session"
    )
    print(
        f"  built in {t_new:.1f} s (cow) and {t_old:.1f} s (full); snapshots: cow "
        f"{len(snaps)} (every {new.snap_every} ops, {sum(new.snap_bytes.values()) >> 20} MiB "
        f"held beside the live machine), full {len(old.snapshots)}"
    )
    rnd = random.Random(3)
    ns = [rnd.randrange(1, a.ops + 1) for _ in range(a.previews)]
    pv = alternate({"full": preview_runner(old, ns), "cow": preview_runner(new, ns)}, a.previews)
    print(row.format("", "before (full copies)", "copy on write"))
    print(
        row.format(
            "preview (ms)", med(pv["full"]["s"], 1e3, "{:.1f}"), med(pv["cow"]["s"], 1e3, "{:.1f}")
        )
    )
    print(
        row.format(
            "ops replayed",
            med(pv["full"]["replayed"], 1, "{:.0f}"),
            med(pv["cow"]["replayed"], 1, "{:.0f}"),
        )
    )
    print(f"  before / cow: {ratio(pv['full']['s'], pv['cow']['s'])}")


if __name__ == "__main__":
    main()
