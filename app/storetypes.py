"""The store's rows as Python values: an op of a log, a session's configuration, and
the checks that read them from a database that may be damaged."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


class StoredOp(NamedTuple):
    """One op of a log. All atoms (args is JSON text), so the garbage collector stops
    tracking these: logs of millions of ops cost no GC pauses."""

    seq: int
    name: str
    args: str  # a JSON object
    errno: str | None  # how it ended (None: success)
    events: int  # the engine event count after it
    elided: bool = False  # args hold a light copy: the payload is in the store (oplog.py)

    def args_dict(self) -> dict[str, Any]:
        """The arguments (ValueError when the stored text is not a JSON object)."""
        value = json.loads(self.args)
        if not isinstance(value, dict):
            raise ValueError(f"the stored args are not a JSON object: {self.args[:60]!r}")
        return value

    @property
    def op(self) -> dict[str, Any]:
        """The op as a trace has it: {"op": name, "args": {...}}."""
        return {"op": self.name, "args": self.args_dict()}


@dataclass
class StoredSession:
    id: str
    profile: str
    phys_pages: int
    thp: str
    variants: list[str]
    created: float
    active: float
    ops: list[StoredOp] = field(default_factory=list)


def session_of(row: tuple[Any, ...]) -> StoredSession | str:
    """A sessions row as a StoredSession, or what is wrong with it."""
    sid, profile, phys_pages, thp, variants, created, active = row
    try:
        names = json.loads(variants) if isinstance(variants, str) else None
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
        return f"variants {str(variants)[:40]!r} is not a JSON list of names"
    if not isinstance(sid, str) or not sid:
        return "no id"
    for name, value, kind in (
        ("profile", profile, str),
        ("thp", thp, str),
        ("phys_pages", phys_pages, int),
        ("created", created, int | float),
        ("active", active, int | float),
    ):
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{name} {str(value)[:40]!r} is not a {getattr(kind, '__name__', 'number')}"
    return StoredSession(sid, profile, phys_pages, thp, names, float(created), float(active))


def op_of(seq: Any, op: Any, args: Any, errno: Any, events: Any) -> StoredOp:
    """An ops row as it is; a value of the wrong type becomes one replay refuses."""
    return StoredOp(
        seq if type(seq) is int else -1,
        op if isinstance(op, str) else f"<{type(op).__name__} op>",
        args if isinstance(args, str) else "<not text>",
        errno if isinstance(errno, str) else None,
        events if type(events) is int else 0,
    )


def check_directory(data: Path) -> None:
    """The data directory exists and this process can write in it (SQLite needs to make
    its -wal file there), or RuntimeError naming it: not SQLite's "disk I/O error"."""
    try:
        data.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".sealscope-probe-", dir=data)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RuntimeError(
            f"the data directory {data} is not writable ({exc.strerror or exc}): the store "
            "needs to write there (give SEALSCOPE_DATA a writable directory)"
        ) from exc
