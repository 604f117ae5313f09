"""Throughput and latency of the REST service against a bare FastAPI endpoint.

    .venv/bin/python bench/api.py [--rounds 25] [--seconds 0.6] [--clients 1,16,64]
                                  [--workload files,kvm] [--engine-threads]
                                  [--batch-size 1000] [--only-batch]

Starts two uvicorn processes on free ports: the real app (`python -m app serve`, its
store in a temporary directory) and a bare FastAPI app with one pydantic-validated POST
and one GET. Each client is a keep-alive HTTP/1.1 connection (a minimal asyncio client,
so the load generator stays light) driving its own session with a mixed workload:
`files`, the file side's routes (fallocate, punch, get_lock_pfn / put_unlock_pfn, fault,
and reads of views: pages, file, events), or `kvm`, the KVM routes on a guest-memfd
session (a SW_PROTECTED VM's vCPU accesses, shared and private,
KVM_SET_MEMORY_ATTRIBUTES to private and back, the host's access through its mapping, a
punch of the guest_memfd, reads of the attributes and gfns views); a row each. Bare and
app runs alternate (--rounds pairs of --seconds each), so a slow spell of a shared
machine hits both; on this machine single pairs spread from 0.4 to 0.9, and the median
of 25 short pairs repeats within a few hundredths where that of 5 long ones did not.
Connections and sessions are set up before each run's clock starts. Prints the median
ops/s, p50 / p99 latency over all runs, and the median (min-max) of the runs' app/bare
ratios; then each server's CPU time an op (from /proc, median of the runs) and the
median of the runs' bare/app ratios of it: what the load of other jobs on a shared
machine moves least.

First, the batch table: one client on the app, fallocate and punch ops alternating,
one op a request against --batch-size ops a POST .../ops (each answer read and checked),
rounds alternating; the median ops/s of each with their spread, the ratio, and the
server's CPU time per op (from /proc: what a loaded machine's scheduling does not move).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]

BARE = """
from fastapi import FastAPI
from pydantic import BaseModel

class Body(BaseModel):
    fd: int = 3
    offset: int
    len: int

class Answer(BaseModel):
    fd: int
    size: int
    pending: bool

bare_app = FastAPI()

@bare_app.post("/bare/{sid}/{fd}")
async def post(sid: str, fd: int, body: Body) -> Answer:
    return Answer(fd=fd, size=body.offset + body.len, pending=False)

@bare_app.get("/bare/{sid}/{fd}")
async def get(sid: str, fd: int) -> Answer:
    return Answer(fd=fd, size=0, pending=False)
