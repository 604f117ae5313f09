"""Server-side render of the session view: a 1 TiB file with 10,000 page runs.

The page map draws runs, pooled to the window's resolution, so its cost follows the
number of runs and its HTML stays bounded, whatever the file's size. This measures
GET /s/{sid} through the whole app in-process (routing, the session lock, the engine
reads, Jinja) against the same page for an empty session, in the same run.

Goals: under 100 ms and under 200 KB of HTML. Exit status 1 when missed.
Run: .venv/bin/python bench/ui.py  (or `make bench`)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.main import create_app
from app.settings import Settings

TIB = 2**40
ISLANDS = 5000  # one present page each, between holes: 10,000 runs
GOAL_MS, GOAL_KB = 100.0, 200.0
ROUNDS = 15


def big_trace() -> dict[str, object]:
    step = (TIB // 4096) // ISLANDS
    ops: list[dict[str, object]] = [
        {"op": "memfd_create", "args": {"name": "guest-ram", "flags": ["MFD_ALLOW_SEALING"]}},
        {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}},
        {"op": "ftruncate", "args": {"fd": 3, "length": TIB}},
        {"op": "owner_create", "args": {"name": "kvm0", "kind": "kvm"}},
        {"op": "register_guest", "args": {"fd": 3, "owner_id": "0"}},
    ]
    for i in range(ISLANDS):
        off = i * step * 4096
        ops.append({"op": "fallocate", "args": {"fd": 3, "mode": [], "offset": off, "len": 4096}})
    return {"profile": "rfc-v2", "phys_pages": 262144, "ops": ops}


async def measure(client: httpx.AsyncClient, url: str, htmx: bool = False) -> tuple[float, int]:
    times = []
    size = 0
    headers = {"HX-Request": "true"} if htmx else {}
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        r = await client.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text[:500]
        size = len(r.content)
    return statistics.median(times), size


async def main() -> int:
    data = Path(tempfile.mkdtemp(prefix="sealscope-bench-"))
    app = create_app(Settings(data=data, log_requests=False, rate=0, sync="normal"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            empty = (await c.post("/api/v1/sessions", json={})).json()["id"]
            t0 = time.perf_counter()
            r = await c.post("/api/v1/sessions", json={"trace": big_trace()})
            assert r.status_code == 201, r.text[:500]
            big = r.json()["id"]
            setup = time.perf_counter() - t0
            runs = await c.get(f"/api/v1/sessions/{big}/files/3/pages?limit=10000")
            nruns = len(runs.json()["extents"])
            await measure(c, f"/s/{empty}")  # warm up (templates compiled, caches)
            base_ms, base_size = await measure(c, f"/s/{empty}")
            big_ms, big_size = await measure(c, f"/s/{big}")
            frag_ms, frag_size = await measure(c, f"/s/{big}/pagemap", htmx=True)
    print(f"set-up: a 1 TiB guest-sealed memfd, {nruns:,} page runs ({setup:.1f} s)")
    print(f"empty session view : {base_ms:7.2f} ms  {base_size / 1024:7.1f} KB  (baseline)")
    print(f"1 TiB session view : {big_ms:7.2f} ms  {big_size / 1024:7.1f} KB")
    print(f"  (page map alone  : {frag_ms:7.2f} ms  {frag_size / 1024:7.1f} KB, htmx fragment)")
    print(f"ratio to baseline  : {big_ms / base_ms:7.2f}x time, {big_size / base_size:.2f}x size")
    ok = big_ms < GOAL_MS and big_size < GOAL_KB * 1024 and nruns >= 10000
    print(f"goal < {GOAL_MS:.0f} ms and < {GOAL_KB:.0f} KB: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
