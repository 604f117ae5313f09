"""`sealscope cluster [--workers N] [--port P] [--data DIR]` (make cluster): a private
PostgreSQL under DIR/pg, N workers on ports P+1..P+N sharing it as their op log, and
HAProxy on P in front of them; the workers' pids one per line in DIR/cluster/workers.pid.
Ctrl-C or SIGTERM stops it all. A worker that dies is not restarted: its sessions move
to the others (docs/deploy.md)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import httpx

from app.cluster.haproxy import config, write_config
from app.cluster.pg import Missing, Postgres, apt_install, pg_bin


def _need() -> str:
    """HAProxy's path, after installing Debian's postgresql and haproxy where missing."""
    missing = []
    try:
        pg_bin()
    except Missing:
        missing.append("postgresql")
    if not shutil.which("haproxy"):
        missing.append("haproxy")
    if missing:
        print(f"cluster: installing Debian's {' '.join(missing)}", flush=True)
        apt_install(*missing)
    path = shutil.which("haproxy")
    if path is None:
        raise Missing("haproxy is not installed")
    return path


class Cluster:
    def __init__(
        self, data: Path, port: int, workers: int, host: str = "127.0.0.1", pg_url: str = ""
    ) -> None:
        self.data = data.resolve()
        self.port = port
        self.host = host
        self.ports = [port + i for i in range(1, workers + 1)]
        self.pg = Postgres(self.data / "pg", port + workers + 1)
        self.pg_url = pg_url  # a PostgreSQL of someone else's (the tests'): not started here
        self.workers: list[subprocess.Popen[bytes]] = []
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.dir = self.data / "cluster"

    def start(self) -> Cluster:
        haproxy = _need()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.pg_url:
            self.pg_url = self.pg.start().url
        try:
            for i, p in enumerate(self.ports, 1):
                self.workers.append(self.start_worker(i, p))
            (self.dir / "workers.pid").write_text("".join(f"{w.pid}\n" for w in self.workers))
            for i, p in enumerate(self.ports, 1):
                try:
                    _wait_http(f"http://{self.host}:{p}/api/v1/scenarios", 60, self.workers[i - 1])
                except RuntimeError as exc:
                    tail = (self.dir / f"worker{i}.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"worker {i}: {exc}; its log ends:\n{tail}") from exc
            rate = float(os.environ.get("SEALSCOPE_RATE", "500"))
            cfg = write_config(self.dir / "haproxy.cfg", config(self.port, self.ports, rate))
            self.haproxy = subprocess.Popen([haproxy, "-db", "-f", str(cfg)])
            _wait_http(f"{self.url}/api/v1/scenarios")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_worker(self, i: int, port: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SEALSCOPE_STORE": self.pg_url,
            "SEALSCOPE_RATE": "0",  # the balancer limits each client (every one is its address)
        }
        log = open(self.dir / f"worker{i}.log", "ab")  # noqa: SIM115 (the child keeps it)
        argv = [sys.executable, "-m", "app", "serve", "--host", self.host, "--port", str(port)]
        argv += ["--data", str(self.dir / f"worker{i}")]
        try:
            return subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        finally:
            log.close()

    def stop(self) -> None:
        procs = [*self.workers, *([self.haproxy] if self.haproxy else [])]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.workers, self.haproxy = [], None
        if self.pg_url == self.pg.url:
            self.pg.stop()


def _wait_http(
    url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Until url answers 200 (RuntimeError after timeout, or at once if proc exits)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"it exited with status {proc.returncode} (a port in use?)")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="sealscope cluster", description=__doc__)
    p.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "3")))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--data", default=os.environ.get("SEALSCOPE_DATA", "./data"))
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    cluster = Cluster(Path(args.data), args.port, args.workers)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background (ignored)
    try:
        cluster.start()
        print(
            f"cluster: {cluster.url} (HAProxy) -> {len(cluster.ports)} workers on ports "
            f"{cluster.ports[0]}..{cluster.ports[-1]}, PostgreSQL on {cluster.pg.port}; "
            "Ctrl-C stops it",
            flush=True,
        )
        while True:
            time.sleep(1)
            if cluster.haproxy is not None and cluster.haproxy.poll() is not None:
                print("cluster: HAProxy exited; stopping", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        return 0
    except (Missing, RuntimeError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        cluster.stop()
