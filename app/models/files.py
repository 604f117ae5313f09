"""Files: memfd and guest_memfd, and the syscall-like operations on them (bytes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.models.common import (
    Base64,
    Bytes64,
    FallocMode,
    Fd,
    FileKind,
    GmemFlag,
    Int64,
    MapFlag,
    MfdFlag,
    Prot,
    Seal,
    b64_bytes,
    examples,
    utf8_name,
)

_FILE = {
    "fd": 3,
    "kind": "memfd",
    "name": "vm0",
    "size": 0,
    "seals": ["F_SEAL_GUEST"],
    "flags": ["MFD_ALLOW_SEALING"],
    "owners": ["0"],
    "nr_pages": 0,
    "mappings": 0,
}


class File(BaseModel):
    """A file: `nr_pages` counts resident 4 KiB pages, `mappings` live mmaps."""

    fd: int
    kind: FileKind
    name: str
    size: int
    seals: list[str]
    flags: list[str]
    owners: list[str] = Field(description="owner ids registered with memfd_register_guest")
    nr_pages: int
    mappings: int
    seals_value: int = 0
    writable_maps: int = Field(0, description="MAP_SHARED mappings (they block F_SEAL_WRITE)")
    waiters: int = Field(0, description="operations of this file sleeping on a page lock")
    model_config = examples(_FILE | {"seals_value": 32, "writable_maps": 0, "waiters": 0})


def _rw() -> list[Prot]:
    return ["PROT_READ", "PROT_WRITE"]


def _shared() -> list[MapFlag]:
    return ["MAP_SHARED"]


class MemfdCreate(BaseModel):
    """memfd_create(name, flags); no flags is flags 0, as in the kernel (the file starts
    sealed with F_SEAL_SEAL): pass MFD_ALLOW_SEALING to add seals later."""

    name: Annotated[str, AfterValidator(utf8_name), Field(max_length=4096)] = "vm0"
    flags: Annotated[list[MfdFlag], Field(max_length=16)] = Field(default_factory=list)
    model_config = examples({"name": "vm0", "flags": ["MFD_ALLOW_SEALING", "MFD_CLOEXEC"]})


class GuestMemfdCreate(BaseModel):
    size: Int64 = Field(description="bytes; KVM wants a non-zero multiple of 4096")
    flags: Annotated[list[GmemFlag], Field(max_length=16)] = Field(default_factory=list)
    model_config = examples({"size": 2097152, "flags": ["GUEST_MEMFD_FLAG_MMAP"]})


class Ftruncate(BaseModel):
    length: Int64
    model_config = examples({"length": 8192})


class FcntlAddSeals(BaseModel):
    cmd: Literal["F_ADD_SEALS"]
    seals: Annotated[list[Seal], Field(max_length=16)] = Field(default_factory=list)
    model_config = examples({"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})


class FcntlGetSeals(BaseModel):
    cmd: Literal["F_GET_SEALS"]
    model_config = examples({"cmd": "F_GET_SEALS"})


Fcntl = Annotated[FcntlAddSeals | FcntlGetSeals, Field(discriminator="cmd")]


class Seals(BaseModel):
    """The seals after the call, by name and as the F_GET_SEALS value."""

    seals: list[str]
    value: int
    model_config = examples({"seals": ["F_SEAL_SEAL", "F_SEAL_GUEST"], "value": 33})


class Fallocate(BaseModel):
    mode: Annotated[list[FallocMode], Field(max_length=8)] = Field(default_factory=list)
    offset: Int64
    len: Int64
    model_config = examples(
        {"mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], "offset": 0, "len": 4096}
    )


class FallocateAnswer(File):
    """The file after the call; `pending` is true when a punch sleeps on a locked page."""

    pending: bool = False
    seq: int | None = Field(None, description="engine event seq of the call")
    model_config = examples(_FILE | {"nr_pages": 1, "pending": True, "seq": 7})


class Pread(BaseModel):
    offset: Int64
    count: Bytes64
    model_config = examples({"offset": 0, "count": 16})


class PreadAnswer(BaseModel):
    nbytes: int
    data_b64: str
    model_config = examples({"nbytes": 5, "data_b64": "aGVsbG8="})


class Pwrite(BaseModel):
    offset: Int64
    data_b64: Base64 = Field(description="the bytes to write, base64 (RFC 4648)")
    model_config = examples({"offset": 0, "data_b64": "aGVsbG8="})

    def data(self) -> bytes:
        return b64_bytes(self.data_b64)


class PwriteAnswer(BaseModel):
    nbytes: int
    model_config = examples({"nbytes": 5})


class Mmap(BaseModel):
    offset: Int64 = 0
    length: Int64
    prot: Annotated[list[Prot], Field(max_length=8)] = Field(default_factory=_rw)
    flags: Annotated[list[MapFlag], Field(max_length=8)] = Field(default_factory=_shared)
    model_config = examples(
        {"offset": 0, "length": 4096, "prot": ["PROT_READ", "PROT_WRITE"], "flags": ["MAP_SHARED"]}
    )


class Mapping(BaseModel):
    map_id: int
    fd: int
    offset: int
    length: int
    prot: list[str]
    flags: list[str]
    addr: int | None = Field(None, description="its address in the VMM address space")
    model_config = examples(
        {
            "map_id": 1,
            "fd": 3,
            "offset": 0,
            "length": 4096,
            "prot": ["PROT_READ"],
            "flags": ["MAP_SHARED"],
        }
    )


# Op-log arguments: the body plus the ids from the path.
class FdArgs(BaseModel):
    fd: Fd
    model_config = examples({"fd": 3})


class FtruncateArgs(Ftruncate, FdArgs):
    pass


class FallocateArgs(Fallocate, FdArgs):
    pass


class PreadArgs(Pread, FdArgs):
    pass


class PwriteArgs(Pwrite, FdArgs):
    pass


class MmapArgs(Mmap, FdArgs):
    pass


class FcntlArgs(FdArgs):
    cmd: Literal["F_ADD_SEALS", "F_GET_SEALS"]
    seals: Annotated[list[Seal], Field(max_length=16)] = Field(default_factory=list)


class MunmapArgs(BaseModel):
    map_id: Int64
