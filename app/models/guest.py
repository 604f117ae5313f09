"""The guest interface (kernel-internal, page indexes) and the simulated owners."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from app.models.common import Fd, OwnerId, OwnerKind, UInt64, examples, utf8_name


class OwnerCreate(BaseModel):
    name: Annotated[str, AfterValidator(utf8_name), Field(max_length=4096)] = "kvm0"
    kind: OwnerKind = "kvm"
    model_config = examples({"name": "kvm0", "kind": "kvm"})


class Owner(BaseModel):
    owner_id: str
    name: str
    kind: OwnerKind
    model_config = examples({"owner_id": "0", "name": "kvm0", "kind": "kvm"})


class Memslot(BaseModel):
    """Guest frames [gfn, gfn + npages) backed by file pages [index, index + npages)."""

    slot: int
    owner_id: str
    fd: int
    gfn: int
    index: int
    npages: int
    model_config = examples(
        {"slot": 0, "owner_id": "0", "fd": 3, "gfn": 0, "index": 0, "npages": 512}
    )


class GfnRun(BaseModel):
    """Mapped guest frames [gfn, gfn + npages) -> [pfn, pfn + npages)."""

    gfn: int
    npages: int
    pfn: int
    order: int
    model_config = examples({"gfn": 0, "npages": 512, "pfn": 1024, "order": 9})


class OwnerDetail(Owner):
    memslots: list[Memslot]
    mapped: list[GfnRun] = Field(description="the owner's secondary page table, as runs")
    next_gfn: int | None = Field(None, description="more runs from this gfn on (?start=)")
    nmapped: int
    nzapped: int
    ncallbacks: int
    model_config = examples(
        {
            "owner_id": "0",
            "name": "kvm0",
            "kind": "kvm",
            "memslots": [{"slot": 0, "owner_id": "0", "fd": 3, "gfn": 0, "index": 0, "npages": 16}],
            "mapped": [{"gfn": 0, "npages": 1, "pfn": 1024, "order": 0}],
            "next_gfn": None,
            "nmapped": 1,
            "nzapped": 0,
            "ncallbacks": 0,
        }
    )


class RegisterGuest(BaseModel):
    owner_id: OwnerId | None = Field(description="null: no owner (the RFC answers EINVAL)")
    model_config = examples({"owner_id": "0"})


class GetLockPfn(BaseModel):
    index: UInt64
    alloc: bool = Field(True, strict=True)
    model_config = examples({"index": 0, "alloc": True})


class Pfn(BaseModel):
    """A locked page: pfn of the 4 KiB page and the order of the page it is part of.
    `pending`: the caller sleeps on the page lock (pfn and order come with the wake event)."""

    pfn: int | None
    order: int | None
    pending: bool
    seq: int = Field(description="engine event seq of the call")
    model_config = examples({"pfn": 1024, "order": 0, "pending": False, "seq": 5})


class PutUnlockPfn(BaseModel):
    pfn: UInt64
    model_config = examples({"pfn": 1024})


class Unlocked(BaseModel):
    pfn: int
    seq: int = Field(description="engine event seq of the call")
    wakes: list[int] = Field(description="seqs of the sleeping operations this woke")
    model_config = examples({"pfn": 1024, "seq": 9, "wakes": [7]})


class MigratePage(BaseModel):
    pfn: UInt64 = Field(description="a frame of the page to move")
    model_config = examples({"pfn": 1024})


class Migrated(BaseModel):
    from_pfn: int
    pfn: int = Field(description="the frame the same 4 KiB page has now")
    fd: int | None = Field(
        description="the file whose page moved (null: it has no fd, closed while mapped)"
    )
    index: int = Field(description="that page's index in the file")
    seq: int = Field(description="engine event seq of the call")
    model_config = examples({"from_pfn": 1024, "pfn": 2048, "fd": 3, "index": 0, "seq": 9})


class Invalidate(BaseModel):
    start: UInt64
    end: UInt64 = Field(description="inclusive, like invalidate_page_range")
    model_config = examples({"start": 0, "end": 511})


class MemslotCreate(BaseModel):
    fd: Fd
    gfn: UInt64
    index: UInt64 = 0
    npages: UInt64
    model_config = examples({"fd": 3, "gfn": 0, "index": 0, "npages": 512})


class Fault(BaseModel):
    gfn: UInt64
    model_config = examples({"gfn": 0})


class FaultAnswer(BaseModel):
    gfn: int
    pfn: int | None
    order: int | None
    pending: bool
    seq: int
    model_config = examples({"gfn": 0, "pfn": 1024, "order": 0, "pending": False, "seq": 12})


# Op-log arguments: the body plus the ids from the path.
class RegisterGuestArgs(RegisterGuest):
    fd: Fd


class UnregisterGuest(BaseModel):
    owner_id: OwnerId
    model_config = examples({"owner_id": "0"})


class UnregisterGuestArgs(UnregisterGuest):
    fd: Fd


class GetLockPfnArgs(GetLockPfn):
    fd: Fd


class InvalidateArgs(Invalidate):
    fd: Fd


class MemslotArgs(MemslotCreate):
    owner_id: OwnerId


class FaultArgs(Fault):
    owner_id: OwnerId
