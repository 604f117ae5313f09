"""GUP pins of host mappings in the API: pin_user_pages() on a range of the VMM's
mapping (what O_DIRECT, vhost and VFIO do), and unpin_user_pages()."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from app.models.common import UInt64, examples

MapId = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]


class PinBody(BaseModel):
    offset: UInt64 = Field(description="bytes into the mapping (the page holding it is pinned)")
    length: UInt64 = Field(description="bytes from offset; every page it touches is pinned")
    write: bool = Field(
        default=False,
        strict=True,
        description="FOLL_WRITE: each page is faulted in for write (dirty; through "
        "MAP_PRIVATE the copy is made and pinned); EFAULT without PROT_WRITE",
    )
    model_config = examples({"offset": 8192, "length": 4096})


class PinArgs(PinBody):
    map_id: MapId

    @model_serializer(mode="wrap")
    def _omit_read(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A read pin's logged args are what they were before write existed (stored
        logs, traces and exports stay byte for byte the same)."""
        d: dict[str, Any] = handler(self)
        if not self.write:
            d.pop("write", None)
        return d


class PinAnswer(BaseModel):
    pin_id: int = Field(description="DELETE /sessions/{sid}/pins/{pin_id} unpins")
    map_id: int
    offset: int = Field(description="the first pinned page's offset in the mapping")
    pages: int = Field(description="pages pinned (each holds a reference)")
    pfns: list[int] = Field(description="the frame of each pinned page")
    seq: int = Field(description="engine event seq of the call")
    model_config = examples(
        {"pin_id": 1, "map_id": 1, "offset": 8192, "pages": 1, "pfns": [17], "seq": 12}
    )


class UnpinArgs(BaseModel):
    pin_id: MapId
