"""The KVM ops in the comparison with the real kernel: how each is asked of this
machine's KVM (app.oracle_kvm), what of the two answers is compared, and what this
machine cannot answer, marked intended with the reason (KVM.md, its last section).

Compared (KVM_CONTRACT.md): ok vs errno for every op; vm_guest_memfd's fd and size;
vcpu_create's id; vcpu_access's exit and byte; mapping_access's signal and byte. VM
ids and map ids are handles, translated as they appear; a VMM address inside an
engine mapping becomes the same offset in the kernel's twin of that mapping.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from app.models.compare import Answer
from app.oracle_kvm import KvmKernel
from app.service.play import Played

KVM_OPS = (
    "vm_create",
    "vm_guest_memfd",
    "set_user_memory_region",
    "set_memory_attributes",
    "vcpu_create",
    "vcpu_access",
    "mapping_access",
    "pre_fault_memory",
    "vm_close",
)
R_VM_TYPE = (
    "this machine's KVM (PVM backend, no VMX/SVM) makes only KVM_X86_DEFAULT_VM: "
    "VM types 1-5 are EINVAL here"
)
R_ATTRS = (
    "this machine's KVM has no memory attributes (KVM_CAP_MEMORY_ATTRIBUTES 0): "
    "KVM_SET_MEMORY_ATTRIBUTES is ENOTTY here"
)
R_PRE_FAULT = (
    "this machine's KVM has no TDP MMU (KVM_CAP_PRE_FAULT_MEMORY 0): KVM_PRE_FAULT_MEMORY "
    "checks the range (EINVAL) and then refuses"
)
R_VIEW = "a guest's own private/shared view (SNP C-bit, TDX shared bit) needs an SNP or TDX VM"
R_RFC_VIEW = "rfc-v2's private access (the guest asks for private_fd) has no twin in Linux"
R_RFC = "the RFC's fd-based memslot (KVM_MEM_FD with fd, private_fd) was never merged into Linux"
R_AS_ID = (
    "this machine's KVM has one address space (KVM_CAP_MULTI_ADDRESS_SPACE 0); with SMM, "
    "mainline gives a VM without private memory two (slot >> 16 == 1)"
)
# the confidential-VM ops and the proposals after 6.18: never asked of this machine
COCO_REASONS = {
    "launch_update": (
        "SNP LAUNCH_UPDATE / TDX INIT_MEM_REGION need an SNP or TDX VM; this machine's KVM "
        "(PVM backend) makes only KVM_X86_DEFAULT_VM"
    ),
    "launch_finish": (
        "SNP LAUNCH_FINISH / TDX FINALIZE_VM need an SNP or TDX VM; this machine's KVM "
        "(PVM backend) makes only KVM_X86_DEFAULT_VM"
    ),
    "memory_failure": (
        "a memory failure is kernel-internal (memory_failure()); MADV_HWPOISON would "
        "poison a real page of this machine, so it is not asked"
    ),
    "mapping_pin": (
        "a GUP pin is kernel-internal (pin_user_pages); userspace reaches it only through "
        "O_DIRECT, vhost, VFIO or io_uring fixed buffers, which the oracle does not drive"
    ),
    "mapping_unpin": (
        "a GUP pin is kernel-internal (unpin_user_pages); the oracle takes no pins to drop"
    ),
    "set_memory_attributes2": (
        "KVM_SET_MEMORY_ATTRIBUTES2 is the in-place conversion proposal (series v8, June "
        "2026), not merged: Linux 6.18 has no such ioctl"
    ),
}
PAGE = 4096


@dataclass
class KvmSide:
    """The KVM half of the comparison's bookkeeping."""

    vms: dict[str, str] = field(default_factory=dict)  # engine vm id -> kernel vm id
    engine_only: dict[str, str] = field(default_factory=dict)  # engine vm id -> why
    addrs: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # engine map ->
    # (engine addr, span, kernel map id)
    last_vm: str | None = None  # the kernel's id of the VM the last vm_create made


def _dump(a: Any) -> dict[str, Any]:
    if a is None:
        return {}
    if hasattr(a, "model_dump"):
        return dict(a.model_dump())
    return dict(a) if isinstance(a, dict) else {}


def _exit(e: Any) -> dict[str, Any] | None:
    """An exit without its empty fields (the engine spells absent ones null)."""
    if not e:
        return None
    return {k: v for k, v in dict(e).items() if v is not None}


def engine_value(p: Played) -> dict[str, Any]:
    """What is compared of the engine's answer to a KVM op."""
    a = _dump(p.answer)
    if p.op == "vm_guest_memfd":
        return {"fd": a.get("fd"), "size": a.get("size")}
    if p.op == "vcpu_create":
        return {"vcpu_id": a.get("vcpu_id")}
    if p.op == "vcpu_access":
        out = {"exit": _exit(a.get("exit")), "value": a.get("value")}
        return out | ({"pending": True} if a.get("pending") else {})
    if p.op == "mapping_access":
        return {"signal": a.get("signal"), "value": a.get("value")}
    if p.op == "pre_fault_memory":
        return {"gpa": a.get("gpa"), "size": a.get("size")}
    return {}


