"""The binding table (tests/oracle/kvm_binding_cases.py) on the engine and on the
reference model: the errno this machine's KVM gives, or mainline x86's where the case
says this machine differs; the engine's invariant checker after every case."""

from __future__ import annotations

import pytest

from app.engine import Config, Machine
from tests.engine.kvm_adapter import EngineKvmRunner
from tests.engine.refmodel_kvm import KvmModel
from tests.oracle.kvm_binding_cases import CASES, Case, run_case


def want(errno: str | None) -> tuple[bool, object]:
    return (True, None) if errno is None else (False, errno)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_binding_rule_on_the_engine(case: Case) -> None:
    e = EngineKvmRunner(Machine(Config(profile="guest-memfd", phys_pages=1 << 12)))
    got = run_case(e, case, e.map_addr)
    e.m.check()
    assert got == want(case.engine_errno), case.rule


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_binding_rule_on_the_model(case: Case) -> None:
    m = KvmModel(profile="guest-memfd", phys_pages=1 << 12)
    assert run_case(m, case, m.map_addr) == want(case.model_errno), case.rule
