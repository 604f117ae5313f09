"""The engine against this machine's kernel: every probe of
tests/oracle/probe_kernel.py (each a userspace-visible rule of SEMANTICS.md)
runs on both, step by step, and the answers must be equal.

The guest-memfd profile is today's kernel, so it must agree everywhere.
Skipped, with the reason, where memfd or /dev/kvm is not usable.
"""

from __future__ import annotations

import pytest

from app import oracle
from app.engine import Config, Machine
from tests.engine.kernel_adapter import EngineRunner
from tests.oracle.probe_kernel import PROBES, Probe, run_probe

MEMFD_OK, MEMFD_WHY = oracle.available()
KVM_OK, KVM_WHY = oracle.kvm_available()


def engine_answers(p: Probe) -> list[tuple[str, object, bool, object]]:
    runner = EngineRunner(Machine(Config(profile="guest-memfd", phys_pages=1 << 16)))
    out = []
    for op, args in p.steps:
        try:
            ok, value = runner.run(op, args)
        except ValueError as e:
            ok, value = False, f"ValueError({e})"
        out.append((op, args, ok, value))
        runner.m.check()
    return out


@pytest.mark.parametrize("probe", PROBES, ids=[f"{p.section}: {p.title}" for p in PROBES])
def test_probe_matches_kernel(probe: Probe) -> None:
    if not MEMFD_OK:
        pytest.skip(f"no memfd on this machine: {MEMFD_WHY}")
    if probe.kvm and not KVM_OK:
        pytest.skip(f"no usable /dev/kvm with guest_memfd: {KVM_WHY}")
    kernel = run_probe(probe)
    engine = engine_answers(probe)
    diffs = [
        f"step {i} {op}({args}): kernel {kv!r} ({'ok' if kok else 'err'}), "
        f"engine {ev!r} ({'ok' if eok else 'err'})"
        for i, ((op, args, kok, kv), (_, _, eok, ev)) in enumerate(zip(kernel, engine, strict=True))
        if (kok, kv) != (eok, ev)
    ]
    assert not diffs, "\n".join(diffs)
