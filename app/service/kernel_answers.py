"""Reading the two answers of the kernel comparison and judging them: what userspace
sees of each op, and which differences are intended and why."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from app import oracle
from app.engine import EngineError, Machine
from app.models.compare import Answer
from app.service import kernel_kvm
from app.service.play import Played
from app.service.replay import same_errno

GUEST_IFACE = ("register_guest", "unregister_guest", "get_lock_pfn", "put_unlock_pfn", "invalidate")
SIMULATED_KVM = ("owner_create", "memslot_create", "fault")
# the kernel's own work, not a call userspace can make on a file
KERNEL_WORK = ("migrate_page",)
CREATES = ("memfd_create", "guest_memfd_create")
USERSPACE = (
    *CREATES,
    "ftruncate",
    "fcntl",
    "fallocate",
    "pread",
    "pwrite",
    "mmap",
    "munmap",
    "close",
)
R_GUEST = (
    "F_SEAL_GUEST is the RFC's seal (bit 0x20); Linux never merged it and gave 0x20 to "
    "F_SEAL_EXEC (6.3): the kernel is not asked"
)
R_EXEC = (
    "the rfc-v2 profile is Linux 5.15: no MFD_NOEXEC_SEAL / MFD_EXEC / F_SEAL_EXEC "
    "(they came in 6.3)"
)
R_NO_GMEM = "the rfc-v2 profile has no guest_memfd (KVM_CREATE_GUEST_MEMFD came in Linux 6.8)"
R_EMFILE = (
    "open files: the engine's process may hold fds 0-1023 (RLIMIT_NOFILE's usual 1024); "
    "the service's own limit and its open files differ"
)
SHORT_DATA = 48  # bytes of a read shown as they are; longer ones by digest

Kind = Literal["intended", "follows", "skipped"]


@dataclass
class Verdict:
    status: Literal["agree", "diverge", "intended", "follows", "skipped"]
    diverges: bool
    reason: str | None = None


def _data(data: bytes) -> str:
    if len(data) <= SHORT_DATA:
        return base64.b64encode(data).decode("ascii")
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def engine_answer(p: Played, m: Machine) -> Answer:
    if not p.ok:
        return Answer(ok=False, errno=p.errno, text=p.result)
    if p.op in kernel_kvm.KVM_OPS:
        v = kernel_kvm.engine_value(p)
        return Answer(ok=True, value=v, text=kernel_kvm.text(p, v))
    a: Any = p.answer
    value: dict[str, Any] = {}
    if p.op in CREATES:
        value["fd"] = a.fd
    elif p.op == "fcntl":
        value["seals"] = a.value
    elif p.op == "pread":
        value |= {"nbytes": a.nbytes, "data": _data(base64.b64decode(a.data_b64))}
    elif p.op == "pwrite":
        value["nbytes"] = a.nbytes
    elif p.op == "mmap":
        value["map_id"] = a.map_id
    fd = value.get("fd", p.args.get("fd"))
    if p.op in USERSPACE and p.op != "close" and isinstance(fd, int):
        with contextlib.suppress(EngineError, ValueError, OverflowError):
            value["size"] = m.file(fd).size
    return Answer(ok=True, value=value, text=p.result)


def kernel_value(k: oracle.Kernel, p: Played, value: Any, kfd: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.op in CREATES:
        out["fd"] = kfd = value
    elif p.op == "fcntl":
        out["seals"] = value
    elif p.op == "pread":
        out |= {"nbytes": len(value), "data": _data(value)}
    elif p.op == "pwrite":
        out["nbytes"] = value
    elif p.op == "mmap":
        out["map_id"] = value
    if p.op != "close" and kfd >= 0 and (p.op in CREATES or "fd" in p.args):
        with contextlib.suppress(oracle.KernelError):
            out["size"] = k.fstat_size(kfd)
    return out


def kernel_text(p: Played, value: Any) -> str:
    if p.op in CREATES:
        return f"fd {value}"
    if p.op == "mmap":
        return f"map {value}"
    if p.op == "pread":
        return f"{len(value)} bytes"
    if p.op == "pwrite":
        return f"{value} bytes"
    if p.op == "fcntl":
        return f"seals {value:#x}"
    return "ok"


def _same(p: Played, eng: Answer, ker: Answer) -> bool:
    if eng.ok != ker.ok or not same_errno(eng.errno, ker.errno):
        return False
    if p.op == "mmap":  # map ids are the comparison's handles, not the kernel's answer
        return {**eng.value, "map_id": 0} == {**ker.value, "map_id": 0}
    return eng.value == ker.value


def verdict(
    marked: tuple[Kind, str] | None,
    profile: str,
    p: Played,
    eng: Answer,
    ker: Answer | None,
    skip: tuple[Kind, str] | None,
) -> Verdict:
    if skip is not None:
        kind, reason = skip
        no_twin = p.op in GUEST_IFACE + SIMULATED_KVM
        return Verdict(kind, diverges=not no_twin, reason=reason)
    assert ker is not None
    if _same(p, eng, ker):
        return Verdict("agree", diverges=False)
    if p.op in kernel_kvm.KVM_OPS:
        why = kernel_kvm.intended(p, eng, ker)
        if why is not None:
            return Verdict("intended", True, why)
    if profile == "rfc-v2":
        flags = p.args.get("flags", [])
        if p.op == "memfd_create" and {"MFD_NOEXEC_SEAL", "MFD_EXEC"} & set(flags):
            return Verdict("intended", True, R_EXEC)
        if p.op == "guest_memfd_create":
            return Verdict("intended", True, R_NO_GMEM)
        if p.op == "fcntl" and "F_SEAL_EXEC" in p.args.get("seals", []):
            return Verdict("intended", True, R_EXEC)
    if p.op in CREATES and "EMFILE" in (eng.errno, ker.errno):
        return Verdict("intended", True, R_EMFILE)
    if marked is not None:
        kind, why = marked
        return Verdict("intended" if kind == "intended" else "follows", True, why)
    return Verdict("diverge", True, "the engine and the kernel answer differently")
