"""The kernel side of the comparison: how each op is asked of the kernel (numbers
translated, the byte budget), and what is known to differ from then on."""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any

from app import oracle
from app.engine import EngineError, Machine
from app.models.compare import Answer
from app.oracle_kvm import KvmKernel
from app.service import kernel_kvm
from app.service.kernel_answers import (
    CREATES,
    GUEST_IFACE,
    KERNEL_WORK,
    R_GUEST,
    SIMULATED_KVM,
    Kind,
    Verdict,
    kernel_text,
    kernel_value,
)
from app.service.play import Played


@dataclass
class KernelSide:
    """The kernel side of a comparison: the oracle, the engine's fd and map numbers
    translated to the kernel's, what is known to differ and since when, bytes given."""

    k: KvmKernel
    budget: int
    kvm: tuple[bool, str]
    used: int = 0
    fds: dict[int, int] = field(default_factory=dict)  # engine fd -> kernel fd
    placeholders: dict[int, int] = field(default_factory=dict)  # fds only the engine made
    maps: dict[int, int] = field(default_factory=dict)  # engine map id -> kernel map id
    map_fd: dict[int, int] = field(default_factory=dict)  # engine map id -> engine fd
    marks: dict[int, tuple[Kind, str]] = field(default_factory=dict)  # engine fd -> why
    kvm_side: kernel_kvm.KvmSide = field(default_factory=kernel_kvm.KvmSide)
    poisoned: dict[int, str] = field(default_factory=dict)  # engine guest_memfd fd -> why
    engine_maps: dict[int, tuple[Kind, str]] = field(default_factory=dict)  # map id -> why

    def touch_mark(self, p: Played, m: Machine) -> tuple[Kind, str] | None:
        """Why a touch with no fd of its own differs: a host touch of a mapping only the
        engine made, or a guest or host touch of a guest_memfd whose page a memory
        failure poisoned in the engine only (the kernel is never asked to poison)."""
        fd: int | None = None
        if p.op in ("mapping_access", "mapping_pin", "munmap"):
            mid = p.args.get("map_id", -1)
            if mid in self.engine_maps:
                return self.engine_maps[mid]
            fd = self.map_fd.get(mid)
        elif p.op in ("vcpu_access", "pre_fault_memory") and self.poisoned:
            fd = _gmem_at(m, p.args)
        why = self.poisoned.get(fd) if fd is not None else None
        return ("intended", why) if why is not None else None

    def mark(self, fd: int | None, kind: Kind, reason: str) -> None:
        if fd is not None and fd not in self.marks:
            self.marks[fd] = (kind, reason)

    def after(self, p: Played, m: Machine, eng: Answer, ker: Answer | None, v: Verdict) -> None:
        """Keep the two sides' numbers in step, and remember what now differs."""
        fd = fd_of(self, p)
        if p.op in CREATES:
            self._created(p, eng, ker, v)
        elif p.op == "mmap" and eng.ok and ker is not None and ker.ok:
            self.maps[eng.value["map_id"]] = ker.value["map_id"]
            self.map_fd[eng.value["map_id"]] = p.args["fd"]
            kernel_kvm.mapped(self.kvm_side, self.k, p, eng.value["map_id"], ker.value["map_id"])
        elif p.op == "mmap" and eng.ok:
            self.engine_maps[eng.value["map_id"]] = (
                "intended" if v.status == "intended" else "follows",
                f"map {eng.value['map_id']} was made by op #{p.n} in the engine only",
            )
        elif p.op in kernel_kvm.KVM_OPS:
            kernel_kvm.after(self.kvm_side, self.k, p, eng, ker, v.reason or v.status)
            if p.op == "vcpu_access" and p.args.get("write") and eng.ok and v.status != "agree":
                # the guest's write went through userspace_addr in the engine only
                kind: Kind = "intended" if v.status == "intended" else "follows"
                why = f"the guest's write (op #{p.n}) reached it in the engine only"
                self.mark(getattr(p.answer, "fd", None), kind, why)
            if p.op == "vm_guest_memfd":
                self._created(p, eng, ker, v)
        elif p.op == "munmap" and eng.ok:
            self.maps.pop(p.args["map_id"], None)
            self.engine_maps.pop(p.args["map_id"], None)
        elif p.op == "close" and eng.ok:
            self._closed(p.args["fd"])
            return
        elif p.op == "memory_failure" and eng.ok:
            gfd = getattr(p.answer, "fd", None)
            if isinstance(gfd, int):
                self.poisoned.setdefault(
                    gfd,
                    f"memory_failure (op #{p.n}) poisoned a page of fd {gfd} in the engine only",
                )
        elif p.op == "get_lock_pfn" and p.ok:
            self.mark(fd, "intended", f"get_lock_pfn (op #{p.n}) holds a page of it")
        elif p.op == "fault" and p.ok:
            why = f"the guest fault (op #{p.n}) gave it pages only the engine has"
            try:
                for slot in m.owner(int(p.args["owner_id"])).memslots:
                    self.mark(slot.fd, "intended", why)
            except (EngineError, ValueError):
                pass
        if p.op not in CREATES and v.status in ("diverge", "skipped") and eng.ok:
            self.mark(fd, "follows", f"after op #{p.n} ({v.status}: {v.reason or 'see it'})")
        if v.status == "intended" and p.op == "fcntl" and eng.ok:
            self.mark(fd, "intended", f"F_SEAL_GUEST (op #{p.n}) is the RFC's")
        elif v.status == "intended" and p.op == "fcntl" and ker is not None and ker.ok:
            self.mark(fd, "intended", f"the kernel took F_SEAL_EXEC (op #{p.n}); 5.15 has none")

    def _created(self, p: Played, eng: Answer, ker: Answer | None, v: Verdict) -> None:
        ef = eng.value.get("fd") if eng.ok else None
        kf = ker.value.get("fd") if ker is not None and ker.ok else None
        if ef is not None and kf is not None:
            self.fds[ef] = kf
        elif ef is not None:  # keep the kernel's numbers in step: hold the number
            with contextlib.suppress(oracle.KernelError):
                self.placeholders[ef] = self.k.memfd_create("sealscope-placeholder")
            kind: Kind = "intended" if v.status == "intended" else "follows"
            self.mark(ef, kind, f"fd {ef} was made by op #{p.n} in the engine only")
        elif kf is not None:  # the engine refused: so does the comparison, from now on
            self.k.close(kf)

    def _closed(self, fd: int) -> None:
        self.fds.pop(fd, None)
        self.marks.pop(fd, None)
        self.poisoned.pop(fd, None)
        held = self.placeholders.pop(fd, None)
        if held is not None:
            self.k.close(held)


