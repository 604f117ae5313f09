"""The guest access path and host access, case by case, measured on this machine's KVM
(a real vCPU) and held on the model and the engine too: one short log per behaviour of
KVM.md, its last step's answer stated. Skipped where /dev/kvm is missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app import oracle
from app.engine import Config, Machine
from app.oracle_kvm import KvmKernel
from tests.engine.kvm_adapter import EngineKvmRunner
from tests.engine.kvm_logs import GPA, P, Runner, Step, play, setup
from tests.engine.refmodel_kvm import KvmModel

KVM_OK, KVM_WHY = oracle.kvm_available()
pytestmark = pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm: {KVM_WHY}")
MMAP, INIT = "GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


def acc(gpa: int, write: bool = False, value: int = 0) -> Step:
    args = {"vm_id": "$vm", "vcpu_id": "$cpu", "gpa": gpa, "write": write, "value": value}
    return Step(None, "vcpu_access", args)


def host(m: str, offset: int, write: bool = False, value: int = 0) -> Step:
    return Step(
        None, "mapping_access", {"map_id": m, "offset": offset, "write": write, "value": value}
    )


def only_slot(uaddr: Any = 0) -> Step:
    """Slot 3 at 3 GiB: the guest_memfd's first 4 pages, guest_memfd-only when it has MMAP."""
    args = {"vm_id": "$vm", "slot": 3, "flags": ["KVM_MEM_GUEST_MEMFD"], "guest_phys_addr": 3 * GPA}
    args |= {
        "memory_size": 4 * P,
        "userspace_addr": uaddr,
        "guest_memfd_offset": 8 * P,
        "guest_memfd": "$g",
    }
    return Step(None, "set_user_memory_region", args)


def byte(v: int) -> tuple[bool, object]:
    return True, {"exit": None, "value": v}


FAULT = (
    True,
    {
        "exit": {
            "reason": "KVM_EXIT_MEMORY_FAULT",
            "flags": [],
            "gpa": 3 * GPA,
            "size": P,
            "errno": "EFAULT",
        },
        "value": None,
    },
)


def private_slot() -> Step:
    """Slot 6 at 6 GiB: a plain slot over the RAM's MAP_PRIVATE mapping (copy-on-write)."""
    args = {"vm_id": "$vm", "slot": 6, "flags": [], "guest_phys_addr": 6 * GPA}
    return Step(
        None, "set_user_memory_region", args | {"memory_size": 4 * P, "userspace_addr": ("@pm", 0)}
    )


def punch(offset: int) -> Step:
    return Step(None, "fallocate", {"fd": "$mfd", "mode": PUNCH, "offset": offset, "length": P})