"""


class Conn:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> Conn:
        self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = (
            body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        )
        head = f"{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(data)}\r\n"
        if body is not None:
            head += "content-type: application/json\r\n"
        self.w.write(head.encode() + b"\r\n" + data)
        status_line = await self.r.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.r.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        raw = await self.r.readexactly(length) if length else b""
        return status, json.loads(raw) if raw else None

    async def timed(self, lat: list[float], method: str, path: str, body: Any = None) -> Any:
        """call, its latency appended to lat; the answer when below 300, else raise."""
        t0 = time.perf_counter()
        status, answer = await self.call(method, path, body)
        lat.append(time.perf_counter() - t0)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def close(self) -> None:
        self.w.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{cmd} did not start")


async def setup_session(c: Conn) -> tuple[str, str]:
    _, s = await c.call("POST", "/api/v1/sessions", {"phys_pages": 65536})
    b = f"/api/v1/sessions/{s['id']}"
    await c.call("POST", f"{b}/memfds", {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]})
    await c.call("POST", f"{b}/files/3/fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
    await c.call("POST", f"{b}/files/3/ftruncate", {"length": 1 << 26})
    _, o = await c.call("POST", f"{b}/owners", {"name": "kvm0", "kind": "kvm"})
    await c.call("POST", f"{b}/files/3/register_guest", {"owner_id": o["owner_id"]})
    await c.call("POST", f"{b}/owners/0/memslots", {"fd": 3, "gfn": 0, "npages": 1 << 14})
    return b, o["owner_id"]


MiB = 1 << 20
PRIVATE = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


async def setup_kvm_session(c: Conn) -> tuple[str, str]:
    """A guest-memfd session: a SW_PROTECTED VM with a vCPU, one 2 MiB slot over a
    guest_memfd and a shared memfd the VMM maps. Answers (session path, VM path)."""
    _, s = await c.call("POST", "/api/v1/sessions", {"profile": "guest-memfd", "phys_pages": 65536})
    b = f"/api/v1/sessions/{s['id']}"
    _, vm = await c.call("POST", f"{b}/vms", {"name": "vm", "type": "KVM_X86_SW_PROTECTED_VM"})
    v = f"{b}/vms/{vm['vm_id']}"
    await c.call("POST", f"{v}/vcpus", {})
    _, g = await c.call("POST", f"{v}/guest_memfd", {"size": 2 * MiB, "flags": []})
    _, f = await c.call("POST", f"{b}/memfds", {"name": "shared"})
    await c.call("POST", f"{b}/files/{f['fd']}/ftruncate", {"length": 2 * MiB})
    rw = {"prot": ["PROT_READ", "PROT_WRITE"], "flags": ["MAP_SHARED"]}
    _, m = await c.call("POST", f"{b}/files/{f['fd']}/mmap", {"offset": 0, "length": 2 * MiB, **rw})
    region = {
        "slot": 0,
        "flags": ["KVM_MEM_GUEST_MEMFD"],
        "guest_phys_addr": 0,
        "memory_size": 2 * MiB,
        "userspace_addr": m["addr"],
        "guest_memfd": g["fd"],
        "guest_memfd_offset": 0,
    }
    status, answer = await c.call("POST", f"{v}/memory_regions", region)
    if status != 200:
        raise RuntimeError(f"memory_regions: {status} {answer}")
    return b, f"{v}|{m['map_id']}|{g['fd']}"


async def kvm_client(c: Conn, b: str, vm: str, until: float, lat: list[float]) -> int:
    """The KVM routes: a page converted to private and back with vCPU accesses on each
    side, the host's access through its mapping, a punch of the guest_memfd, and reads of
    the VM's views (attributes, gfns)."""
    v, map_id, gmem = vm.split("|")
    i = n = 0
    while time.perf_counter() < until:
        page = (i * 7) % 512
        gpa = page * 4096
        one = {"address": gpa, "size": 4096}
        steps: list[tuple[str, str, Any]] = [
            ("POST", f"{v}/vcpus/0/access", {"gpa": gpa, "write": True, "value": i & 0xFF}),
            ("POST", f"{b}/mappings/{map_id}/access", {"offset": gpa}),
            ("POST", f"{v}/memory_attributes", {**one, "attributes": PRIVATE}),
            ("POST", f"{v}/vcpus/0/access", {"gpa": gpa, "private": True, "write": True}),
            ("POST", f"{v}/memory_attributes", {**one, "attributes": []}),
            ("POST", f"{b}/files/{gmem}/fallocate", {"mode": PUNCH, "offset": gpa, "len": 4096}),
            ("GET", f"{v}/memory_attributes?start={page}&limit=64", None),
            ("GET", f"{v}/gfns?start={page}&end={page + 64}", None),
        ]
        for method, path, body in steps:
            await c.timed(lat, method, path, body)
            n += 1
        i += 1
    return n


async def app_client(c: Conn, b: str, owner: str, until: float, lat: list[float]) -> int:
    i = n = 0
    while time.perf_counter() < until:
        page = (i * 7) % 1024
        steps: list[tuple[str, str, Any]] = [
            ("POST", f"{b}/files/3/fallocate", {"mode": [], "offset": page * 4096, "len": 16384}),
            ("POST", f"{b}/owners/{owner}/fault", {"gfn": page + 1}),
            ("POST", f"{b}/files/3/get_lock_pfn", {"index": page + 2, "alloc": True}),
            ("PUT_UNLOCK", "", None),
            ("POST", f"{b}/files/3/fallocate", {"mode": PUNCH, "offset": page * 4096, "len": 8192}),
            ("GET", f"{b}/files/3/pages?start={page}&end={page + 64}", None),
            ("GET", f"{b}/files/3", None),
            ("GET", f"{b}/events?after={max(0, n * 1 - 8)}&limit=8", None),
        ]
        pfn = None
        for method, path, body in steps:
            if method == "PUT_UNLOCK":
                method, path, body = "POST", f"{b}/put_unlock_pfn", {"pfn": pfn}
            answer = await c.timed(lat, method, path, body)
            if path.endswith("get_lock_pfn"):
                pfn = answer["pfn"]
            n += 1
        i += 1
    return n


