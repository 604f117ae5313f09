"""Helpers of the API tests: session set-up and a real uvicorn server."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its lifespan running, and a client talking to it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


def with_(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)


async def new_session(c: httpx.AsyncClient, **body: Any) -> str:
    r = await c.post("/api/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def guest_file(c: httpx.AsyncClient, sid: str, size: int = 65536, kind: str = "kvm") -> str:
    """fd 3: a guest-sealed memfd of `size` bytes registered with a new owner (its id)."""
    b = f"/api/v1/sessions/{sid}"
    assert (
        await c.post(f"{b}/memfds", json={"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]})
    ).status_code == 201
    r = await c.post(f"{b}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
    assert r.status_code == 200, r.text
    assert (await c.post(f"{b}/files/3/ftruncate", json={"length": size})).status_code == 200
    r = await c.post(f"{b}/owners", json={"name": "kvm0", "kind": kind})
    owner = str(r.json()["owner_id"])
    r = await c.post(f"{b}/files/3/register_guest", json={"owner_id": owner})
    assert r.status_code == 200, r.text
    return owner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m app serve` in a subprocess."""

    def __init__(self, data: Path, **env: str) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SEALSCOPE_DATA": str(data), "SEALSCOPE_RATE": "0", **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        log = open(self.data.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/v1/scenarios", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                break
        raise RuntimeError(f"the server did not start (see {log.name})")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
