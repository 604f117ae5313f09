"""Sessions (one simulated machine each), their traces and time travel."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from app.models.common import Profile, Thp, Variant, examples
from app.models.files import File
from app.models.guest import Owner

PhysPages = Annotated[int, Field(strict=True, ge=1024, le=2**26, multiple_of=1024)]

_OP = {
    "op": "fallocate",
    "args": {"fd": 3, "mode": ["FALLOC_FL_KEEP_SIZE"], "offset": 0, "len": 4096},
}
_TRACE = {
    "profile": "rfc-v2",
    "phys_pages": 262144,
    "thp": "never",
    "variants": [],
    "ops": [
        {"op": "memfd_create", "args": {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}},
        {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}},
        {"op": "ftruncate", "args": {"fd": 3, "length": 8192}},
        _OP,
    ],
}


class TraceOp(BaseModel):
    """One operation of a session's log: the API's op name and its arguments (the request
    body plus the ids from the path). `errno` is how it ended; when present in an imported
    trace, replay must end the same way."""

    op: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)
    errno: str | None = None
    model_config = examples(_OP | {"errno": None})


class Trace(BaseModel):
    profile: Profile = "rfc-v2"
    phys_pages: PhysPages = 262144
    thp: Thp = "never"
    variants: list[Variant] = Field(default_factory=list, max_length=4)
    ops: list[TraceOp] = Field(default_factory=list)
    model_config = examples(_TRACE)


class SessionCreate(BaseModel):
    """A new machine; with `trace`, the trace's configuration and every op replayed
    (a bad trace is refused whole, naming the first bad op)."""

    profile: Profile = "rfc-v2"
    phys_pages: PhysPages = 262144
    thp: Thp = "never"
    variants: list[Variant] = Field(default_factory=list, max_length=4)
    trace: Trace | None = None
    model_config = examples(
        {"profile": "rfc-v2", "phys_pages": 262144, "thp": "never"}, {"trace": _TRACE}
    )


class Session(BaseModel):
    """`seq` is the number of operations in the session's log so far (the n of
    rewind); `event_seq` the number of engine events (the seq of the newest event)."""

    id: str
    profile: Profile
    phys_pages: int
    thp: Thp
    variants: list[str] = Field(default_factory=list)
    seq: int
    event_seq: int
    damage: str | None = Field(
        default=None,
        description="null, or why the stored log could not be replayed past op seq: the "
        "session is then read only (its later stored ops are kept, not replayed)",
    )
    model_config = examples(
        {
            "id": "q3Jx0m2kz5pVw7yH1tB9cA",
            "profile": "rfc-v2",
            "phys_pages": 262144,
            "thp": "never",
            "variants": [],
            "seq": 0,
            "event_seq": 0,
        }
    )


class PhysSummary(BaseModel):
    free: int
    used: int
    total: int
    model_config = examples({"free": 262144, "used": 0, "total": 262144})


class Waiter(BaseModel):
    """An operation sleeping on a page lock."""

    seq: int
    op: str
    fd: int | None
    pfn: int
    model_config = examples({"seq": 7, "op": "fallocate", "fd": 3, "pfn": 1024})


class SessionDetail(Session):
    files: list[File]
    owners: list[Owner]
    phys: PhysSummary
    waiters: list[Waiter] = Field(default_factory=list)
    redo: int = Field(
        0,
        ge=0,
        description="ops a rewind took out that POST …/redo can replay (until a new op)",
    )
    model_config = examples(
        {
            "id": "q3Jx0m2kz5pVw7yH1tB9cA",
            "profile": "rfc-v2",
            "phys_pages": 262144,
            "thp": "never",
            "variants": [],
            "seq": 1,
            "event_seq": 1,
            "files": [],
            "owners": [{"owner_id": "0", "name": "kvm0", "kind": "kvm"}],
            "phys": {"free": 262144, "used": 0, "total": 262144},
            "waiters": [],
            "redo": 0,
        }
    )


class Rewind(BaseModel):
    seq: int = Field(strict=True, ge=0, le=2**63 - 1, description="an op count: 0 .. seq")
    model_config = examples({"seq": 2})


class Redo(BaseModel):
    count: int = Field(
        1, strict=True, ge=1, le=2**63 - 1, description="how many rewound ops to replay"
    )
    model_config = examples({"count": 1})
