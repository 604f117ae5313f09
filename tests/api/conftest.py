"""Fixtures: a fresh app per test over a tmp data dir (httpx ASGITransport), and a real
uvicorn server on a free port for the tests that need one (SSE, SIGKILL, schemathesis)."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.api.helpers import Server, running


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data=tmp_path / "data", log_requests=False, rate=0)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(settings) as (_, c):
        yield c


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data").start()
    yield s
    s.kill(signal.SIGTERM)
