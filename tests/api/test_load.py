"""Bounded load against a real server on loopback: while one client runs the heaviest op
the API allows, or 100 SSE history replays run, or 2,000 slow connections trickle their
heads, another client's requests are answered in under a second. Each part is bounded
in count, time and memory and stops by itself (some 20 s in all)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import Server

API = "/api/v1/sessions"
HEAVY_PAGES = 1 << 20  # the server's max_phys_pages: the heaviest op it allows
REPLAYS, EVENTS = 100, 1000
SLOW = 2000
U64 = 2**64 - 1


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("load") / "data"
    data.mkdir()
    s = Server(
        data,
        SEALSCOPE_MAX_PHYS_PAGES=str(HEAVY_PAGES),
        SEALSCOPE_LOG_REQUESTS="0",
        SEALSCOPE_SNAPSHOT_EVERY="100000",
    ).start()
    yield s
    s.kill(signal.SIGTERM)


class Prober:
    """Another client: a small request every 50 ms on its own thread; the slowest."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        self.sid = self.client.post(API, json={"phys_pages": 1024}).json()["id"]
        self.worst = 0.0
        self.count = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            t0 = time.monotonic()
            try:
                r = self.client.get(f"{API}/{self.sid}")
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            self.worst = max(self.worst, time.monotonic() - t0)
            self.count += 1

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        self.client.close()


def _rss_mib(s: Server) -> float:
    assert s.proc is not None
    for line in Path(f"/proc/{s.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_heaviest_op(server: Server) -> None:
    c = httpx.Client(base_url=server.url, timeout=60)
    sid = c.post(API, json={"phys_pages": HEAVY_PAGES}).json()["id"]
    b = f"{API}/{sid}"
    c.post(f"{b}/memfds", json={"name": "vm", "flags": ["MFD_ALLOW_SEALING"]})
    c.post(f"{b}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
    c.post(f"{b}/files/3/ftruncate", json={"length": HEAVY_PAGES * 4096})
    owner = c.post(f"{b}/owners", json={"name": "r", "kind": "recorder"}).json()["owner_id"]
    c.post(f"{b}/files/3/register_guest", json={"owner_id": owner})
    fill = {"mode": [], "offset": 0, "len": HEAVY_PAGES * 4096}
    punch = {**fill, "mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]}
    with Prober(server.url) as probe:
        for _ in range(2):
            assert c.post(f"{b}/files/3/fallocate", json=fill).status_code == 200
            r = c.post(f"{b}/files/3/invalidate", json={"start": 0, "end": U64})
            assert r.status_code == 200
            assert r.json()["callbacks_total"] == HEAVY_PAGES and len(r.content) < 600_000
            assert c.post(f"{b}/files/3/fallocate", json=punch).status_code == 200
        assert c.get(f"{b}/at/1").status_code == 200  # a preview replays it all
    c.delete(b)
    c.close()
    assert not probe.failures and probe.count > 0, probe.failures[:3]
    assert probe.worst < 1.0, probe.worst
    assert _rss_mib(server) < 600


async def _replay(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path}?after=0 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    seen, tail = 0, b""
    try:
        async with asyncio.timeout(30):
            while seen < EVENTS:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                seen += (tail + chunk).count(b"\nid: ")
                tail = chunk[-8:]
    finally:
        writer.close()
    return seen


def test_sse_replays(server: Server) -> None:
    c = httpx.Client(base_url=server.url, timeout=30)
    ops: list[dict[str, Any]] = [{"op": "memfd_create", "args": {"name": "a"}}]
    ops += [{"op": "fcntl", "args": {"fd": 3, "cmd": "F_GET_SEALS"}}] * (EVENTS - 1)
    trace = {"profile": "rfc-v2", "phys_pages": 1024, "thp": "never", "ops": ops}
    sid = c.post(API, json={"trace": trace}).json()["id"]
    path = f"{API}/{sid}/events/stream"

    async def crowd() -> list[int]:
        return await asyncio.gather(*(_replay(server.port, path) for _ in range(REPLAYS)))

    with Prober(server.url) as probe:
        seen = asyncio.run(crowd())
    c.close()
    assert seen == [EVENTS] * REPLAYS
    assert not probe.failures and probe.count > 0, probe.failures[:3]
    assert probe.worst < 1.0, probe.worst


def test_slow_connections(server: Server) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if max(soft, hard) < SLOW + 200:
        pytest.skip(f"the open-file limit here ({hard}) is below {SLOW} slow connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, SLOW * 2)), hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(SLOW):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /api/v1/scenarios HTTP/1.1\r\n")
            s.setblocking(False)
            socks.append(s)
        with Prober(server.url) as probe:
            for _ in range(6):  # one header byte each every 0.5 s, for 3 s
                for s in socks:
                    with contextlib.suppress(OSError):
                        s.send(b"X")
                time.sleep(0.5)
        assert not probe.failures and probe.count > 0, probe.failures[:3]
        assert probe.worst < 1.0, probe.worst
    finally:
        for s in socks:
            s.close()
    assert _rss_mib(server) < 600
