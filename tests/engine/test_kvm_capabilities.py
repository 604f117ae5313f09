"""KVM_CHECK_EXTENSION on a VM: the engine against the model (every VM type, both
profiles) and against this machine's KVM (the default VM), where this machine differs
on purpose saying why."""

from __future__ import annotations

import pytest

from app import oracle
from app.engine import Config, Machine
from app.oracle_kvm import KvmKernel
from tests.engine.refmodel_kvm import KvmModel

KVM_OK, KVM_WHY = oracle.kvm_available()
TYPES = ["KVM_X86_DEFAULT_VM", "KVM_X86_SW_PROTECTED_VM", "KVM_X86_SNP_VM", "KVM_X86_TDX_VM"]
# mainline x86 with a TDP MMU (the engine) against this machine (PVM: shadow paging)
THIS_MACHINE = {
    "KVM_CAP_MULTI_ADDRESS_SPACE": "no SMM here: one address space (mainline: 2)",
    "KVM_CAP_VM_TYPES": "PVM makes the default VM only (mainline: DEFAULT, SW_PROTECTED, SNP, TDX)",
    "KVM_CAP_PRE_FAULT_MEMORY": "no TDP MMU here (KVM_PRE_FAULT_MEMORY needs one)",
    "KVM_CAP_MAX_VCPUS": "this kernel's KVM_MAX_VCPUS is 1024 (mainline x86: 4096)",
}


@pytest.mark.parametrize(
    ("profile", "vm_type"), [*[("guest-memfd", t) for t in TYPES], ("rfc-v2", TYPES[0])]
)
def test_the_engine_answers_as_the_model(profile: str, vm_type: str) -> None:
    m = Machine(Config(profile=profile, phys_pages=1 << 12))
    model = KvmModel(profile=profile)
    engine = m.vm_caps(m.vm_create("v", vm_type))
    want = model.capabilities(model.vm_create("v", vm_type))
    assert {k: engine.get(k) for k in want} == want


@pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm: {KVM_WHY}")
def test_the_default_vm_answers_as_this_kernel() -> None:
    m = Machine(Config(profile="guest-memfd", phys_pages=1 << 12))
    engine = m.vm_caps(m.vm_create("v"))
    with KvmKernel() as k:
        kernel = k.vm_capabilities(k.vm_create("v"))
    common = sorted(engine.keys() & kernel.keys())
    assert len(common) >= 10
    differ = {c for c in common if engine[c] != kernel[c]}
    assert differ <= THIS_MACHINE.keys(), {c: (engine[c], kernel[c]) for c in differ}
    assert {"KVM_CAP_GUEST_MEMFD_FLAGS", "KVM_CAP_NR_MEMSLOTS", "KVM_CAP_MEMORY_ATTRIBUTES"} <= set(
        common
    ) - differ