def _kernel_value(k: KvmKernel, p: Played, value: Any) -> dict[str, Any]:
    if p.op == "vm_guest_memfd":
        size = None
        with contextlib.suppress(Exception):
            size = k.fstat_size(value)
        return {"fd": value, "size": size}
    if p.op == "vcpu_create":
        return {"vcpu_id": value}
    if p.op == "vcpu_access":
        return {"exit": _exit(value.get("exit")), "value": value.get("value")}
    if p.op == "mapping_access":
        return {"signal": value.get("signal"), "value": value.get("value")}
    if p.op == "pre_fault_memory":
        return {"gpa": value.get("gpa"), "size": value.get("size")}
    return {}


def text(p: Played, value: dict[str, Any]) -> str:
    """A KVM answer in words, the same for both sides: 'fd 4', 'byte 0x5c',
    'KVM_EXIT_MMIO at 0x40000000', 'SIGBUS'."""
    if p.op == "vm_guest_memfd":
        return f"fd {value.get('fd')}"
    if p.op == "vcpu_create":
        return f"vCPU {value.get('vcpu_id')}"
    if p.op == "vcpu_access":
        e = value.get("exit")
        if e:
            return f"{e.get('reason')} at {e.get('gpa', 0):#x}"
        if value.get("pending"):
            return "asleep on a locked page (pending)"
        byte = value.get("value")
        return f"byte {byte:#04x}" if isinstance(byte, int) else "no byte"
    if p.op == "mapping_access":
        return str(value["signal"]) if value.get("signal") else f"byte {value.get('value', 0):#04x}"
    if p.op == "pre_fault_memory":
        return f"left {value.get('size')} bytes at {value.get('gpa', 0):#x}"
    return "ok"


def _addr(k: KvmKernel, s: KvmSide, addr: Any) -> Any:
    if not isinstance(addr, int):
        return addr
    for base, span, kmap in s.addrs.values():
        if base <= addr < base + span:
            return k.map_addr(kmap) + (addr - base)
    return addr


def ask(
    k: KvmKernel, s: KvmSide, fds: dict[int, int], maps: dict[int, int], profile: str, p: Played
) -> tuple[bool, Any] | tuple[str, str]:
    """Run a KVM op in the kernel: (ok, value), or (kind, why) when it is not asked."""
    a = dict(p.args)
    if p.op == "set_memory_attributes":
        return "intended", R_ATTRS
    if p.op == "set_user_memory_region" and (
        profile == "rfc-v2" or "KVM_MEM_FD" in a.get("flags", [])
    ):
        vm = str(a.get("vm_id"))
        s.engine_only.setdefault(vm, f"its memslots are the RFC's (op #{p.n}): {R_RFC}")
        return "intended", R_RFC
    if p.op == "vcpu_access" and a.get("private") is not None:
        return "intended", R_RFC_VIEW if profile == "rfc-v2" else R_VIEW
    if "vm_id" in a:
        vm = str(a["vm_id"])
        if vm in s.engine_only:
            return "follows", s.engine_only[vm]
        a["vm_id"] = s.vms.get(vm, "-1")
    if p.op == "set_user_memory_region":
        a.pop("fd", None)
        a.pop("private_fd", None)
        a["userspace_addr"] = _addr(k, s, a.get("userspace_addr", 0))
        gfd = a.get("guest_memfd", 0)
        a["guest_memfd"] = fds.get(gfd, 10_000) if isinstance(gfd, int) else gfd
    if p.op == "mapping_access":
        a["map_id"] = maps.get(a.get("map_id", -1), -1)
    ok, value = k.run(p.op, a)
    if p.op == "vm_create" and ok:
        s.last_vm = str(value)
    return ok, value


def kernel_answer(k: KvmKernel, p: Played, ok: bool, value: Any) -> Answer:
    if not ok:
        return Answer(ok=False, errno=str(value), text=str(value))
    v = _kernel_value(k, p, value)
    return Answer(ok=True, value=v, text=text(p, v))


def intended(p: Played, eng: Answer, ker: Answer) -> str | None:
    """Why the engine and this kernel differ on purpose, if they do."""
    default = p.args.get("type", "KVM_X86_DEFAULT_VM") == "KVM_X86_DEFAULT_VM"
    refused = eng.ok and ker.errno == "EINVAL"
    if p.op == "vm_create" and refused and not default:
        return R_VM_TYPE
    slot = p.args.get("slot", 0)
    second_space = isinstance(slot, int) and (slot >> 16) & 0xFFFF == 1
    if p.op == "set_user_memory_region" and refused and second_space:
        return R_AS_ID
    if p.op == "pre_fault_memory" and ker.errno in ("EOPNOTSUPP", "ENOSPC"):
        return R_PRE_FAULT + f" ({ker.errno})"
    return None


def after(s: KvmSide, k: KvmKernel, p: Played, eng: Answer, ker: Answer | None, why: str) -> None:
    """Keep the VM ids in step; remember VMs only the engine has."""
    if p.op == "vm_create" and eng.ok:
        eid = str(_dump(p.answer).get("vm_id", ""))
        if ker is not None and ker.ok and s.last_vm is not None:
            s.vms[eid] = s.last_vm
        else:
            s.engine_only[eid] = f"its VM exists in the engine only (op #{p.n}: {why})"
    s.last_vm = None


def mapped(s: KvmSide, k: KvmKernel, p: Played, engine_map: int, kernel_map: int) -> None:
    """An mmap both made: where the engine put it, for userspace_addr translation."""
    a = _dump(p.answer)
    length = p.args.get("length", 0)
    if isinstance(a.get("addr"), int) and isinstance(length, int) and length > 0:
        s.addrs[engine_map] = (a["addr"], -(-length // PAGE) * PAGE, kernel_map)
