"""A damaged store destroys nothing (issue 10, item 6): what cannot be replayed stays in
the database, its session comes back read-only and marked damaged (readable, its trace
exported up to the damage, said in its JSON and on its page), everything else starts,
and the log says what was found."""

from __future__ import annotations

import logging
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.api.helpers import Server, new_session, running

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"


async def _two_sessions(settings: Settings, ops: int = 12) -> tuple[str, str]:
    async with running(settings) as (_, c):
        a, b = await new_session(c), await new_session(c)
        for sid in (a, b):
            await c.post(f"{API}/{sid}/memfds", json={"name": "m"})
            for i in range(ops - 1):
                body = {"mode": [], "offset": 4096 * i, "len": 4096}
                assert (await c.post(f"{API}/{sid}/files/3/fallocate", json=body)).is_success
    return a, b


def _db(settings: Settings) -> closing[sqlite3.Connection]:
    return closing(sqlite3.connect(settings.data / "sealscope.db", isolation_level=None))


def _rows(settings: Settings, sid: str) -> list[tuple[object, ...]]:
    with _db(settings) as db:
        return db.execute("SELECT * FROM ops WHERE sid = ? ORDER BY seq", (sid,)).fetchall()


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE ops SET args = '{not json' WHERE sid = ? AND seq = 5",
        "UPDATE ops SET op = 'no_such_op' WHERE sid = ? AND seq = 5",
        "UPDATE ops SET args = '[1, 2]' WHERE sid = ? AND seq = 5",
        'UPDATE ops SET args = \'{"fd": "x"}\' WHERE sid = ? AND seq = 5',
        "DELETE FROM ops WHERE sid = ? AND seq = 5",
    ],
    ids=["args-not-json", "unknown-op", "args-not-object", "args-misfit", "gap"],
)
async def test_a_damaged_op_row_is_kept_and_its_session_marked(
    settings: Settings, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await _two_sessions(settings)
    with _db(settings) as db:
        db.execute(damage, (a,))
    rows = _rows(settings, a)
    for round in range(2):  # and again: a restart changes nothing
        with caplog.at_level(logging.WARNING, logger="sealscope"):
            async with running(settings) as (_, c):
                s = (await c.get(f"{API}/{a}")).json()
                assert s["seq"] == 4 and "op 5" in s["damage"], s
                trace = (await c.get(f"{API}/{a}/trace")).json()
                assert len(trace["ops"]) == 4  # exportable up to the damage
                assert (await c.post(API, json={"trace": trace})).status_code == 201
                page = await c.get(f"/s/{a}")
                assert page.status_code == 200 and "damaged" in page.text
                r = await c.post(f"{API}/{a}/memfds", json={})
                assert r.status_code == 409 and r.json()["errno"] == "EROFS", r.text
                r = await c.post(f"{API}/{a}/rewind", json={"seq": 1})
                assert r.status_code == 409 and r.json()["errno"] == "EROFS", r.text
                other = (await c.get(f"{API}/{b}")).json()
                assert other["seq"] == 12 + round and other["damage"] is None
                assert (await c.post(f"{API}/{b}/memfds", json={})).status_code == 201
        assert _rows(settings, a) == rows  # nothing deleted
        assert any(a[:8] in r.getMessage() and "op 5" in r.getMessage() for r in caplog.records)
        assert not any(a in r.getMessage() for r in caplog.records)  # the id, redacted
    async with running(settings) as (_, c):  # deleting it is the user's call
        assert (await c.delete(f"{API}/{a}")).status_code == 204
    assert _rows(settings, a) == []


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE sessions SET variants = '{oops' WHERE id = ?",
        "UPDATE sessions SET profile = 'windows' WHERE id = ?",
        "UPDATE sessions SET phys_pages = 'many' WHERE id = ?",
        "UPDATE sessions SET thp = x'00ff' WHERE id = ?",
    ],
    ids=["variants", "profile", "phys_pages", "thp"],
)
async def test_a_bad_sessions_row_does_not_stop_the_service(
    settings: Settings, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await _two_sessions(settings, ops=3)
    with _db(settings) as db:
        db.execute(damage, (a,))
    with caplog.at_level(logging.WARNING, logger="sealscope"):
        async with running(settings) as (_, c):
            assert (await c.get(f"{API}/{b}")).json()["seq"] == 3
            assert (await c.get(f"{API}/{a}")).status_code == 404
    with _db(settings) as db:  # kept, for whoever mends it
        assert db.execute("SELECT count(*) FROM sessions WHERE id = ?", (a,)).fetchone() == (1,)
    assert len(_rows(settings, a)) == 3
    assert any(a[:8] in r.getMessage() and "not loaded" in r.getMessage() for r in caplog.records)


async def test_a_zero_byte_database_is_reported(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings.data.mkdir(parents=True)
    (settings.data / "sealscope.db").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="sealscope"):
        async with running(settings) as (_, c):
            assert (await c.post(API, json={})).status_code == 201
    assert any("0 bytes" in r.getMessage() for r in caplog.records)


async def test_lost_acknowledged_ops_are_reported_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The WAL torn after a SIGKILL drops its last commits without a word from SQLite:
    the acknowledged count, kept outside the WAL, tells."""
    a, b = await _two_sessions(settings, ops=6)
    with _db(settings) as db:  # as a torn WAL would: the last 2 ops of a are gone
        db.execute("DELETE FROM ops WHERE sid = ? AND seq > 4", (a,))
    with caplog.at_level(logging.WARNING, logger="sealscope"):
        async with running(settings) as (_, c):
            s = (await c.get(f"{API}/{a}")).json()
            assert s["seq"] == 4
            assert (await c.get(f"{API}/{b}")).json()["seq"] == 6
    lost = [r.getMessage() for r in caplog.records if "acknowledged" in r.getMessage()]
    assert len(lost) == 1 and a[:8] in lost[0] and "6" in lost[0] and "4" in lost[0], lost


async def test_rewinds_and_deletes_are_not_mistaken_for_losses(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await _two_sessions(settings, ops=6)
    async with running(settings) as (_, c):
        assert (await c.post(f"{API}/{a}/rewind", json={"seq": 2})).status_code == 200
        assert (await c.delete(f"{API}/{b}")).status_code == 204
    with caplog.at_level(logging.WARNING, logger="sealscope"):
        async with running(settings) as (_, c):
            assert (await c.get(f"{API}/{a}")).json()["seq"] == 2
    assert not [r for r in caplog.records if "acknowledged" in r.getMessage()]


@pytest.mark.slow
def test_a_torn_wal_after_sigkill_is_reported(tmp_path: Path) -> None:
    """The issue's case: SIGKILL, then garbage over the WAL's later frames: SQLite drops
    the commits after the first bad frame without a word; the start says so."""
    data = tmp_path / "data"
    server = Server(data).start()
    with httpx.Client(base_url=server.url) as c:
        sid = c.post(API, json={}).json()["id"]
        c.post(f"{API}/{sid}/memfds", json={"name": "m"})
        for i in range(40):
            body = {"mode": [], "offset": 4096 * i, "len": 4096}
            assert c.post(f"{API}/{sid}/files/3/fallocate", json=body).is_success
        time.sleep(1.2)  # the acknowledged count is written at most once a second
        assert c.post(f"{API}/{sid}/memfds", json={}).is_success
        acked = c.get(f"{API}/{sid}").json()["seq"]
    server.kill()  # SIGKILL
    wal = data / "sealscope.db-wal"
    size = wal.stat().st_size
    assert size > 64 * 1024, size  # the ops are in the WAL, not checkpointed
    with wal.open("r+b") as f:  # garbage over the second half of the frames
        f.seek(size // 2)
        f.write(b"\xa5" * (size - size // 2))
    server = Server(data).start()
    try:
        with httpx.Client(base_url=server.url) as c:
            held = c.get(f"{API}/{sid}").json()["seq"]
    finally:
        server.kill(signal.SIGTERM)
    assert held < acked
    log = (data.parent / f"server-{server.port}.log").read_text()
    assert f"holds {held} ops but {acked} were acknowledged" in log, log[-2000:]
    assert sid not in log  # redacted
