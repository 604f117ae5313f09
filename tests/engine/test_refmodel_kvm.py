"""The KVM reference model's own pieces: attribute runs against a plain set of gfns."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.budget import DERANDOMIZE, examples
from tests.engine.refmodel_kvm import KvmModel, set_runs

CHANGES = st.lists(
    st.tuples(st.integers(0, 40), st.integers(1, 24), st.booleans()), min_size=1, max_size=30
)


@settings(max_examples=examples(300), derandomize=DERANDOMIZE, database=None)
@given(CHANGES)
def test_runs_are_the_set_of_private_gfns(changes: list[tuple[int, int, bool]]) -> None:
    runs: list[tuple[int, int]] = []
    private: set[int] = set()
    for start, n, on in changes:
        runs = set_runs(runs, start, start + n, on)
        gfns = set(range(start, start + n))
        private = private | gfns if on else private - gfns
        assert {g for a, b in runs for g in range(a, b)} == private
        assert all(a < b for a, b in runs)  # no empty runs
        assert all(b < c for (_, b), (c, _) in pairwise(runs))  # merged


def test_a_terabyte_vm_with_three_runs_keeps_three_pairs() -> None:
    m = KvmModel()
    vm = m.vm_create("big", "KVM_X86_SW_PROTECTED_VM")
    tib = 1 << 40
    for start in (0, tib // 2, tib - (2 << 20)):
        m.set_memory_attributes(vm, start, 2 << 20, ["KVM_MEMORY_ATTRIBUTE_PRIVATE"])
    assert len(m.vms[vm].private) == 3
    view = m.attribute_runs(vm, 0, tib // 4096)
    assert [r["attributes"] != [] for r in view] == [True, False, True, False, True]
