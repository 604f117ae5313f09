"""Applying logged ops to a machine: the one path for live requests and replays."""

from __future__ import annotations

import errno as errno_mod
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from app.engine import EngineError, Machine
from app.models.sessions import TraceOp
from app.service.ops import OpSpec, parse
from app.settings import Settings
from app.store import StoredOp


@dataclass
class Outcome:
    result: BaseModel | None
    error: Exception | None
    recorded: bool  # the engine logged at least one event: the op belongs in the log

    @property
    def errno(self) -> str | None:
        if isinstance(self.error, EngineError):
            return self.error.name
        return None if self.error is None else type(self.error).__name__


def apply(m: Machine, spec: OpSpec, args: BaseModel) -> Outcome:
    before = m.event_count
    try:
        result = spec.handler(m, args)
    except Exception as exc:  # every failure is an answer; the caller decides
        return Outcome(None, exc, m.event_count != before)
    return Outcome(result, None, m.event_count != before)


def same_errno(a: str | None, b: str | None) -> bool:
    """Errno names alike, aliases included (EOPNOTSUPP is ENOTSUP on Linux)."""
    if a == b:
        return True
    va, vb = getattr(errno_mod, a or "", None), getattr(errno_mod, b or "", None)
    return va is not None and va == vb


class ReplayError(Exception):
    """The op at `index` of a log or trace cannot be replayed (status: 422 when it does
    not fit the schema, 409 when it ends differently)."""

    def __init__(self, index: int, op: str, why: str, status: int = 409) -> None:
        super().__init__(f"ops[{index}] ({op[:64]}): {why}")
        self.why = why
        self.index = index
        self.status = status


def describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errs[:3]]
        return "; ".join(parts)
    return str(exc)[:300]


def replay(m: Machine, ops: list[StoredOp], strict: bool = True) -> list[str]:
    """Apply logged ops in order. Returns the differences from the log (an op ending
    with another errno, or another event count); with strict, the first one raises."""
    diffs: list[str] = []
    for op in ops:
        name = op.name
        try:
            spec, args = parse(name, op.args_dict())
        except (ValidationError, ValueError, RecursionError) as exc:
            raise ReplayError(op.seq - 1, name, describe(exc), 422) from exc
        out = apply(m, spec, args)
        why = ""
        if not out.recorded:
            why = f"recorded no event ({describe(out.error) if out.error else 'no engine call'})"
        elif not same_errno(out.errno, op.errno):
            why = f"ended with {out.errno or 'success'}, the log says {op.errno or 'success'}"
        elif op.events and m.event_count != op.events:
            why = f"engine event count {m.event_count}, the log says {op.events}"
        if why:
            if strict:
                raise ReplayError(op.seq - 1, name, why)
            diffs.append(f"ops[{op.seq - 1}] ({name}): {why}")
    return diffs


def run_trace(
    m: Machine, ops: list[TraceOp], settings: Settings, record: Callable[[StoredOp], None]
) -> None:
    """Replay an imported trace into a fresh machine; the first bad op raises ReplayError.
    `record` gets each op as it is to be stored (arguments normalized, outcome as it
    happened)."""
    for i, t in enumerate(ops):
        try:
            spec, args = parse(t.op, t.args)
            if spec.check:
                spec.check(settings, m, args)
        except (ValidationError, ValueError) as exc:
            raise ReplayError(i, t.op, describe(exc), 422) from exc
        except Exception as exc:  # a limit of the service
            raise ReplayError(i, t.op, describe(exc), getattr(exc, "status", 409)) from exc
        out = apply(m, spec, args)
        if not out.recorded:
            why = describe(out.error) if out.error else "no engine call"
            status = 422 if isinstance(out.error, ValueError) else 409
            raise ReplayError(i, t.op, f"refused before reaching the engine: {why}", status)
        if "errno" in t.model_fields_set and not same_errno(t.errno, out.errno):
            raise ReplayError(
                i,
                t.op,
                f"ended with {out.errno or 'success'}, the trace says {t.errno or 'success'}",
            )
        record(StoredOp(i + 1, t.op, args.model_dump_json(), out.errno, m.event_count))
