"""Run the session log's KVM steps (KVM_CONTRACT.md's op names and args) on the
engine's Python face, answering like app.oracle_kvm.KvmKernel.run: (True, value) or
(False, errno name), exits and host accesses as plain dicts."""

from __future__ import annotations

from typing import Any

from app.engine import EngineError, Machine
from tests.engine.kernel_adapter import EngineRunner

KVM_OPS = (
    "vm_create",
    "vm_capabilities",
    "vm_guest_memfd",
    "set_user_memory_region",
    "set_memory_attributes",
    "vcpu_create",
    "vcpu_access",
    "mapping_access",
    "mapping_pin",
    "mapping_unpin",
    "vm_close",
)


def exit_dict(e: Any) -> dict[str, Any] | None:
    """An engine Exit as the contract's exit object."""
    if e is None:
        return None
    out: dict[str, Any] = {"reason": e.reason}
    if e.reason == "KVM_EXIT_MEMORY_FAULT":
        out |= {"flags": list(e.flags), "gpa": e.gpa, "size": e.size, "errno": e.errno}
    elif e.reason == "KVM_EXIT_MEMORY_ERROR":
        out |= {"type": e.type, "gpa": e.gpa, "size": e.size}
    else:
        out |= {"gpa": e.gpa, "size": e.size}
    return out


class EngineKvmRunner(EngineRunner):
    """One engine machine driven with the oracle's step vocabulary, KVM ops too."""

    gup_pins = True  # mapping_pin / mapping_unpin (kvm_logs.PIN_OPS)

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.addrs: dict[int, int] = {}  # map id -> address, kept after munmap

    def map_addr(self, map_id: int) -> int:
        return self.addrs[map_id]

    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        if op not in KVM_OPS:
            ok, value = super().run(op, args)
            if op == "mmap" and ok and isinstance(value, int):
                self.addrs[value] = self.m.mapping_addr(value)
            return ok, value
        kw = dict(args)
        if "vm_id" in kw:
            raw = kw.pop("vm_id")
            try:
                kw["vm"] = int(raw)
            except (TypeError, ValueError):
                return False, "ENOENT"
        if "vcpu_id" in kw:
            kw["vcpu"] = kw.pop("vcpu_id")
        try:
            if op == "vm_capabilities":
                return True, dict(self.m.vm_capabilities(kw["vm"]))
            value = getattr(self.m, op)(**kw)
        except EngineError as e:
            return False, e.name
        if op == "vm_create":
            return True, str(value)
        if op == "vcpu_access":
            return True, {
                "exit": exit_dict(value.exit),
                "value": value.value,
                "backing": value.backing,
                "fd": value.fd,
                "index": value.index,
            }
        if op == "mapping_access":
            return True, {"signal": value.signal, "value": value.value}
        if op == "mapping_pin":
            return True, {
                "pin_id": value.pin_id,
                "offset": value.offset,
                "pages": value.pages,
                "pfns": value.pfns,
            }
        if op in ("set_user_memory_region", "set_memory_attributes", "vm_close", "mapping_unpin"):
            return True, None
        return True, value
