"""Shared field types, enum spellings and the one error body of the API."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# Body integers are strict: 4096 is accepted, "4096", 4096.0 and true are not.
Int64 = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX)]
UInt64 = Annotated[int, Field(strict=True, ge=0, le=UINT64_MAX)]
Bytes64 = Annotated[int, Field(strict=True, ge=0, le=INT64_MAX)]
# An fd as the caller spells it: any int64; one the kernel could never hand out is EBADF.
Fd = Annotated[int, Field(strict=True, ge=INT64_MIN, le=INT64_MAX)]
PageIndex = Annotated[int, Field(ge=0, le=UINT64_MAX)]  # query strings: lax


def _owner_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _valid_base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not valid base64: {exc}") from exc
    return value


# Bytes in a JSON body: base64 (RFC 4648), checked at the edge; b64_bytes decodes them.
Base64 = Annotated[str, AfterValidator(_valid_base64)]


def b64_bytes(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


# Owner ids are strings in the API ("0", "1", ...); a JSON integer is taken too.
OwnerId = Annotated[str, BeforeValidator(_owner_id), Field(min_length=1, max_length=64)]

Profile = Literal["rfc-v2", "guest-memfd"]
Thp = Literal["never", "always", "within_size"]
Variant = Literal["multi_owner", "mmap_shared", "inplace_conversion", "no_direct_map", "hugetlb_1g"]
MfdFlag = Literal["MFD_ALLOW_SEALING", "MFD_CLOEXEC", "MFD_HUGETLB", "MFD_NOEXEC_SEAL", "MFD_EXEC"]
GmemFlag = Literal["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
Seal = Literal[
    "F_SEAL_SEAL",
    "F_SEAL_SHRINK",
    "F_SEAL_GROW",
    "F_SEAL_WRITE",
    "F_SEAL_FUTURE_WRITE",
    "F_SEAL_GUEST",
    "F_SEAL_EXEC",
]
FallocMode = Literal["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
Prot = Literal["PROT_READ", "PROT_WRITE"]
MapFlag = Literal["MAP_SHARED", "MAP_PRIVATE"]
OwnerKind = Literal["kvm", "recorder"]
FileKind = Literal["memfd", "guest_memfd"]

NameList = Annotated[list[str], Field(max_length=64)]


def utf8_name(value: str) -> str:
    """A name as the kernel would copy it: up to the first NUL, valid UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("not valid UTF-8 (lone surrogate)") from exc
    return value


class ErrorBody(BaseModel):
    """Every error answer. Kernel failures carry the errno by name (409; 404 for EBADF);
    service failures use the same shape: ENOENT for an unknown session, owner or mapping
    (404), EINVAL for a body that does not fit the schema (422, with FastAPI's `detail`),
    E2BIG / EAGAIN for a limit of the service (413 / 429, with the limit's name)."""

    errno: str | None = Field(description="errno name, e.g. EBUSY")
    errno_value: int | None = Field(description="errno number, e.g. 16")
    op: str | None = Field(description="the operation that failed")
    message: str = Field(description="which rule refused, in words")
    hazard: str | None = Field(default=None, description="an RFC hazard the failure shows")
    seq: int | None = Field(default=None, description="engine event seq that recorded it")
    limit: str | None = Field(default=None, description="the service limit that was reached")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="422 only: FastAPI's validation errors"
    )
    error_offset: int | None = Field(
        default=None,
        description="KVM_SET_MEMORY_ATTRIBUTES2's EAGAIN only (proposal): the byte offset of "
        "the first page with a reference beyond guest_memfd's own",
    )
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "errno": "EBUSY",
                    "errno_value": 16,
                    "op": "F_ADD_SEALS",
                    "message": "F_SEAL_GUEST needs an empty file (size is 8192)",
                }
            ]
        }
    )


def examples(*items: dict[str, Any]) -> ConfigDict:
    """model_config with OpenAPI examples."""
    return ConfigDict(json_schema_extra={"examples": list(items)})
