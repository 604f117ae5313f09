"""A full disk (issue 10, item 7): every write the store cannot make answers 503 naming
the store, and the session in memory stays what the disk holds (before and after a
restart). The disk is filled by a fault-injecting connection (tests only): SQLite's
own max_page_count cannot refuse a DELETE, and a tiny filesystem needs mount(2)."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.api.helpers import new_session, running

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"


class FullDisk:
    """A connection whose writes fail as SQLite's do when the disk is full."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.full = False

    def execute(self, sql: str, *args: Any) -> Any:
        if self.full and not sql.startswith(("BEGIN", "ROLLBACK", "PRAGMA", "SELECT")):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def fill(app: FastAPI) -> FullDisk:
    store = app.state.registry.store
    disk = FullDisk(store._conn)
    store._conn = disk
    disk.full = True
    return disk


def _full(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["errno"] == "ENOSPC" and "sealscope.db" in body["message"], body
    assert "full" in body["message"]


async def test_delete_on_a_full_disk(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={})
        disk = fill(app)
        _full(await c.delete(f"{API}/{sid}"))
        _full(await c.post(f"/s/{sid}/delete"))
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 1  # still there, as on disk
        disk.full = False
        assert (await c.delete(f"{API}/{sid}")).status_code == 204
    async with running(settings) as (_, c):
        assert (await c.get(f"{API}/{sid}")).status_code == 404


async def test_delete_refused_by_a_full_disk_survives_a_restart(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={})
        fill(app)
        _full(await c.delete(f"{API}/{sid}"))
    async with running(settings) as (_, c):
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 1


async def test_rewind_on_a_full_disk(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        for _ in range(3):
            await c.post(f"{API}/{sid}/memfds", json={})
        disk = fill(app)
        _full(await c.post(f"{API}/{sid}/rewind", json={"seq": 1}))
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 3
        disk.full = False
    async with running(settings) as (_, c):
        s = (await c.get(f"{API}/{sid}")).json()
        assert s["seq"] == 3 and len(s["files"]) == 3


async def test_ops_and_new_sessions_on_a_full_disk(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        fill(app)
        _full(await c.post(f"{API}/{sid}/memfds", json={}))
        _full(await c.post(API, json={}))
        s = (await c.get(f"{API}/{sid}")).json()
        assert s["seq"] == 0 and s["files"] == []
        assert len(app.state.registry.sessions) == 1
    async with running(settings) as (app, c):
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 0
        assert len(app.state.registry.sessions) == 1


async def test_expiry_on_a_full_disk_keeps_the_session(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        reg = app.state.registry
        fill(app)
        reg.sessions[sid].active = 0.0
        assert await reg.expire() == 0  # could not delete: kept, in memory as on disk
        assert (await c.get(f"{API}/{sid}")).status_code == 200
