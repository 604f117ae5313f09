"""Variant inplace_conversion in the API: a PROPOSAL, not merged ("[PATCH v8 00/46]
guest_memfd: In-place conversion support", Ackerley Tng, 18 Jun 2026).

KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd fd: struct kvm_memory_attributes2
{offset, size, attributes, flags, error_offset}; flags are the content modes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from app.models.common import Fd, UInt64, examples
from app.models.kvm import AttrExtent

KName = Annotated[str, Field(max_length=64)]
KNames = Annotated[list[KName], Field(max_length=8)]
PROPOSAL = "proposal, not merged: guest_memfd in-place conversion v8 (June 2026)"


class MemoryAttributes2(BaseModel):
    offset: UInt64 = Field(description="bytes into the guest_memfd (page aligned)")
    size: UInt64
    attributes: KNames = Field(
        default_factory=list, description="[] (shared) or [KVM_MEMORY_ATTRIBUTE_PRIVATE]"
    )
    flags: KNames = Field(
        default_factory=list,
        description="content mode: [] unspecified, KVM_SET_MEMORY_ATTRIBUTES2_MODE_ZERO or "
        "_MODE_PRESERVE (EOPNOTSUPP where the arch cannot honour it)",
    )
    model_config = examples(
        {"offset": 0, "size": 4096, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"], "flags": []}
    )


class MemoryAttributes2Answer(BaseModel):
    offset: int
    size: int
    attributes: list[str]
    flags: list[str]
    error_offset: int = Field(description="0 on success; EAGAIN names it in the error")
    extents: list[AttrExtent] = Field(description="the guest_memfd's attribute runs (pages)")
    proposal: str = PROPOSAL
    seq: int
    model_config = examples(
        {
            "offset": 0,
            "size": 4096,
            "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"],
            "flags": [],
            "error_offset": 0,
            "extents": [{"start": 0, "end": 1, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]}],
            "proposal": PROPOSAL,
            "seq": 9,
        }
    )


class MemoryAttributes2Args(MemoryAttributes2):
    fd: Fd