async def bare_client(c: Conn, until: float, lat: list[float]) -> int:
    n = 0
    while time.perf_counter() < until:
        for k in range(8):
            t0 = time.perf_counter()
            if k < 5:
                await c.call("POST", "/bare/abc/3", {"offset": n, "len": 4096})
            else:
                await c.call("GET", "/bare/abc/3")
            lat.append(time.perf_counter() - t0)
            n += 1
    return n


async def level(
    kind: str, port: int, clients: int, seconds: float, pid: int = 0
) -> tuple[float, list[float], float]:
    """One timed run: (ops/s, latencies, the server's CPU seconds an op). Connections and
    sessions are set up before the clock starts and deleted after it stops."""
    lat: list[float] = []
    conns = [await Conn(port).open() for _ in range(clients)]
    setup = setup_kvm_session if kind == "kvm" else setup_session
    sessions = [await setup(c) for c in conns] if kind != "bare" else []
    cpu = cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    until = t0 + seconds
    if kind != "bare":
        client = kvm_client if kind == "kvm" else app_client
        runs = (client(c, b, o, until, lat) for c, (b, o) in zip(conns, sessions, strict=True))
    else:
        runs = (bare_client(c, until, lat) for c in conns)
    counts = await asyncio.gather(*runs)
    wall = time.perf_counter() - t0
    cpu = (cpu_seconds(pid) - cpu if pid else 0.0) / max(1, sum(counts))
    for c, (b, _) in zip(conns, sessions, strict=False):
        await c.call("DELETE", b)
    for c in conns:
        c.close()
    return sum(counts) / wall, lat, cpu


def _alloc_punch(i: int) -> dict[str, Any]:
    mode = PUNCH if i % 2 else []
    return {"mode": mode, "offset": (i * 7 % 1024) * 4096, "len": 8192}


async def single_ops(c: Conn, b: str, until: float) -> int:
    """One op a request: fallocate and punch, alternating."""
    n = 0
    while time.perf_counter() < until:
        status, answer = await c.call("POST", f"{b}/files/3/fallocate", _alloc_punch(n))
        if status != 200:
            raise RuntimeError(f"fallocate: {status} {answer}")
        n += 1
    return n


