"""The registry's snapshots and the store's group commit, below the HTTP layer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.engine import Config
from app.registry import Budget, Session
from app.service.ops import parse
from app.service.replay import apply
from app.settings import Settings
from app.store import Store, StoredOp, StoredSession
from tests.pgserver import STORES


def _session(budget: Budget, **settings: int) -> Session:
    s = Session("s", Config(phys_pages=4096), Settings(**settings), 0.0, budget)  # type: ignore[arg-type]
    spec, args = parse("memfd_create", {"name": "f", "flags": ["MFD_ALLOW_SEALING"]})
    apply(s.machine, spec, args)
    s.record(StoredOp(1, "memfd_create", args.model_dump_json(), None, 1))
    for i in range(2, 101):
        spec, args = parse("ftruncate", {"fd": 3, "length": 4096 * i})
        apply(s.machine, spec, args)
        s.record(StoredOp(i, "ftruncate", args.model_dump_json(), None, i))
    return s


def test_snapshots_thin_out_within_the_budgets() -> None:
    size = _session(Budget(0)).machine.memory_bytes()
    budget = Budget(10 * size)
    s = _session(budget, snapshot_every=4, snapshot_budget=3 * size)
    assert 0 < len(s.snapshots) <= 3 and s.snap_every > 4
    assert budget.used == sum(s.snap_bytes.values())
    for n in (100, 37, 3):
        assert s.machine_at(n).file(3).size == 4096 * n
    assert s.machine_at(0).files() == []
    s.drop_snapshots()
    assert budget.used == 0


def test_the_service_wide_budget_is_shared() -> None:
    size = _session(Budget(0)).machine.memory_bytes()
    budget = Budget(4 * size + size // 2)
    a = _session(budget, snapshot_every=10, snapshot_budget=100 * size)
    b = _session(budget, snapshot_every=10, snapshot_budget=100 * size)
    assert len(a.snapshots) == 4 and len(b.snapshots) == 0
    assert b.machine_at(55).file(3).size == 4096 * 55  # slower, not wrong


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("sync", ["normal", "full"])
def test_group_commit(tmp_path: Path, sync: str, kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url") if kind == "postgresql" else ""

    def make() -> Any:
        if url:
            from app.store_pg import PgStore

            return PgStore(url, sync)
        return Store(tmp_path / "db.sqlite", sync)

    async def run() -> None:
        store = make()
        await store.open()
        row = StoredSession("a", "rfc-v2", 4096, "never", [], 0.0, 0.0)
        await store.create_session(row, [], 1.0)
        ops = [StoredOp(i, "x", "{}", None, i) for i in range(1, 201)]
        await asyncio.gather(*(store.append("a", op, 2.0) for op in ops))
        with pytest.raises(RuntimeError):  # a duplicate seq fails alone
            await store.append("a", ops[0], 3.0)
        await store.truncate("a", 150, 4.0)
        await store.close()
        other = make()
        (loaded,) = other.load_all() if url else other.load()
        assert [o.seq for o in loaded.ops] == list(range(1, 151))
        assert loaded.active == 4.0

    asyncio.run(run())


def test_one_store_one_service(tmp_path: Path) -> None:
    """The open store holds its file: a second one on the same path fails to open, and
    loads (at start-up) go through the open connection."""

    async def run() -> None:
        store = Store(tmp_path / "db.sqlite")
        await store.open()
        await store.create_session(
            StoredSession("a", "rfc-v2", 4096, "never", [], 0.0, 0.0), [], 1.0
        )
        other = Store(tmp_path / "db.sqlite")
        with pytest.raises(RuntimeError, match="in use by another sealscope process"):
            await other.open()
        assert [s.id for s in store.load()] == ["a"]
        await store.close()
        await other.open()  # free again
        assert [s.id for s in other.load()] == ["a"]
        await other.close()

    asyncio.run(run())


def test_which_events_may_be_huge() -> None:
    s = Session("s", Config(phys_pages=4096), Settings(), 0.0)
    s.mark_big(5, 7)
    s.mark_big(20, 20)
    assert s.small_events(0, 4) and s.small_events(7, 12) and s.small_events(20, 100)
    assert not s.small_events(0, 5) and not s.small_events(6, 1) and not s.small_events(8, 12)
    s.unknown_upto = 30  # a replayed past: unknown
    assert not s.small_events(25, 1) and s.small_events(30, 10)
