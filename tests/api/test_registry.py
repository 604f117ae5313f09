"""The registry's snapshots and the store's group commit, below the HTTP layer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.engine import Config
from app.service.ops import parse
from app.service.replay import apply
from app.session import Budget, Session
from app.settings import Settings
from app.store import Store, StoredOp, StoredSession
from tests.pgserver import STORES

MIB = 1 << 20


def _op(s: Session, op: str, **args: Any) -> None:
    spec, parsed = parse(op, args)
    out = apply(s.machine, spec, parsed)
    assert out.error is None
    s.record(StoredOp(s.seq + 1, op, parsed.model_dump_json(), None, s.machine.event_count))


def _session(budget: Budget, ops: int = 100, **settings: int) -> Session:
    """A 4 GiB machine whose ops each fallocate the next page of a file: each changes
    a frame chunk (2 KiB) and a page-cache leaf."""
    s = Session("s", Config(phys_pages=1 << 20), Settings(**settings), 0.0, budget)  # type: ignore[arg-type]
    _op(s, "memfd_create", name="f", flags=["MFD_ALLOW_SEALING"])
    for i in range(1, ops):
        _op(s, "fallocate", fd=3, offset=4096 * (i - 1), len=4096)
    return s


def test_snapshots_cost_what_they_hold_beside_the_live_machine() -> None:
    """Copy-on-write snapshots of a machine far bigger than the budget (its frame array
    alone is 32 MiB) fit: each holds only what the ops since it changed."""
    budget = Budget(1 << 30)
    s = _session(budget, snapshot_every=4, snapshot_budget=MIB // 4)
    assert s.machine.memory_bytes() > 32 * MIB
    assert len(s.snapshots) >= 3
    assert s.measure_snapshots()  # fit
    assert budget.used == sum(s.snap_bytes.values()) <= MIB // 4
    assert s.snap_every > 4  # the first ones thinned out: each holds chunks of its own
    held = [s.snapshots[k].memory_owned(beside=s.machine) for k in sorted(s.snapshots)]
    assert held[0] > 4 * 1024 and held == [s.snap_bytes[k] for k in sorted(s.snapshots)]
    for n in (100, 61, 37, 3, 1):
        assert s.machine_at(n).file(3).nr_pages == n - 1
    assert s.machine_at(0).files() == []
    s.drop_snapshots()
    assert budget.used == 0


def test_a_fresh_snapshot_costs_nothing_until_the_machine_moves() -> None:
    s = _session(Budget(1 << 30), ops=2, snapshot_every=1000)
    s.snapshot()
    (snap,) = s.snapshots.values()
    assert snap.memory_owned(beside=s.machine) < 64 * 1024
    assert snap.memory_owned() > 16 * MIB  # with no one beside: half of what the two share
    _op(
        s,
        "fallocate",
        fd=3,
        offset=0,
        len=4096,
        mode=["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"],
    )
    assert snap.memory_owned(beside=s.machine) > 4 * 1024  # what the punch copied


def test_the_service_wide_budget_is_shared() -> None:
    budget = Budget(2 * MIB)
    a = _session(budget, snapshot_every=10, snapshot_budget=100 * MIB)
    a.snapshot()
    assert len(a.snapshots) > 0 and budget.used == sum(a.snap_bytes.values()) <= 2 * MIB
    budget.resize(0, 2 * MIB)  # someone else spends the rest
    b = _session(budget, snapshot_every=10, snapshot_budget=100 * MIB)
    assert len(b.snapshots) == 0  # none while the service's budget is spent
    assert b.machine_at(55).file(3).nr_pages == 54  # slower, not wrong
    budget.resize(2 * MIB, 0)
    a.drop_snapshots()
    assert budget.used == 0


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