def batch_bodies(size: int) -> list[bytes]:
    """The same op mix, `size` ops a body (encoded before the clock starts)."""
    return [
        json.dumps(
            {
                "ops": [
                    {"op": "fallocate", "args": {"fd": 3, **_alloc_punch(k * size + i)}}
                    for i in range(size)
                ]
            }
        ).encode()
        for k in range(max(1, 1024 // size) * 2)
    ]


async def batch_ops(c: Conn, b: str, until: float, bodies: list[bytes]) -> int:
    """The same ops, many a request (POST .../ops); every answer is read and checked."""
    n = k = 0
    size = len(json.loads(bodies[0])["ops"])
    while time.perf_counter() < until:
        status, answer = await c.call("POST", f"{b}/ops", bodies[k % len(bodies)])
        k += 1
        if status != 200 or any(r["errno"] for r in answer["results"]):
            raise RuntimeError(f"ops: {status} {str(answer)[:300]}")
        n += size
    return n


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def batch_level(port: int, pid: int, size: int, seconds: float) -> tuple[float, float, int]:
    """One timed run from one client, one op a request (size 0) or `size` a batch:
    (ops/s, the server's CPU seconds during it, ops)."""
    c = await Conn(port).open()
    b, _ = await setup_session(c)
    bodies = batch_bodies(size) if size else []
    cpu = cpu_seconds(pid)
    t0 = time.perf_counter()
    until = t0 + seconds
    n = await (batch_ops(c, b, until, bodies) if size else single_ops(c, b, until))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu
    await c.call("DELETE", b)
    c.close()
    return n / wall, cpu, n


def batch_table(port: int, pid: int, rounds: int, seconds: float, size: int) -> None:
    runs: dict[int, list[tuple[float, float, int]]] = {0: [], size: []}
    for _ in range(rounds):
        for k in (0, size):
            runs[k].append(asyncio.run(batch_level(port, pid, k, seconds)))
    single, batched = ([r[0] for r in runs[k]] for k in (0, size))
    ratios = [a / b for a, b in zip(batched, single, strict=True)]
    med = statistics.median
    us = {k: 1e6 * sum(r[1] for r in v) / max(1, sum(r[2] for r in v)) for k, v in runs.items()}
    print(
        f"one client, {rounds} rounds alternating: one op a request "
        f"{med(single):.0f} ops/s ({min(single):.0f}-{max(single):.0f}, server CPU "
        f"{us[0]:.0f} us/op); batches of {size} {med(batched):.0f} ops/s "
        f"({min(batched):.0f}-{max(batched):.0f}, server CPU {us[size]:.1f} us/op); "
        f"ratio {med(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f}); "
        f"server CPU ratio {us[0] / max(us[size], 1e-9):.1f}"
    )


def pct(lat: list[float], q: float) -> float:
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * q))] * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.6, help="length of one timed run")
    ap.add_argument("--rounds", type=int, default=25, help="bare/app run pairs per level")
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument(
        "--workload", default="files,kvm", help="files (the file side's routes), kvm or both"
    )
    ap.add_argument("--engine-threads", action="store_true")
    ap.add_argument("--batch-size", type=int, default=1000, help="ops a batch (0: no batch table)")
    ap.add_argument("--only-batch", action="store_true", help="the batch table only")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sealscope-bench-"))
    (tmp / "bare.py").write_text(BARE)
    env = {
        **os.environ,
        "SEALSCOPE_DATA": str(tmp / "data"),
        "SEALSCOPE_RATE": "0",
        "SEALSCOPE_ENGINE_THREADS": "1" if args.engine_threads else "0",
    }
    app_port, bare_port = free_port(), free_port()
    py = sys.executable
    procs = [
        start([py, "-m", "app", "serve", "--port", str(app_port)], app_port, env, ROOT),
        start(
            [
                py,
                "-m",
                "uvicorn",
                "--app-dir",
                str(tmp),
                "bare:bare_app",
                "--port",
                str(bare_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            bare_port,
            env,
            ROOT,
        ),
    ]
    try:
        print(
            f"engine calls {'in threads' if args.engine_threads else 'inline'}; "
            f"{args.rounds} rounds of {args.seconds:g} s, bare and app alternating; "
            f"{os.cpu_count()} cores shared with the clients"
        )
        if args.batch_size:
            batch_table(app_port, procs[0].pid, args.rounds, args.seconds, args.batch_size)
        print(
            f"{'workload':>8} {'clients':>7} | {'bare ops/s':>10} {'p50':>7} {'p99':>7} | "
            f"{'app ops/s':>10} {'p50':>7} {'p99':>7} | ratio (median, min-max)"
        )
        levels = [
            (w, int(x))
            for w in args.workload.split(",")
            for x in args.clients.split(",")
            if not args.only_batch
        ]
        for workload, n in levels:
            kind = "kvm" if workload == "kvm" else "app"
            bare_ops: list[float] = []
            app_ops: list[float] = []
            bare_lat: list[float] = []
            app_lat: list[float] = []
            bare_cpu: list[float] = []
            app_cpu: list[float] = []
            for _ in range(args.rounds):
                ops, lat, cpu = asyncio.run(level("bare", bare_port, n, args.seconds, procs[1].pid))
                bare_ops.append(ops)
                bare_lat += lat
                bare_cpu.append(cpu)
                ops, lat, cpu = asyncio.run(level(kind, app_port, n, args.seconds, procs[0].pid))
                app_ops.append(ops)
                app_lat += lat
                app_cpu.append(cpu)
            ratios = [a / b for a, b in zip(app_ops, bare_ops, strict=True)]
            cpu_ratios = [b / a for a, b in zip(app_cpu, bare_cpu, strict=True) if a and b]
            print(
                f"{workload:>8} {n:>7} | {statistics.median(bare_ops):>10.0f} "
                f"{pct(bare_lat, 0.5):>6.2f}ms {pct(bare_lat, 0.99):>5.2f}ms | "
                f"{statistics.median(app_ops):>10.0f} "
                f"{pct(app_lat, 0.5):>6.2f}ms {pct(app_lat, 0.99):>5.2f}ms | "
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            )
            if cpu_ratios:  # the server's CPU an op: what other jobs' load moves least
                print(
                    f"{'':>16}   server CPU an op: "
                    f"bare {1e6 * statistics.median(bare_cpu):.0f} us, "
                    f"app {1e6 * statistics.median(app_cpu):.0f} us; bare/app "
                    f"{statistics.median(cpu_ratios):.2f} "
                    f"({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f})"
                )
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
