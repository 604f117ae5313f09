"""Durability by op log: restarts rebuild every session; SIGKILL loses no acknowledged op;
idle sessions expire with their log. The in-process tests run on both stores (SQLite and
PostgreSQL: tests/pgserver.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.engine import Config
from app.session import Session
from app.settings import Settings
from app.store import Store
from tests.api.helpers import Server, guest_file, new_session, running, with_
from tests.pgserver import STORES, store_settings

API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


async def _snapshot(c: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    return {
        "detail": (await c.get(f"{API}/{sid}")).json(),
        "events": (await c.get(f"{API}/{sid}/events")).json(),
        "trace": (await c.get(f"{API}/{sid}/trace")).json(),
        "pages": (await c.get(f"{API}/{sid}/files/3/pages")).json(),
    }


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return store_settings(request, tmp_path)


TABLES = ("ops", "sessions")


def _rows(settings: Settings) -> tuple[int, int]:
    """(ops, sessions) rows in the store."""
    if settings.store == "sqlite":
        db = sqlite3.connect(settings.data / "sealscope.db")
        counts = [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES]
        db.close()
    else:
        import psycopg

        with psycopg.connect(settings.store) as c:
            counts = [c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES]  # type: ignore[index]
    return counts[0], counts[1]


@pytest.mark.anyio
async def test_restart_rebuilds_every_session(settings: Settings) -> None:
    settings = with_(settings, snapshot_every=3)
    async with running(settings) as (_, c):
        a, b = await new_session(c), await new_session(c, profile="guest-memfd")
        await guest_file(c, a)
        pfn = (await c.post(f"{API}/{a}/files/3/get_lock_pfn", json={"index": 2})).json()["pfn"]
        await c.post(
            f"{API}/{a}/files/3/fallocate", json={"mode": PUNCH, "offset": 0, "len": 1 << 14}
        )
        await c.post(f"{API}/{b}/guest_memfds", json={"size": 1 << 21})
        await c.post(f"{API}/{b}/files/3/fallocate", json={"mode": [], "offset": 0, "len": 4096})
        before = {s: await _snapshot(c, s) for s in (a, b)}
        assert before[a]["detail"]["waiters"]  # the punch sleeps
    async with running(settings) as (_, c):
        after = {s: await _snapshot(c, s) for s in (a, b)}
        assert after == before
        r = await c.post(f"{API}/{a}/put_unlock_pfn", json={"pfn": pfn})
        assert r.status_code == 200 and r.json()["wakes"]  # the sleeper came back too


@pytest.mark.anyio
async def test_rewind_is_durable(settings: Settings) -> None:
    async with running(settings) as (_, c):
        sid = await new_session(c)
        await guest_file(c, sid)
        await c.post(f"{API}/{sid}/rewind", json={"seq": 2})
        before = await _snapshot(c, sid)
        assert before["detail"]["redo"] == 3
    async with running(settings) as (_, c):
        after = await _snapshot(c, sid)
        # the state is the log's; the redo stack lives in memory (docs/service.md)
        assert after["detail"].pop("redo") == 0
        before["detail"].pop("redo")
        assert after == before


@pytest.mark.anyio
async def test_idle_sessions_expire_with_their_log(settings: Settings) -> None:
    async with running(with_(settings, session_ttl=0.3)) as (_, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={})
        await asyncio.sleep(1.0)
        assert (await c.get(f"{API}/{sid}")).status_code == 404
    assert _rows(settings) == (0, 0)


@pytest.mark.anyio
async def test_expired_at_start_are_dropped(settings: Settings) -> None:
    async with running(settings) as (_, c):
        sid = await new_session(c)
    time.sleep(0.3)
    async with running(with_(settings, session_ttl=0.2)) as (_, c):
        assert (await c.get(f"{API}/{sid}")).status_code == 404


def _burst(url: str, sid: str, acked: list[dict[str, Any]], stop: threading.Event) -> None:
    """Drive one session until the server dies; keep every acknowledged op."""
    b = f"{url}{API}/{sid}/files/3"
    i = 0
    with httpx.Client(timeout=5) as c:
        while not stop.is_set():
            off = (i % 64) * 4096
            op: tuple[str, dict[str, Any]]
            if i % 3 == 2:
                op = ("fallocate", {"mode": PUNCH, "offset": off, "len": 8192})
            else:
                op = ("fallocate", {"mode": [], "offset": off, "len": 4096 * (1 + i % 5)})
            try:
                r = c.post(f"{b}/{op[0]}", json=op[1])
            except httpx.HTTPError:
                return
            if r.status_code in (200, 409):
                acked.append({"op": op[0], "args": {"fd": 3, **op[1]}})
            i += 1


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_op(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(data).start()
    sids = []
    with httpx.Client(base_url=server.url) as c:
        for _ in range(4):
            sid = c.post(API, json={}).json()["id"]
            c.post(f"{API}/{sid}/memfds", json={"name": "vm0"})
            c.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 1 << 20})
            sids.append(sid)
    acked: dict[str, list[dict[str, Any]]] = {s: [] for s in sids}
    stop = threading.Event()
    threads = [threading.Thread(target=_burst, args=(server.url, s, acked[s], stop)) for s in sids]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.kill()  # SIGKILL in the middle of the burst
    stop.set()
    for t in threads:
        t.join()
    assert sum(len(v) for v in acked.values()) > 50

    # offline: the store holds every acknowledged op, and replays to a sound machine
    stored = {s.id: s for s in Store(data / "sealscope.db").load()}
    for sid in sids:
        ops = stored[sid].ops
        logged = [{"op": o.name, "args": o.args_dict()} for o in ops[2:]]
        mine = [{"op": a["op"], "args": {**a["args"]}} for a in acked[sid]]
        assert [_short(x) for x in logged[: len(mine)]] == [_short(x) for x in mine]
        assert len(logged) <= len(mine) + 1  # at most the one in flight
        session = Session(sid, Config(), Settings(), 0.0)
        assert session.load(ops) == []
        session.machine.check()

    # online: a restarted server has them all
    server = Server(data).start()
    try:
        with httpx.Client(base_url=server.url) as c:
            for sid in sids:
                assert c.get(f"{API}/{sid}").json()["seq"] == len(stored[sid].ops)
    finally:
        server.kill()


def _short(op: dict[str, Any]) -> tuple[Any, ...]:
    a = op["args"]
    return (op["op"], tuple(a["mode"]), a["offset"], a["len"])
