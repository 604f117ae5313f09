"""The GUP pin steps of the random KVM logs (kvm_logs.log_strategy(pins=True)):
pins of the VMM's mappings (ranges past a mapping and past the file's end too, write
pins through a read-only mapping), unpins of live and unknown ids. Only the engine and
the model can pin; kvm_logs.play skips these steps when a runner cannot."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.engine.kvm_logs import SHARED, P, Step, _step

# a read-only shared mapping of the RAM (labelled ro; "$ro" before it is no mapping)
RO = {"fd": "$mfd", "offset": 0, "length": 16 * P, "prot": ["PROT_READ"], "flags": SHARED}


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
    return [pin] * 3 + [unpin] + [st.just(Step("ro", "mmap", RO))] * 2
