"""A real cluster for the tests: the session's private PostgreSQL (tests/pgserver.py),
a fresh database, N workers and HAProxy on loopback ports (app/cluster/launch.py).
Skipped, saying why, only where HAProxy or PostgreSQL cannot be installed or run."""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.cluster.launch import Cluster


def free_ports(n: int) -> int:
    """A base port such that it and the n after it are free now."""
    for _ in range(50):
        with contextlib.closing(socket.socket()) as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + n >= 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for p in range(base, base + n + 1):
                    sock = stack.enter_context(contextlib.closing(socket.socket()))
                    sock.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    raise RuntimeError("no run of free ports")


@pytest.fixture
def cluster(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[int], Cluster]]:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (.ci/run installs Debian's haproxy)")
    monkeypatch.setenv("SEALSCOPE_RATE", "0")  # one client address drives many sessions
    monkeypatch.setenv("SEALSCOPE_LOG_REQUESTS", "0")
    made: list[Cluster] = []

    def start(workers: int) -> Cluster:
        for attempt in (1, 2):  # a port taken meanwhile by another process: new ports
            c = Cluster(tmp_path / f"data{len(made)}", free_ports(workers), workers, pg_url=pg_url)
            made.append(c)
            try:
                return c.start()
            except RuntimeError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    yield start
    for c in made:
        c.stop()
