"""Variant inplace_conversion (a PROPOSAL, not merged: guest_memfd in-place conversion
v8, June 2026): the op set_memory_attributes2, KVM_SET_MEMORY_ATTRIBUTES2 on a
guest_memfd.  ops.py registers INPLACE_SPECS with the KVM ops."""

from __future__ import annotations

from app.engine import Machine
from app.engine._kvm_names import ATTRIBUTES, UNKNOWN_U64, kernel_bits
from app.engine._names import names_of
from app.models.kvm import AttrExtent
from app.models.kvm_inplace import MemoryAttributes2Answer, MemoryAttributes2Args
from app.service.convert import fd_arg
from app.service.kvm_ops import Check, Handler

CONTENT_MODES = {
    "KVM_SET_MEMORY_ATTRIBUTES2_MODE_ZERO": 1 << 0,
    "KVM_SET_MEMORY_ATTRIBUTES2_MODE_PRESERVE": 1 << 1,
}
MAX_EXTENTS = 1000


def set_memory_attributes2(m: Machine, a: MemoryAttributes2Args) -> MemoryAttributes2Answer:
    fd = fd_arg(a.fd)
    attrs = kernel_bits(a.attributes, ATTRIBUTES, UNKNOWN_U64)
    flags = kernel_bits(a.flags, CONTENT_MODES, UNKNOWN_U64)
    m.set_memory_attributes2(fd, a.offset, a.size, attrs, flags)
    runs = m.gmem_attr_runs(fd)[:MAX_EXTENTS]
    return MemoryAttributes2Answer(
        offset=a.offset,
        size=a.size,
        attributes=names_of(attrs, ATTRIBUTES),
        flags=names_of(flags, CONTENT_MODES),
        error_offset=0,
        extents=[
            AttrExtent(start=s, end=e, attributes=names_of(v, ATTRIBUTES)) for s, e, v in runs
        ],
        seq=m.event_count,
    )


INPLACE_SPECS: list[tuple[str, type, Handler, Check | None]] = [
    ("set_memory_attributes2", MemoryAttributes2Args, set_memory_attributes2, None),
]
