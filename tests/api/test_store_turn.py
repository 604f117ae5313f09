"""The SQLite store's group commit (synchronous=NORMAL): the writes of one event-loop
turn commit in one transaction, and each caller resumes only after that commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.store import Store, StoredOp, StoredSession, StoreError


def test_one_turn_one_transaction_answered_after_commit(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path / "db.sqlite")
        await store.open()
        await store.create_session(
            StoredSession("a", "rfc-v2", 4096, "never", [], 0.0, 0.0), [], 1.0
        )
        conn = store._conn
        assert conn is not None
        begins: list[str] = []
        conn.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None)
        seen: list[tuple[int, bool, int]] = []

        async def one(seq: int) -> None:
            await store.append("a", StoredOp(seq, "x", "{}", None, seq), 2.0)
            # resumed: the op is committed, in the database, no transaction open
            (n,) = conn.execute("SELECT count(*) FROM ops WHERE seq = ?", (seq,)).fetchone()
            seen.append((seq, conn.in_transaction, n))

        await asyncio.gather(*(one(i) for i in range(1, 41)))  # all in one turn
        assert len(begins) == 1
        assert sorted(seen) == [(i, False, 1) for i in range(1, 41)]

        begins.clear()
        await store.append("a", StoredOp(41, "x", "{}", None, 41), 2.0)  # alone in its turn
        assert len(begins) == 1
        await store.close()
        other = Store(tmp_path / "db.sqlite")
        (loaded,) = other.load()
        assert [o.seq for o in loaded.ops] == list(range(1, 42))

    asyncio.run(run())


def test_a_failing_write_fails_alone_in_its_turn(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path / "db.sqlite")
        await store.open()
        await store.create_session(
            StoredSession("a", "rfc-v2", 4096, "never", [], 0.0, 0.0), [], 1.0
        )
        await store.append("a", StoredOp(1, "x", "{}", None, 1), 2.0)
        ops = [StoredOp(i, "x", "{}", None, i) for i in (2, 1, 3)]  # 1 again: a duplicate
        results = await asyncio.gather(
            *(store.append("a", op, 3.0) for op in ops), return_exceptions=True
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], StoreError)
        await store.close()
        (loaded,) = Store(tmp_path / "db.sqlite").load()
        assert [o.seq for o in loaded.ops] == [1, 2, 3]

    asyncio.run(run())


def test_close_commits_what_the_turn_wrote(tmp_path: Path) -> None:
    async def run() -> None:
        store = Store(tmp_path / "db.sqlite")
        await store.open()
        await store.create_session(
            StoredSession("a", "rfc-v2", 4096, "never", [], 0.0, 0.0), [], 1.0
        )
        task = asyncio.ensure_future(store.append("a", StoredOp(1, "x", "{}", None, 1), 2.0))
        await asyncio.sleep(0)  # the write is queued for the next turn
        await store.close()  # before that turn: close commits it
        await task
        with pytest.raises(RuntimeError, match="closed"):
            await store.append("a", StoredOp(2, "x", "{}", None, 2), 2.0)
        (loaded,) = Store(tmp_path / "db.sqlite").load()
        assert [o.seq for o in loaded.ops] == [1]

    asyncio.run(run())