def _gmem_at(m: Machine, args: dict[str, Any]) -> int | None:
    """The guest_memfd bound at the gpa of a vCPU op, in the engine's VM."""
    gpa = args.get("gpa")
    try:
        slots = m.vm(int(args["vm_id"])).memslots
    except (EngineError, ValueError, TypeError, KeyError):
        return None
    for s in slots:
        if isinstance(gpa, int) and s.guest_phys_addr <= gpa < s.guest_phys_addr + s.memory_size:
            return s.guest_memfd
    return None


def fd_of(t: KernelSide, p: Played) -> int | None:
    if "fd" in p.args and isinstance(p.args["fd"], int):
        return int(p.args["fd"])
    if p.op == "munmap":
        return t.map_fd.get(p.args.get("map_id", -1))
    return None


def _cost(t: KernelSide, p: Played, kfd: int, gmem: bool) -> int:
    """Bytes the kernel may give this op's file (an upper bound)."""
    a = p.args
    if p.op == "pwrite":
        return len(base64.b64decode(a.get("data_b64", "")))
    if p.op != "fallocate" or "FALLOC_FL_PUNCH_HOLE" in a.get("mode", []):
        return 0
    off, n = a.get("offset", 0), a.get("len", 0)
    if off < 0 or n <= 0:
        return 0
    if gmem:  # a guest_memfd never allocates past its end
        try:
            return min(n, max(0, t.k.fstat_size(kfd) - off))
        except oracle.KernelError:
            return n
    return int(n)


def _kind(m: Machine, fd: Any) -> str:
    try:
        return m.file(fd).kind if isinstance(fd, int) else ""
    except (EngineError, ValueError, OverflowError):
        return ""


def _read_room(t: KernelSide, p: Played, kfd: int) -> int:
    """Bytes a pread would copy out of the kernel (held only while it runs)."""
    if p.op != "pread" or p.args.get("offset", 0) < 0:
        return 0
    try:
        size = t.k.fstat_size(kfd)
    except oracle.KernelError:
        return 0
    return max(0, min(int(p.args.get("count", 0)), size - int(p.args["offset"])))