CASES: list[tuple[str, list[str], list[Step], tuple[bool, object]]] = [
    (
        "private-write-not-in-file",
        [],
        [private_slot(), acc(6 * GPA + 9, True, 4), host("$m", 9)],
        (True, {"signal": None, "value": 0}),
    ),
    (
        "private-write-seen-by-its-mapping",
        [],
        [private_slot(), acc(6 * GPA + 9, True, 4), host("$pm", 9)],
        (True, {"signal": None, "value": 4}),
    ),
    (
        "private-host-copy-seen-by-guest",
        [],
        [private_slot(), acc(6 * GPA + P), host("$pm", P + 1, True, 6), acc(6 * GPA + P + 1)],
        byte(6),
    ),
    (
        "private-read-sees-file-until-copied",
        [],
        [private_slot(), acc(GPA + 2 * P, True, 8), acc(6 * GPA + 2 * P)],
        byte(8),
    ),
    (
        "private-copy-survives-punch",
        [],
        [private_slot(), acc(6 * GPA + 3, True, 5), punch(0), acc(6 * GPA + 3)],
        byte(5),
    ),
    (
        "private-copy-dropped-by-truncate",
        [],
        [
            private_slot(),
            acc(6 * GPA + P + 3, True, 5),
            Step(None, "ftruncate", {"fd": "$mfd", "length": P}),
            Step(None, "ftruncate", {"fd": "$mfd", "length": 16 * P}),
            acc(6 * GPA + P + 3),
        ],
        byte(0),
    ),
    (
        "shared-from-memfd",
        [],
        [Step(None, "pwrite", {"fd": "$mfd", "offset": 5, "data": b"\x42"}), acc(GPA + 5)],
        byte(0x42),
    ),
    (
        "write-lands-in-memfd",
        [],
        [acc(GPA + 7, True, 9), host("$m", 7)],
        (True, {"signal": None, "value": 9}),
    ),
    (
        "no-slot-mmio",
        [],
        [acc(5 * GPA + 3)],
        (True, {"exit": {"reason": "KVM_EXIT_MMIO", "gpa": 5 * GPA + 3, "size": 1}, "value": None}),
    ),
    (
        "plain-slot-past-mapping",
        [],
        [
            Step(
                None,
                "set_user_memory_region",
                {
                    "vm_id": "$vm",
                    "slot": 4,
                    "flags": [],
                    "guest_phys_addr": 4 * GPA,
                    "memory_size": 16 * P,
                    "userspace_addr": ("@m", 8 * P),
                },
            ),
            acc(4 * GPA + 7 * P, True, 2),
            acc(4 * GPA + 8 * P),
        ],
        (False, "EFAULT"),
    ),
    (
        "memfd-punch-reads-zero",
        [],
        [
            acc(GPA, True, 1),
            Step(None, "fallocate", {"fd": "$mfd", "mode": PUNCH, "offset": 0, "length": P}),
            acc(GPA),
        ],
        byte(0),
    ),
    (
        "memfd-truncate-efault",
        [],
        [acc(GPA, True, 1), Step(None, "ftruncate", {"fd": "$mfd", "length": 0}), acc(GPA)],
        (False, "EFAULT"),
    ),
    (
        "munmap-efault",
        [],
        [acc(GPA, True, 1), Step(None, "munmap", {"map_id": "$m"}), acc(GPA)],
        (False, "EFAULT"),
    ),
    (
        "no-mmap-gmem-unused",
        [],
        [acc(GPA + 1, True, 3), Step(None, "close", {"fd": "$g"}), acc(GPA + 1)],
        byte(3),
    ),
    (
        "gmem-only-private-guest-ok",
        [MMAP],
        [only_slot(), acc(3 * GPA + 1, True, 0x33), acc(3 * GPA + 1)],
        byte(0x33),
    ),
    (
        "gmem-only-private-host-sigbus",
        [MMAP],
        [only_slot(), acc(3 * GPA + 1, True, 0x33), host("$gm", 8 * P + 1)],
        (True, {"signal": "SIGBUS", "value": None}),
    ),
    (
        "gmem-only-shared-in-place",
        [MMAP, INIT],
        [only_slot(), host("$gm", 8 * P + 2, True, 0x44), acc(3 * GPA + 2)],
        byte(0x44),
    ),
    (
        "gmem-only-guest-to-host",
        [MMAP, INIT],
        [only_slot(), acc(3 * GPA + P, True, 0x55), host("$gm", 9 * P)],
        (True, {"signal": None, "value": 0x55}),
    ),
    (
        "gmem-punch-zeros",
        [MMAP],
        [
            only_slot(),
            acc(3 * GPA, True, 7),
            Step(None, "fallocate", {"fd": "$g", "mode": PUNCH, "offset": 8 * P, "length": P}),
            acc(3 * GPA),
        ],
        byte(0),
    ),
    (
        "gmem-closed-mapped-still-bound",
        [MMAP],
        [only_slot(), acc(3 * GPA, True, 7), Step(None, "close", {"fd": "$g"}), acc(3 * GPA)],
        byte(7),
    ),
    (
        "gmem-released-memory-fault",
        [MMAP],
        [
            only_slot(),
            acc(3 * GPA, True, 7),
            Step(None, "close", {"fd": "$g"}),
            Step(None, "munmap", {"map_id": "$gm"}),
            acc(3 * GPA + 9),
        ],
        FAULT,
    ),
    (
        "host-past-eof-sigbus",
        [MMAP, INIT],
        [host("$gm", 16 * P)],
        (True, {"signal": "SIGBUS", "value": None}),
    ),
    (
        "host-read-only-store-sigsegv",
        [],
        [
            Step(
                "ro",
                "mmap",
                {
                    "fd": "$mfd",
                    "offset": 0,
                    "length": P,
                    "prot": ["PROT_READ"],
                    "flags": ["MAP_SHARED"],
                },
            ),
            host("$ro", 0, True, 1),
        ],
        (True, {"signal": "SIGSEGV", "value": None}),
    ),
]


@pytest.mark.parametrize(
    ("flags", "steps", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_access_on_kernel_model_and_engine(
    flags: list[str], steps: list[Step], want: tuple[bool, object]
) -> None:
    model = KvmModel(profile="guest-memfd", phys_pages=1 << 14)
    engine = EngineKvmRunner(Machine(Config(profile="guest-memfd", phys_pages=1 << 14)))
    last: dict[str, tuple[bool, object]] = {}

    def record(name: str, r: Runner) -> Runner:
        class Rec:
            def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
                got = r.run(op, args)
                last[name] = got
                return got

        return Rec()

    with KvmKernel() as kernel:
        runners: dict[str, tuple[Runner, Callable[[int], int]]] = {
            "kernel": (record("kernel", kernel), kernel.map_addr),
            "model": (record("model", model), model.map_addr),
            "engine": (record("engine", engine), engine.map_addr),
        }
        play([*setup(flags), *steps], runners, after=lambda op: engine.m.check())
    got = last["kernel"]
    if isinstance(got[1], dict) and "exit" in got[1]:
        got = (got[0], {"exit": got[1]["exit"], "value": got[1]["value"]})
    assert got == want
