"""Slow clients against a real server: a request head or body that trickles in is cut
off at its deadline, connections past max_connections evict the oldest still waiting
for a head, a fresh client is still answered, and the log says so in a line or two."""

from __future__ import annotations

import logging
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.serving import RateLimitedWarnings
from tests.api.helpers import Server


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[Server]:
    s = Server(
        tmp_path / "data",
        SEALSCOPE_HEAD_TIMEOUT="1",
        SEALSCOPE_BODY_TIMEOUT="1",
        SEALSCOPE_MAX_CONNECTIONS="64",
        SEALSCOPE_LOG_REQUESTS="0",
    )
    s.data.mkdir(parents=True)
    s.start()
    yield s
    s.kill(signal.SIGTERM)


def _connect(port: int, first: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes) -> tuple[bool, bytes]:
    """Send `trickle` every 0.2 s for 0.6 s (bytes coming in do not extend the deadline
    of 1 s), then wait quietly until the server closes; (closed in time, bytes got)."""
    got = b""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() < t0 + seconds:
        try:
            data = sock.recv(4096)
            if not data:
                return True, got
            got += data
        except TimeoutError:
            pass
        except OSError:  # reset: closed while bytes were on their way
            return True, got
        if time.monotonic() < t0 + 0.6:
            try:
                sock.sendall(trickle)
            except OSError:
                return True, got
    return False, got


@pytest.mark.parametrize(
    ("first", "trickle"),
    [
        (b"GET /api/v1/scenarios HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n"),
        (b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\ncontent-length: 4000\r\n\r\n{", b" "),
    ],
    ids=["head", "body"],
)
def test_a_trickling_request_is_cut_off(slow_server: Server, first: bytes, trickle: bytes) -> None:
    with _connect(slow_server.port, first) as sock:
        closed, got = _closed_within(sock, 6.0, trickle)
    assert closed, "the server kept a trickling connection past its deadline"
    if b"X-A" in trickle:
        assert got.startswith(b"HTTP/1.1 408")


def test_crowd_past_the_cap_evicts_tricklers_and_a_fresh_client_is_answered(
    slow_server: Server,
) -> None:
    crowd = [_connect(slow_server.port, b"GET / HTTP/1.1\r\n") for _ in range(200)]
    try:
        t0 = time.monotonic()
        r = httpx.get(slow_server.url + "/api/v1/scenarios", timeout=5)
        assert r.status_code == 200 and time.monotonic() - t0 < 1.0
        time.sleep(0.3)  # well before head_timeout: only the cap closed them
        closed = 0
        for sock in crowd:
            sock.settimeout(0.01)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed += 1
        assert closed >= 200 - 64, closed
    finally:
        for sock in crowd:
            sock.close()
    time.sleep(1.5)  # the rest meet head_timeout
    slow_server.kill(signal.SIGTERM)
    log = (slow_server.data.parent / f"server-{slow_server.port}.log").read_text()
    assert "max_connections=64" in log and "open files: limit" in log
    assert len(log.splitlines()) < 40, log[-2000:]


def test_when_every_connection_is_busy_a_newcomer_gets_503(slow_server: Server) -> None:
    sid = httpx.post(slow_server.url + "/api/v1/sessions", json={}).json()["id"]
    head = f"GET /api/v1/sessions/{sid}/events/stream HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    streams = [_connect(slow_server.port, head) for _ in range(64)]
    try:
        for s in streams:  # each answered: busy with its request, not waiting for a head
            assert s.recv(64).startswith(b"HTTP/1.1 200")
        with _connect(slow_server.port, b"GET /api/v1/scenarios HTTP/1.1\r\nHost: x\r\n\r\n") as s:
            s.settimeout(5)
            got = s.recv(4096)
        assert got.startswith(b"HTTP/1.1 503") and b'"limit": "max_connections"' in got
    finally:
        for s in streams:
            s.close()


def test_warnings_of_one_kind_are_rate_limited() -> None:
    f = RateLimitedWarnings(burst=20, period=0.2)

    def record(level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, "", 0, "Invalid HTTP request.", (), None)

    passed = [f.filter(record()) for _ in range(100)]
    assert passed == [True] * 20 + [False] * 80
    assert all(f.filter(record(logging.INFO)) for _ in range(100))  # the request log
    time.sleep(0.25)
    r = record()
    assert f.filter(r) and "[80 like it left out" in r.getMessage()


def _answer(sock: socket.socket) -> bytes:
    """One whole answer (head and Content-Length body) read off a keep-alive connection."""
    sock.settimeout(5)
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(65536)
    head, _, body = got.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_the_head_deadline_moves_with_each_request(slow_server: Server) -> None:
    """A keep-alive connection waits head_timeout (1 s) from its last answer, not from
    its first: the deadline the timer was set for has moved, and it waits the rest."""
    ask = b"GET /api/v1/scenarios HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(slow_server.port, ask) as sock:
        t0 = time.monotonic()
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.7)
        sock.sendall(ask)
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        last = time.monotonic()
        sock.settimeout(max(0.05, t0 + 1.4 - time.monotonic()))
        with pytest.raises(TimeoutError):  # past the first request's deadline: still open
            sock.recv(1)
        sock.settimeout(5)
        closed_at = None
        try:
            if sock.recv(1) == b"":
                closed_at = time.monotonic()
        except OSError:
            closed_at = time.monotonic()
    assert closed_at is not None and closed_at - last < 3.0