def _ask(t: KernelSide, p: Played, kfd: int) -> tuple[bool, Any]:
    """Run the op in the kernel: (ok, value or errno name); ValueError if it cannot."""
    k, a = t.k, p.args
    if p.op == "memfd_create":
        return k.run("memfd_create", {"name": a["name"].split("\0", 1)[0], "flags": a["flags"]})
    if p.op == "guest_memfd_create":
        return k.run("gmem_create", {"size": a["size"], "flags": a["flags"]})
    if p.op == "fcntl":
        if a["cmd"] == "F_GET_SEALS":
            return k.run("get_seals", {"fd": kfd})
        ok, value = k.run("add_seals", {"fd": kfd, "seals": a["seals"]})
        return (True, k.get_seals(kfd)) if ok else (ok, value)
    if p.op == "pwrite":
        data = base64.b64decode(a["data_b64"])
        return k.run("pwrite", {"fd": kfd, "offset": a["offset"], "data": data})
    if p.op == "munmap":
        return k.run("munmap", {"map_id": t.maps.get(a["map_id"], -1)})
    rest = {key: v for key, v in a.items() if key != "fd"}
    return k.run(p.op, {"fd": kfd, **rest})


def kernel_op(
    t: KernelSide, profile: str, p: Played, m: Machine
) -> tuple[Answer | None, tuple[Kind, str] | None]:
    """The kernel's answer, or why it was not asked."""
    if p.op in kernel_kvm.KVM_OPS:
        return _ask_kvm(t, profile, p)
    if p.op in kernel_kvm.COCO_REASONS:
        return None, ("intended", kernel_kvm.COCO_REASONS[p.op])
    if p.op in GUEST_IFACE + SIMULATED_KVM + KERNEL_WORK:
        what = (
            "the RFC's guest interface"
            if p.op in GUEST_IFACE
            else "the simulated KVM"
            if p.op in SIMULATED_KVM
            else "page migration"
        )
        return None, ("intended", f"kernel-internal ({what}): no userspace twin to ask")
    a = p.args
    if profile == "rfc-v2" and p.op == "fcntl" and "F_SEAL_GUEST" in a.get("seals", []):
        return None, ("intended", R_GUEST)
    if p.op == "guest_memfd_create" and not t.kvm[0]:
        return None, ("skipped", f"no KVM guest_memfd here: {t.kvm[1]}")
    efd = a.get("fd")
    kfd = t.fds.get(efd, -1) if isinstance(efd, int) else -1
    cost = _cost(t, p, kfd, _kind(m, efd) == "guest_memfd")
    if t.used + cost > t.budget:
        why = f"it may allocate {cost} bytes; the kernel comparison's budget is {t.budget}"
        return None, ("skipped", why + f" ({t.used} given)")
    room = _read_room(t, p, kfd)
    if room > t.budget - t.used:
        why = f"it would copy {room} bytes; the kernel comparison's budget has {t.budget - t.used}"
        return None, ("skipped", why + " left")
    t.used += cost
    try:
        ok, value = _ask(t, p, kfd)
    except (ValueError, OverflowError, TypeError) as exc:
        return None, ("skipped", f"the oracle cannot run it: {exc}")
    if not ok:
        return Answer(ok=False, errno=str(value), text=str(value)), None
    return Answer(ok=True, value=kernel_value(t.k, p, value, kfd), text=kernel_text(p, value)), None


def _ask_kvm(
    t: KernelSide, profile: str, p: Played
) -> tuple[Answer | None, tuple[Kind, str] | None]:
    if not t.kvm[0]:
        return None, ("skipped", f"no usable /dev/kvm here: {t.kvm[1]}")
    if p.op in ("vcpu_access", "mapping_access"):  # a touch may allocate a page
        if t.used + 4096 > t.budget:
            why = f"it may allocate a page; the kernel comparison's budget is {t.budget}"
            return None, ("skipped", why + f" ({t.used} given)")
        t.used += 4096
    try:
        got = kernel_kvm.ask(t.k, t.kvm_side, t.fds, t.maps, profile, p)
    except (ValueError, OverflowError, TypeError) as exc:
        return None, ("skipped", f"the oracle cannot run it: {exc}")
    if isinstance(got[0], str):
        kind: Kind = "intended" if got[0] == "intended" else "follows"
        return None, (kind, str(got[1]))
    return kernel_kvm.kernel_answer(t.k, p, bool(got[0]), got[1]), None
