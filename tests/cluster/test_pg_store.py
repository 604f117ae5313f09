"""The PostgreSQL store's own failures, in process: its connection lost under a session
(the op answered 503 and undone, the session claimed again from the log), and a damaged
log (the session comes back read only, its rows kept), as docs/service.md promises for
SQLite."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import psycopg
import pytest

from app.settings import Settings
from tests.api.helpers import new_session, running

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(data=tmp_path / "data", log_requests=False, rate=0, store=pg_url)


def _terminate_mine(url: str) -> int:
    """End every PostgreSQL connection of this process (as a failover or an operator's
    pg_terminate_backend would); how many."""
    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (f"sealscope {os.getpid()}",),
        ).fetchall()
    return len(rows)


async def test_a_lost_connection_answers_503_undoes_and_reclaims(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        assert (await c.post(f"{API}/{sid}/memfds", json={})).status_code == 201
        assert _terminate_mine(settings.store) >= 1  # the owner connection among them
        r = await c.post(f"{API}/{sid}/memfds", json={})
        assert r.status_code == 503 and r.json()["errno"] == "EIO", r.text
        assert app.state.registry.store.held == set()  # the locks went with it
        s = (await c.get(f"{API}/{sid}")).json()  # claimed again, from the log
        assert s["seq"] == 1 and [f["fd"] for f in s["files"]] == [3]
        assert (await c.post(f"{API}/{sid}/memfds", json={})).status_code == 201
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 2
    async with running(settings) as (_, c):
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 2


async def test_a_damaged_log_gives_a_read_only_session_and_keeps_its_rows(
    settings: Settings,
) -> None:
    async with running(settings) as (_, c):
        sid = await new_session(c)
        for _ in range(4):
            assert (await c.post(f"{API}/{sid}/memfds", json={})).status_code == 201
    with psycopg.connect(settings.store, autocommit=True) as db:
        db.execute("DELETE FROM ops WHERE sid = %s AND seq = 3", (sid,))
        before = db.execute("SELECT seq FROM ops WHERE sid = %s ORDER BY seq", (sid,)).fetchall()
    async with running(dataclasses.replace(settings)) as (_, c):
        s = (await c.get(f"{API}/{sid}")).json()
        assert s["seq"] == 2 and "op 3" in s["damage"], s
        r = await c.post(f"{API}/{sid}/memfds", json={})
        assert r.status_code == 409 and r.json()["errno"] == "EROFS", r.text
    with psycopg.connect(settings.store, autocommit=True) as db:
        after = db.execute("SELECT seq FROM ops WHERE sid = %s ORDER BY seq", (sid,)).fetchall()
    assert after == before == [(1,), (2,), (4,)]
