"""One live server for the client's tests (a loopback port, its own data directory)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.api.helpers import Server


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("live") / "data").start()
    yield s
    s.kill(signal.SIGTERM)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
