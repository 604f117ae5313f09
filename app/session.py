"""A session: one Machine plus its op log (in memory and in the store), in-memory
snapshots for fast rewinds, a lock so the engine is never entered twice, and a change
signal for live event streams; and Budget, the snapshot bytes all sessions share. The
registry (app/registry.py) holds them.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import Callable

from app.engine import Config, Machine
from app.oplog import Fetch, light, restore
from app.rebuild import replay_stored
from app.service.replay import replay
from app.settings import Settings
from app.store import StoredOp


class Budget:
    """Bytes of snapshots all sessions may hold together (settings.snapshot_total)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()  # snapshots are taken in worker threads

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size

    def resize(self, old: int, new: int) -> bool:
        """A held snapshot grew or shrank (what it holds beside its live machine): may
        go over the limit (the next snapshot of its session thins out); whether within."""
        with self._lock:
            self.used += new - old
            return self.used <= self.limit


class Session:
    def __init__(
        self,
        sid: str,
        config: Config,
        settings: Settings,
        created: float,
        budget: Budget | None = None,
    ) -> None:
        self.id = sid
        self.config = config
        self.machine = Machine(config)
        self.created = created
        self.active = created
        self.ops: list[StoredOp] = []
        self.op_events: list[int] = []  # engine event count after each op
        self.snapshots: dict[int, Machine] = {}
        self.snap_bytes: dict[int, int] = {}
        self.snap_every = max(1, settings.snapshot_every)
        self.snap_budget = settings.snapshot_budget
        self.budget = budget or Budget(settings.snapshot_total)
        self.lock = asyncio.Lock()
        self.snapping = False  # a snapshot task is on its way
        self.closed = False
        self.rewinds: list[int] = []  # the event count each rewind went back to
        self.redo: list[StoredOp] = []  # ops rewinds took out, oldest first (not stored)
        self._changed = asyncio.Event()
        self.published = 0  # engine events of logged ops, as live streams may see them
        # Events that may be huge (a punch of a million pages makes a million callbacks)
        # are read in a worker thread: those of long ops, and all of a replayed past.
        self.big: list[tuple[int, int]] = []  # (first, last) event seqs of long ops
        self.unknown_upto = 0
        # what made the stored log unreplayable past op seq (None: sound); a damaged
        # session is read only: its stored rows past the damage are kept, not replayed
        self.damage: str | None = None
        self.fetch: Fetch | None = None  # reads payloads back from the store (oplog.py)
        self.op_bytes: list[int] = []  # bytes of the log's args up to each op

    @property
    def seq(self) -> int:
        """Operations in the log so far."""
        return len(self.ops)

    def op_seq_of(self, event_seq: int) -> int | None:
        """The op (1-based) whose call produced engine event `event_seq`."""
        i = bisect.bisect_left(self.op_events, event_seq)
        return i + 1 if i < len(self.op_events) else None

    # -- the log ------------------------------------------------------------------------
    @property
    def log_bytes(self) -> int:
        """Bytes of the log's arguments (what max_log_bytes limits)."""
        return self.op_bytes[-1] if self.op_bytes else 0

    def push(self, op: StoredOp) -> None:
        """A new op ends the redo stack (a redo puts the rest back)."""
        self.redo.clear()
        self.ops.append(op)
        self.op_events.append(op.events)
        self.op_bytes.append(self.log_bytes + len(op.args))

    def elide(self, first: int = 0) -> None:
        """Ops after `first` are stored: keep light copies of them in memory."""
        if self.fetch is not None:
            for i in range(first, len(self.ops)):
                self.ops[i] = light(self.ops[i])

    def full_ops(self, lo: int, hi: int) -> list[StoredOp]:
        """Ops lo+1 .. hi with their real arguments (payloads read from the store)."""
        return restore(self.ops[lo:hi], lo, self.fetch)

    def load(self, ops: list[StoredOp]) -> list[str]:
        """Replay a stored log into this (fresh) session; returns the differences (an op
        that cannot be replayed at all marks the session damaged: app/rebuild.py)."""
        return replay_stored(self, ops)

    def record(self, op: StoredOp) -> None:
        """push, then maybe a snapshot (replays)."""
        self.push(op)
        self.snapshot_maybe()

    def snapshot_due(self) -> bool:
        return self.seq - max(self.snapshots, default=0) >= self.snap_every

    def snapshot_maybe(self) -> None:
        if self.snapshot_due():
            self.snapshot()

    def snapshot(self) -> None:
        """Keep a clone of the machine as it is after op `seq`, thinning out (every other
        older one goes, the spacing doubles) to stay within the session's byte budget
        and the service's.  A clone is copy on write: it costs what it holds beside the
        live machine (what the ops since have changed), measured again at each
        snapshot (snap_bytes; between two, the ops of one interval may go over)."""
        n = self.seq
        if n == 0 or n in self.snapshots:
            return
        while not self.measure_snapshots():
            if not self.snapshots:
                return  # the service's budget is spent by other sessions
            self.snap_every *= 2
            keys = sorted(self.snapshots)
            self.drop_snapshots(set(keys[-2::-2] or keys).__contains__)
        self.snapshots[n] = snap = self.machine.clone()
        self.snap_bytes[n] = snap.memory_owned(beside=self.machine)  # its tables: a few KiB
        self.budget.resize(0, self.snap_bytes[n])

    def measure_snapshots(self) -> bool:
        """snap_bytes: what each snapshot holds beside the live machine now; whether
        they fit the session's budget and the service's."""
        fits = self.budget.resize(0, 0)
        for k, snap in self.snapshots.items():
            size = snap.memory_owned(beside=self.machine)
            fits = self.budget.resize(self.snap_bytes[k], size)
            self.snap_bytes[k] = size
        return fits and sum(self.snap_bytes.values()) <= self.snap_budget

    def drop_snapshots(self, which: Callable[[int], bool] = lambda k: True) -> None:
        for k in [k for k in self.snapshots if which(k)]:
            del self.snapshots[k]
            self.budget.give(self.snap_bytes.pop(k))

    def machine_at(self, n: int) -> Machine:
        """A new machine in the state after op n (the nearest snapshot, then replay)."""
        base = max((k for k in self.snapshots if k <= n), default=0)
        m = self.snapshots[base].clone() if base else Machine(self.config)
        replay(m, self.full_ops(base, n), strict=False)
        return m

    def truncate(self, n: int, machine: Machine) -> None:
        """Forget ops after n; `machine` is the state after op n."""
        del self.ops[n:]
        del self.op_events[n:]
        del self.op_bytes[n:]
        self.drop_snapshots(lambda k: k > n)
        self.machine = machine
        self.big = [b for b in self.big if b[1] <= machine.event_count]
        self.unknown_upto = max(self.unknown_upto, machine.event_count)
        self.rewinds.append(machine.event_count)

    def mark_big(self, first: int, last: int) -> None:
        if last >= first:
            self.big.append((first, last))

    def small_events(self, after: int, limit: int) -> bool:
        """Whether events (after, after + limit] are known to be small."""
        if after < self.unknown_upto:
            return False
        i = bisect.bisect_right(self.big, (after + limit, 2**63))
        return i == 0 or self.big[i - 1][1] <= after

    # -- change signal for event streams --------------------------------------------------
    def notify(self) -> None:
        self.published = self.machine.event_count
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    def changed(self) -> asyncio.Event:
        return self._changed
