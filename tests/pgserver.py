"""A private PostgreSQL for the tests (app/cluster/pg.py): started once per run, one
fresh database per test. Skipped, saying why, only where PostgreSQL's server is not
installed (.ci/run installs Debian's postgresql) or psycopg is missing."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings

STORES = ["sqlite", "postgresql"]


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable_tmpdir() -> Path:
    """A fresh directory the postgres user can reach (pytest's tmp_path is 0700 root's)."""
    path = Path(tempfile.mkdtemp(prefix="sealscope-pg-"))
    os.chmod(path, 0o711)
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The URL of a running private PostgreSQL's server (its maintenance database)."""
    try:
        import psycopg  # noqa: F401

        from app.cluster.pg import Missing, Postgres, pg_bin

        pg_bin()
    except (ImportError, Missing) as exc:
        pytest.skip(f"PostgreSQL is not available here ({exc}); .ci/run installs it")
    root = reachable_tmpdir()
    # fsync off: a throwaway server (the tests kill workers, never it); commits stay
    # synchronous, so what a worker was answered is what every other worker reads
    pg = Postgres(root / "pg", free_port(), extra="-c fsync=off -c full_page_writes=off")
    try:
        pg.start()
    except Missing as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
    try:
        yield pg.url.rsplit("/", 1)[0]
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server: str) -> str:
    import psycopg

    name = "t_" + secrets.token_hex(6)
    with psycopg.connect(server + "/postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the private server."""
    return fresh_database(request.getfixturevalue("postgres"))


def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The tests' settings on the store request.param names."""
    s = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    if request.param == "postgresql":
        s = dataclasses.replace(s, store=request.getfixturevalue("pg_url"))
    return s
