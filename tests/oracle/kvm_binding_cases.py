"""KVM_SET_USER_MEMORY_REGION2 binding rules as a table, in the kernel's check order.

Each case is a few setup steps and one region call, in the op vocabulary of the
session log (KVM_CONTRACT.md), with the errno this machine's Linux 6.18 answers (None:
ok). The order is kvm_set_memory_region()'s (virt/kvm/kvm_main.c): the flags
(check_memory_region_flags), the sizes and addresses, the slot id, the wraps, delete,
create or modify, the gpa overlap, and then kvm_gmem_bind() (virt/kvm/guest_memfd.c):
the fd, its kind, its VM, the range, the other bindings. Pairs of broken rules pin
which errno wins. The same table drives the real kernel (tests/oracle/
test_kvm_binding.py) and, through any runner with the same `run`, the engine.

Values in args: "$x" is the result of the setup step labelled x (a vm id, an fd, a map
id), "@x" the VMM address of mapping x.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

P = 4096
GPA = 1 << 30
GMEM = ["KVM_MEM_GUEST_MEMFD"]
DIRTY, RO = "KVM_MEM_LOG_DIRTY_PAGES", "KVM_MEM_READONLY"
RW, SHARED = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]
U64 = 2**64 - 1

Step = tuple[str | None, str, dict[str, Any]]  # (label, op, args)

STANDARD: tuple[Step, ...] = (
    ("vm", "vm_create", {"name": "vm0", "type": "KVM_X86_DEFAULT_VM"}),
    ("g", "vm_guest_memfd", {"vm_id": "$vm", "size": 16 * P, "flags": []}),
    ("mfd", "memfd_create", {"name": "ram", "flags": []}),
    (None, "ftruncate", {"fd": "$mfd", "length": 16 * P}),
    ("m", "mmap", {"fd": "$mfd", "offset": 0, "length": 16 * P, "prot": RW, "flags": SHARED}),
)
REGION: dict[str, Any] = {
    "vm_id": "$vm",
    "slot": 1,
    "flags": GMEM,
    "guest_phys_addr": GPA,
    "memory_size": 4 * P,
    "userspace_addr": "@m",
    "guest_memfd_offset": 0,
    "guest_memfd": "$g",
}


def region(**kw: Any) -> Step:
    return (None, "set_user_memory_region", REGION | kw)


FIRST = region()  # slot 1 at GPA bound to [0, 4P) of g
PLAIN = region(flags=[])  # slot 1 at GPA, plain memory at m
OTHER_VM: tuple[Step, ...] = (
    ("vm2", "vm_create", {"name": "vm1", "type": "KVM_X86_DEFAULT_VM"}),
    ("g2", "vm_guest_memfd", {"vm_id": "$vm2", "size": 16 * P, "flags": []}),
)


@dataclass(frozen=True)
class Case:
    id: str
    rule: str
    region: dict[str, Any]
    errno: str | None
    setup: tuple[Step, ...] = field(default=())
    # where mainline x86 (what the engine and the model follow) answers otherwise than
    # this machine: (its errno, why)
    mainline: tuple[str | None, str] | None = None
    # where the engine answers otherwise on purpose (KVM_CONTRACT.md, "Changes by
    # kvm-engine"): (its errno, why); the model keeps the kernel's answer
    engine_choice: tuple[str | None, str] | None = None

    @property
    def model_errno(self) -> str | None:
        return self.mainline[0] if self.mainline else self.errno

    @property
    def engine_errno(self) -> str | None:
        return self.engine_choice[0] if self.engine_choice else self.model_errno


C = Case
SLOT_CASES: list[Case] = [
    # check_memory_region_flags()
    C(
        "flag-unknown",
        "an unknown flag (a name the kernel does not know: a bit it does not know)",
        {"flags": [*GMEM, "KVM_MEM_BOGUS"]},
        "EINVAL",
    ),
    C("flag-log-dirty", "GUEST_MEMFD with LOG_DIRTY_PAGES", {"flags": [*GMEM, DIRTY]}, "EINVAL"),
    C("flag-readonly", "GUEST_MEMFD with READONLY", {"flags": [*GMEM, RO]}, "EINVAL"),
    # the general sanity checks, in order
    C("size-unaligned", "memory_size not page aligned", {"memory_size": 4 * P + 1}, "EINVAL"),
    C("gpa-unaligned", "guest_phys_addr not page aligned", {"guest_phys_addr": GPA + 1}, "EINVAL"),
    C("uaddr-unaligned", "userspace_addr not page aligned", {"userspace_addr": 1}, "EINVAL"),
    C(
        "uaddr-kernel",
        "userspace_addr + size past TASK_SIZE (access_ok)",
        {"userspace_addr": 2**63},
        "EINVAL",
    ),
    C(
        "offset-unaligned",
        "guest_memfd_offset not page aligned",
        {"guest_memfd_offset": 1},
        "EINVAL",
    ),
    C(
        "offset-wraps",
        "guest_memfd_offset + memory_size wraps",
        {"guest_memfd_offset": U64 - P + 1},
        "EINVAL",
    ),
    C("slot-too-big", "slot id >= KVM_MEM_SLOTS_NUM (32764)", {"slot": 32764}, "EINVAL"),
    C(
        "slot-as-id",
        "address space id (slot >> 16) past the VM's address spaces",
        {"slot": 1 << 16},
        "EINVAL",
        mainline=(None, "with SMM a VM without private memory has 2 address spaces; PVM has 1"),
    ),
    C("slot-as-id-2", "address space id 2", {"slot": 2 << 16}, "EINVAL"),
    C("slot-u32", "slot 0xffffffff", {"slot": 0xFFFFFFFF}, "EINVAL"),
    C(
        "gpa-wraps",
        "guest_phys_addr + memory_size wraps",
        {"guest_phys_addr": U64 - P + 1, "memory_size": 2 * P},
        "EINVAL",
    ),
    C(
        "size-huge",
        "memory_size near 2^64 (access_ok first)",
        {"memory_size": U64 - P + 1},
        "EINVAL",
    ),
    # delete
    C("delete-missing", "memory_size 0 deletes; no such slot", {"memory_size": 0}, "EINVAL"),
    C("delete", "memory_size 0 deletes the slot", {"memory_size": 0}, None, (FIRST,)),
    C(
        "delete-twice",
        "deleting again",
        {"memory_size": 0},
        "EINVAL",
        (FIRST, region(memory_size=0)),
    ),
    # modify: a guest_memfd slot is immutable
    C("modify-same", "the same region again", {}, "EINVAL", (FIRST,)),
    C(
        "modify-offset",
        "a new guest_memfd_offset",
        {"guest_memfd_offset": 4 * P},
        "EINVAL",
        (FIRST,),
    ),
    C("modify-move", "a moved gpa", {"guest_phys_addr": 2 * GPA}, "EINVAL", (FIRST,)),
    C("modify-uaddr", "a new userspace_addr", {"userspace_addr": 0}, "EINVAL", (FIRST,)),
    C("modify-size", "a new memory_size", {"memory_size": 8 * P}, "EINVAL", (FIRST,)),
    C("modify-drop-flag", "the same slot without the flag", {"flags": []}, "EINVAL", (FIRST,)),
    C(
        "modify-drop-flag-move",
        "moved, without the flag",
        {"flags": [], "guest_phys_addr": 2 * GPA},
        "EINVAL",
        (FIRST,),
    ),
    C("modify-log-dirty", "LOG_DIRTY_PAGES alone on it", {"flags": [DIRTY]}, "EINVAL", (FIRST,)),
    C(
        "delete-without-flag",
        "deleting needs no flag",
        {"flags": [], "memory_size": 0},
        None,
        (FIRST,),
    ),
    # a plain slot can be modified (the contrast)
    C("plain-same", "a plain slot set again: nothing to change", {"flags": []}, None, (PLAIN,)),
    C("plain-log-dirty", "a plain slot gains LOG_DIRTY_PAGES", {"flags": [DIRTY]}, None, (PLAIN,)),
    C(
        "plain-move",
        "a plain slot moves",
        {"flags": [], "guest_phys_addr": 2 * GPA},
        None,
        (PLAIN,),
    ),
    C("plain-readonly", "a plain slot changes READONLY", {"flags": [RO]}, "EINVAL", (PLAIN,)),
    C("plain-gains-gmem", "a plain slot gains GUEST_MEMFD", {}, "EINVAL", (PLAIN,)),
    # the gpa overlap
    C(
        "gpa-overlap",
        "a gpa range another slot has",
        {"slot": 2, "guest_memfd_offset": 8 * P, "guest_phys_addr": GPA + 3 * P},
        "EEXIST",
        (FIRST,),
    ),
    C(
        "gpa-overlap-after-close",
        "closing a bound guest_memfd keeps its memslot",
        {"slot": 2, "guest_memfd": "$g3"},
        "EEXIST",
        (
            FIRST,
            (None, "close", {"fd": "$g"}),
            ("g3", "vm_guest_memfd", {"vm_id": "$vm", "size": 16 * P, "flags": []}),
        ),
    ),
]


def _all() -> list[Case]:
    from tests.oracle.kvm_binding_bind import BIND_CASES

    return [*SLOT_CASES, *BIND_CASES]


class Runner(Protocol):
    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]: ...


def run_case(runner: Runner, case: Case, addr: Callable[[int], int]) -> tuple[bool, object]:
    """Run the standard setup, the case's setup, then its region call: (ok, value or errno).
    `addr` gives a map id's VMM address. A setup step that fails is an AssertionError."""
    results: dict[str, Any] = {}

    def resolve(v: Any) -> Any:
        if isinstance(v, str) and v[:1] == "$":
            return results[v[1:]]
        if isinstance(v, str) and v[:1] == "@":
            return addr(results[v[1:]])
        return v

    for label, op, args in (*STANDARD, *case.setup):
        ok, value = runner.run(op, {k: resolve(v) for k, v in args.items()})
        assert ok, f"setup step {op} {args} failed: {value}"
        if label is not None:
            results[label] = value
    args = {k: resolve(v) for k, v in (REGION | case.region).items()}
    return runner.run("set_user_memory_region", args)


CASES: list[Case] = _all()  # kvm_set_memory_region's checks, then kvm_gmem_bind's and pairs
