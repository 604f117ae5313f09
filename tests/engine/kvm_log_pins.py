"""The GUP pin steps of the random KVM logs (kvm_logs.log_strategy(pins=True)):
pins of the VMM's mappings (ranges past a mapping and past the file's end too, write
pins through a read-only mapping), unpins of live and unknown ids, F_SEAL_WRITE on the
RAM (EBUSY while a page of it is pinned or a shared writable mapping is left;
setup(sealable=True) lets it be sealed). Only the engine and the model can pin;
kvm_logs.play skips these steps when a runner cannot."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.engine.kvm_logs import P, Step, _step

PRIVATE = ["MAP_PRIVATE"]

# a read-only mapping of the RAM (labelled ro; "$ro" before it is no mapping), private:
# a shared one would block F_SEAL_WRITE for good (VM_MAYWRITE), and a private one has
# no VM_WRITE either (a write pin there is EFAULT)
RO = {"fd": "$mfd", "offset": 0, "length": 16 * P, "prot": ["PROT_READ"], "flags": PRIVATE}


def pin_ops(map_ids: list[str]) -> list[st.SearchStrategy[Step]]:
    """The pin steps, weighted against the log's other ops (bounded: a few per log)."""
    pin = _step(
        "mapping_pin",
        map_id=st.sampled_from([*map_ids, "$ro", "$ro"]),
        offset=st.integers(0, 20).map(lambda k: k * P),
        length=st.sampled_from([1, P, 2 * P, 3 * P, 0]),
        write=st.booleans(),
    )
    unpin = _step("mapping_unpin", pin_id=st.sampled_from([1, 1, 2, 3, 9]))
    seal = st.just(Step(None, "F_ADD_SEALS", {"fd": "$mfd", "seals": ["F_SEAL_WRITE"]}))
    unmap = st.just(Step(None, "munmap", {"map_id": "$m"}))  # it blocks F_SEAL_WRITE
    return [pin] * 3 + [unpin, st.just(Step("ro", "mmap", RO)), seal, seal, unmap, unmap]
