"""The cluster (docs/deploy.md): ops/s of 1 worker and of 2 workers behind HAProxy on
the same load, and the time from a worker's death to its sessions answering again.

    .venv/bin/python bench/cluster.py [--rounds 7] [--seconds 1.0] [--clients 16]

One private PostgreSQL (app/cluster/pg.py) with a database for each cluster; cluster A
is HAProxy + 1 worker, cluster B HAProxy + 2 workers (app/cluster/launch.py). Each
client is a keep-alive connection to the balancer (bench/api.py's minimal client)
driving its own session with fallocate and punch ops alternating, each op one request
answered after its commit. Rounds alternate A and B, so a slow spell of the shared
machine hits both: the median ops/s of each with their spread, and the median (min-max)
of the rounds' B/A ratios. For reference, the single process on SQLite (`sealscope
serve`, no balancer) takes the same load in the same rounds.

Then failover, --kills times on B: SIGKILL the worker holding the most sessions, and
time from the kill until every one of its sessions has answered an op through the
balancer again (claimed by the other worker, its log replayed); the worker is started
again between kills (its sessions hand back to it on their next request).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from api import Conn  # noqa: E402  (bench/api.py)

from app.cluster.launch import Cluster, _wait_http  # noqa: E402
from app.cluster.pg import Postgres  # noqa: E402
from app.store_pg import holders  # noqa: E402
from tests.cluster.conftest import free_ports  # noqa: E402
from tests.pgserver import fresh_database, reachable_tmpdir  # noqa: E402

API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
ONE_PAGE = {"mode": [], "offset": 0, "len": 4096}


async def session(c: Conn) -> str:
    status, body = await c.call("POST", API, {})
    assert status == 201, body
    sid = str(body["id"])
    assert (await c.call("POST", f"{API}/{sid}/memfds", {"name": "vm0"}))[0] == 201
    assert (await c.call("POST", f"{API}/{sid}/files/3/ftruncate", {"length": 1 << 24}))[0] == 200
    return sid


async def drive(c: Conn, sid: str, until: float) -> int:
    n = 0
    path = f"{API}/{sid}/files/3/fallocate"
    while time.monotonic() < until:
        off = (n % 512) * 4096
        body = {"mode": PUNCH if n % 2 else [], "offset": off, "len": 4096}
        status, answer = await c.call("POST", path, body)
        assert status == 200, answer
        n += 1
    return n


async def prepare(port: int, clients: int) -> list[tuple[Conn, str]]:
    conns = [await Conn(port).open() for _ in range(clients)]
    return [(c, await session(c)) for c in conns]


async def level(pairs: list[tuple[Conn, str]], seconds: float) -> float:
    start = time.monotonic()
    counts = await asyncio.gather(*(drive(c, s, start + seconds) for c, s in pairs))
    return sum(counts) / (time.monotonic() - start)


async def failover(c: Cluster, sids: list[str]) -> tuple[float, int]:
    """Kill the worker holding most of sids; seconds until each of its sessions
    answered an op through the balancer again, and how many there were."""
    held = holders(c.pg_url)
    victim = max(c.workers, key=lambda w: sum(held.get(s) == w.pid for s in sids))
    moved = [s for s in sids if held.get(s) == victim.pid]
    victim.kill()
    killed = time.monotonic()

    async def again(sid: str) -> float:
        conn = await Conn(c.port).open()
        path = f"{API}/{sid}/files/3/fallocate"
        try:
            while True:
                try:
                    status, _ = await conn.call("POST", path, ONE_PAGE)
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    conn = await Conn(c.port).open()
                    continue
                if status == 200:
                    return time.monotonic() - killed
                await asyncio.sleep(0.005)
        finally:
            conn.close()

    took = max(await asyncio.gather(*(again(s) for s in moved)))
    victim.wait()
    i = c.workers.index(victim)
    c.workers[i] = c.start_worker(i + 1, c.ports[i])
    _wait_http(f"http://127.0.0.1:{c.ports[i]}/api/v1/scenarios")
    time.sleep(1.0)  # HAProxy's checks see it up (rise 2 x 300 ms)
    return took, len(moved)


def single(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_ports(0)
    env = {**os.environ, "SEALSCOPE_RATE": "0", "SEALSCOPE_LOG_REQUESTS": "0"}
    argv = [sys.executable, "-m", "app", "serve", "--port", str(port), "--data", str(root)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    _wait_http(f"http://127.0.0.1:{port}/api/v1/scenarios")
    return proc, port


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--kills", type=int, default=3)
    args = p.parse_args()
    os.environ.update(SEALSCOPE_RATE="0", SEALSCOPE_LOG_REQUESTS="0")
    root = reachable_tmpdir()
    pg = Postgres(root / "pg", free_ports(0)).start()
    server = pg.url.rsplit("/", 1)[0]
    a = b = None
    proc = None
    try:
        a = Cluster(root / "a", free_ports(1), 1, pg_url=fresh_database(server)).start()
        b = Cluster(root / "b", free_ports(2), 2, pg_url=fresh_database(server)).start()
        proc, sport = single(root / "sqlite")
        loop = asyncio.new_event_loop()
        on = {
            "A": loop.run_until_complete(prepare(a.port, args.clients)),
            "B": loop.run_until_complete(prepare(b.port, args.clients)),
            "S": loop.run_until_complete(prepare(sport, args.clients)),
        }
        runs: dict[str, list[float]] = {"A": [], "B": [], "S": []}
        for r in range(args.rounds):
            for k in ("AB" if r % 2 == 0 else "BA") + "S":
                runs[k].append(loop.run_until_complete(level(on[k], args.seconds)))
        ratios = [y / x for x, y in zip(runs["A"], runs["B"], strict=True)]
        med = statistics.median
        print(f"{args.clients} clients, {args.rounds} rounds of {args.seconds:g} s each")
        for k, what in (("S", "1 process, SQLite, no balancer"), ("A", "1 worker + HAProxy"),
                        ("B", "2 workers + HAProxy")):  # fmt: skip
            v = runs[k]
            print(f"  {what:32} {med(v):7.0f} ops/s ({min(v):.0f}-{max(v):.0f})")
        print(f"  2 workers / 1 worker: {med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
        for c, _ in on["S"]:
            c.close()
        sids = [s for _, s in on["B"]]
        for c, _ in on["A"] + on["B"]:
            c.close()
        took = []
        for _ in range(args.kills):
            t, n = loop.run_until_complete(failover(b, sids))
            took.append(t)
            print(f"  failover: {n} sessions answering again {t * 1000:.0f} ms after SIGKILL")
        print(f"  failover: median {med(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms")
        loop.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        for c in (a, b):
            if c is not None:
                c.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
