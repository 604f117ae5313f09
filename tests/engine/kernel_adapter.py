"""Run oracle-shaped steps (op name, args) on the engine, answering like
`app.oracle.Kernel.run`: (True, value) or (False, errno name)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.engine import EngineError, Machine

_ALIASES = {
    "KVM_CREATE_GUEST_MEMFD": "gmem_create",
    "F_ADD_SEALS": "add_seals",
    "F_GET_SEALS": "get_seals",
}


class EngineRunner:
    """One engine machine driven with the oracle's step vocabulary."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine

    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        name = _ALIASES.get(op, op)
        kw = dict(args)
        if "len" in kw:
            kw["length"] = kw.pop("len")
        if name == "pwrite":
            data = kw.pop("data", None)
            count = kw.pop("count", None)
            if data is None:
                data = bytes(int(count or 0))
            kw["data"] = data.encode() if isinstance(data, str) else bytes(data)
        if name == "fstat_size":
            return True, self.m.file(kw["fd"]).size
        fn: Callable[..., Any] = getattr(self.m, name)
        try:
            value = fn(**kw)
        except EngineError as e:
            return False, e.name
        if name == "fallocate":
            value = None
        return True, value
