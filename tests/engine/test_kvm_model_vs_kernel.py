"""The KVM reference model and the engine against this machine's real KVM, random logs.

Hypothesis draws KVM op logs (tests/engine/kvm_logs.py): memslots of every shape on a
default VM, real guest accesses through a real vCPU, host accesses through mappings,
punches, truncates, closes and munmaps; each runs on tests/engine/refmodel_kvm.py and
on app.oracle_kvm.KvmKernel, and every answer (ok / errno, exit and byte, signal and
byte) must agree. This keeps the model honest where the machine can answer; the
engine is held to the model (tests/engine/test_kvm_model.py) and to the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import oracle
from app.engine import Config, Machine
from app.oracle_kvm import KvmKernel
from tests.budget import DERANDOMIZE, examples
from tests.engine.kvm_adapter import EngineKvmRunner
from tests.engine.kvm_logs import (
    GMEM_FLAGS,
    GPA,
    P,
    Runner,
    Step,
    log_strategy,
    play,
    resolve,
    setup,
)
from tests.engine.refmodel_kvm import KvmModel

KVM_OK, KVM_WHY = oracle.kvm_available()
pytestmark = pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm: {KVM_WHY}")

SETTINGS = settings(
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def both(log: list[Step]) -> None:
    """The log on the real kernel, the model and the engine (its checker after each step)."""
    model = KvmModel(profile="guest-memfd", phys_pages=1 << 16)
    engine = EngineKvmRunner(Machine(Config(profile="guest-memfd", phys_pages=1 << 16)))
    runners: dict[str, tuple[Runner, Callable[[int], int]]] = {
        "model": (model, model.map_addr),
        "engine": (engine, engine.map_addr),
    }
    with KvmKernel() as kernel:
        runners["kernel"] = (kernel, kernel.map_addr)
        play(log, runners, after=lambda op: engine.m.check())


@settings(SETTINGS, max_examples=examples(60))
@given(st.sampled_from(GMEM_FLAGS).flatmap(lambda f: st.tuples(st.just(f), log_strategy(bool(f)))))
def test_random_kvm_logs_model_matches_the_kernel(drawn: tuple[list[str], list[Step]]) -> None:
    flags, log = drawn
    both([*setup(flags), *log])


def test_closed_guest_memfd_stays_bound_while_mapped() -> None:
    """KVM.md: a guest_memfd closed while still mmapped stays bound until the munmap."""
    flags = ["GUEST_MEMFD_FLAG_MMAP"]
    region = {
        "vm_id": "$vm",
        "slot": 1,
        "flags": ["KVM_MEM_GUEST_MEMFD"],
        "guest_phys_addr": 1 << 30,
    }
    region |= {
        "memory_size": 4 * P,
        "userspace_addr": 0,
        "guest_memfd_offset": 0,
        "guest_memfd": "$g",
    }
    access = {"vm_id": "$vm", "vcpu_id": "$cpu", "gpa": (1 << 30) + 5, "write": True, "value": 3}
    log = [
        *setup(flags),
        Step(None, "set_user_memory_region", region),
        Step(None, "vcpu_access", access),
        Step(None, "close", {"fd": "$g"}),
        Step(None, "vcpu_access", access | {"write": False}),
        Step(None, "munmap", {"map_id": "$gm"}),
        Step(None, "vcpu_access", access | {"write": False}),
    ]
    both(log)


def test_host_access_past_a_mapping_kernel_vs_the_engine() -> None:
    """An offset past a mapping's end, where the next mapping of the VMM address space
    is: the kernel and the model reach that mapping's byte; the engine answers SIGSEGV,
    its documented rule (KVM_CONTRACT.md, "Changes by kvm-engine": an offset past the
    mapping is SIGSEGV). Both pinned; the random logs keep host offsets inside."""
    log = [
        *setup(["GUEST_MEMFD_FLAG_MMAP"]),
        Step(None, "pwrite", {"fd": "$mfd", "offset": 0, "data": b"\x07"}),
    ]
    past = {"map_id": "$gm", "offset": 20 * P, "write": False, "value": 0}
    got: dict[str, object] = {}
    model = KvmModel(profile="guest-memfd", phys_pages=1 << 16)
    engine = EngineKvmRunner(Machine(Config(profile="guest-memfd", phys_pages=1 << 16)))
    with KvmKernel() as kernel:
        runners = (("kernel", kernel, kernel.map_addr), ("model", model, model.map_addr))
        for name, r, addr in (*runners, ("engine", engine, engine.map_addr)):
            labels: dict[str, Any] = {}
            for label, opname, raw in [*log, Step(None, "mapping_access", past)]:
                ok, value = r.run(opname, {k: resolve(v, labels, addr) for k, v in raw.items()})
                if label:
                    labels[label] = value
            got[name] = (ok, value)
    reached = (True, {"signal": None, "value": 7})
    assert got == {
        "kernel": reached,
        "model": reached,
        "engine": (True, {"signal": "SIGSEGV", "value": None}),
    }


def test_a_guest_memfd_keeps_its_vm_after_close_vm_fd() -> None:
    """KVM.md: the file keeps its VM alive. After close(vm_fd) the guest_memfd still
    fallocates and punches, the VM's ioctls answer EBADF (its fd is gone), and a host
    touch of the guest_memfd's mapping still reads what the guest wrote."""
    keep = ["FALLOC_FL_KEEP_SIZE"]
    punch = [*keep, "FALLOC_FL_PUNCH_HOLE"]
    region = {"vm_id": "$vm", "slot": 3, "flags": [], "guest_phys_addr": 3 * GPA}
    region |= {"memory_size": 4 * P, "userspace_addr": ("@m", 0)}
    access = {"vm_id": "$vm", "vcpu_id": "$cpu", "gpa": GPA + 5, "write": True, "value": 3}
    log = [
        *setup(["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]),
        Step(None, "vcpu_access", access),
        Step(None, "vm_close", {"vm_id": "$vm"}),
        Step(None, "vm_close", {"vm_id": "$vm"}),  # EBADF
        Step(None, "vcpu_access", access | {"write": False}),  # EBADF
        Step(None, "set_user_memory_region", region),  # EBADF
        Step(None, "vm_guest_memfd", {"vm_id": "$vm", "size": 4 * P, "flags": []}),  # EBADF
        Step(None, "fallocate", {"fd": "$g", "mode": keep, "offset": 8 * P, "length": P}),
        Step(None, "mapping_access", {"map_id": "$gm", "offset": 5, "write": False, "value": 0}),
        Step(None, "fallocate", {"fd": "$g", "mode": punch, "offset": 0, "length": P}),
        Step(None, "mapping_access", {"map_id": "$gm", "offset": 5, "write": False, "value": 0}),
        Step(None, "close", {"fd": "$g"}),
        Step(None, "munmap", {"map_id": "$gm"}),
        Step(None, "vm_close", {"vm_id": "$vm"}),  # EBADF: destroyed with its last file
    ]
    both(log)


def test_pin_steps_are_skipped_against_the_kernel() -> None:
    """GUP pins have no syscall: a log with them plays on the kernel, the model and the
    engine with the pin steps left out for all three (kvm_logs.play), not failing."""
    pin = {"map_id": "$pm", "offset": 0, "length": P, "write": True}
    log = [
        *setup([]),
        Step(None, "mapping_pin", pin),
        Step(None, "pwrite", {"fd": "$mfd", "offset": 0, "data": b"\x05"}),
        Step(None, "mapping_access", {"map_id": "$pm", "offset": 0, "write": False, "value": 0}),
        Step(None, "mapping_unpin", {"pin_id": 1}),
    ]
    both(log)
