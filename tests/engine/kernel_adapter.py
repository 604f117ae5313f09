"""Run oracle-shaped steps (op name, args) on the engine, answering like
`app.oracle.Kernel.run`: (True, value) or (False, errno name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.engine import EngineError, Machine
from app.oracle import call_args


class EngineRunner:
    """One engine machine driven with the oracle's step vocabulary."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine

    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        name, kw = call_args(op, args)
        try:
            if name == "fstat_size":
                return True, self.m.file(kw["fd"]).size
            fn: Callable[..., Any] = getattr(self.m, name)
            value = fn(**kw)
        except EngineError as e:
            return False, e.name
        # pending flags (a sleep on a page lock) have no kernel twin: it has no get_lock_pfn
        return True, None if name in ("fallocate", "close", "munmap") else value
