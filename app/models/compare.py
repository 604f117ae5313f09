"""Side by side: a session's log under two designs (diff), and against the real kernel."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool

from app.models.common import examples

# the designs a log can be replayed under: the RFC as posted, the review's alternatives,
# and what it became; "session" is the session's own configuration
Design = Literal[
    "rfc-v2",
    "multi_owner",
    "mmap_shared",
    "guest-memfd",
    "inplace_conversion",
    "no_direct_map",
    "hugetlb_1g",
]
DesignOrSession = Literal[
    "session",
    "rfc-v2",
    "multi_owner",
    "mmap_shared",
    "guest-memfd",
    "inplace_conversion",
    "no_direct_map",
    "hugetlb_1g",
]
Aspect = Literal["result", "callbacks", "frames", "pages"]
Status = Literal["agree", "diverge", "intended", "follows", "skipped"]


class Window(BaseModel):
    first: int = Field(default=1, ge=1, le=2**31, description="the first op (1-based) to answer")
    limit: int = Field(default=500, ge=1, le=5000, description="most ops answered")
    only_diverging: StrictBool = Field(default=False, description="answer only the ops that differ")
    model_config = examples({"first": 1, "limit": 500, "only_diverging": False})


class DiffRequest(Window):
    """Replay the session's log under `variant` and under `base` (default: the session's
    own configuration), op by op. The session does not change."""

    variant: Design
    base: DesignOrSession = "session"
    model_config = examples(
        {"variant": "multi_owner"}, {"variant": "guest-memfd", "base": "rfc-v2", "limit": 100}
    )


class DiffSide(BaseModel):
    design: str
    label: str
    profile: str
    variants: list[str]
    thp: str
    model_config = examples(
        {
            "design": "multi_owner",
            "label": "several owners per file (multi_owner)",
            "profile": "rfc-v2",
            "variants": ["multi_owner"],
            "thp": "never",
        }
    )


class DiffCell(BaseModel):
    """How one op ended under one design."""

    ok: bool
    errno: str | None = None
    result: str = Field(description="the answer in words: 'fd 3', 'pfn 5, order 9', 'EBUSY'")
    callbacks: list[str] = Field(default_factory=list, description="the first few, in words")
    callbacks_total: int = 0
    hazard: str | None = None
    frames: int = Field(description="frames in use after the op")
    pages: int = Field(description="resident pages of all files after the op")
    model_config = examples(
        {
            "ok": True,
            "result": "ok",
            "callbacks": ["invalidate_page_range → owner 0 [2, 2]"],
            "callbacks_total": 1,
            "frames": 7,
            "pages": 7,
        }
    )


class DiffRow(BaseModel):
    n: int
    op: str
    args: dict[str, Any]
    a: DiffCell
    b: DiffCell
    differs: list[Aspect] = Field(default_factory=list)
    cause: Literal["root", "follows"] | None = Field(
        default=None,
        description="root: it differs though both states were alike before it; follows: "
        "the states already differed (since op `follows`)",
    )
    follows: int | None = Field(default=None, description="the root cause this row follows")
    model_config = examples(
        {
            "n": 7,
            "op": "register_guest",
            "args": {"fd": 3, "owner_id": "1"},
            "a": {"ok": False, "errno": "EPERM", "result": "EPERM", "frames": 0, "pages": 0},
            "b": {"ok": True, "result": "ok", "frames": 0, "pages": 0},
            "differs": ["result"],
        }
    )


_CELL: dict[str, Any] = {
    "ok": True,
    "errno": None,
    "result": "ok",
    "callbacks": [],
    "frames": 0,
    "pages": 0,
}


class Diff(BaseModel):
    a: DiffSide
    b: DiffSide
    ops: int = Field(description="ops in the session's log")
    compared: int = Field(description="ops replayed under both designs (first .. last answered)")
    diverging: int = Field(description="ops among those answered that differ")
    first_divergence: int | None = None
    roots: int = Field(default=0, description="diverging ops that are root causes")
    rows: list[DiffRow]
    next: int | None = Field(default=None, description="more rows from this op on (first=)")
    model_config = examples(
        {
            "a": {
                "design": "rfc-v2",
                "label": "the RFC as posted",
                "profile": "rfc-v2",
                "variants": [],
                "thp": "never",
            },
            "b": {
                "design": "multi_owner",
                "label": "several owners per file",
                "profile": "rfc-v2",
                "variants": ["multi_owner"],
                "thp": "never",
            },
            "ops": 7,
            "compared": 7,
            "diverging": 1,
            "first_divergence": 7,
            "rows": [
                {
                    "n": 7,
                    "op": "register_guest",
                    "args": {"fd": 3, "owner_id": "1"},
                    "a": _CELL | {"ok": False, "errno": "EPERM", "result": "EPERM"},
                    "b": _CELL,
                    "differs": ["result"],
                }
            ],
            "next": None,
        }
    )


class CompareRequest(Window):
    """Run the session's log against this machine's kernel, op by op."""

    model_config = examples({}, {"first": 1, "limit": 100, "only_diverging": True})


class Answer(BaseModel):
    ok: bool
    errno: str | None = None
    value: dict[str, Any] = Field(
        default_factory=dict, description="what userspace sees: fd, nbytes, data, seals, size"
    )
    text: str
    model_config = examples(
        {"ok": True, "value": {"fd": 3, "size": 0}, "text": "fd 3"},
        {"ok": False, "errno": "EPERM", "value": {}, "text": "EPERM"},
    )


class CompareRow(BaseModel):
    """`status`: agree; diverge (the engine is wrong, or the kernel changed); intended (a
    difference on purpose: the rfc-v2 profile's F_SEAL_GUEST, 5.15's missing
    F_SEAL_EXEC / MFD_NOEXEC_SEAL / MFD_EXEC, kernel-internal ops with no userspace twin,
    or a consequence of one); follows (differs because of an op the kernel did not run);
    skipped (not run in the kernel: the byte budget, or no /dev/kvm)."""

    n: int
    op: str
    args: dict[str, Any]
    engine: Answer
    kernel: Answer | None = Field(default=None, description="null when the kernel did not run it")
    status: Status
    diverges: bool = Field(description="the two answers differ (or only one side ran)")
    intended: bool
    reason: str | None = None
    model_config = examples(
        {
            "n": 4,
            "op": "pread",
            "args": {"fd": 3, "offset": 0, "count": 8},
            "engine": {"ok": False, "errno": "EPERM", "text": "EPERM"},
            "kernel": {"ok": True, "value": {"nbytes": 8, "size": 8192}, "text": "8 bytes"},
            "status": "intended",
            "diverges": True,
            "intended": True,
            "reason": "F_SEAL_GUEST (op #2) is the RFC's",
        }
    )


class Comparison(BaseModel):
    """`available` false (with `reason`) where this machine cannot answer: no memfd, or
    the comparison is turned off (SEALSCOPE_COMPARE_KERNEL=0). Without /dev/kvm,
    guest_memfd ops are skipped with `kvm_reason`."""

    available: bool
    reason: str | None = None
    kvm_available: bool = False
    kvm_reason: str | None = None
    kernel: str = Field(default="", description="uname -r of the kernel asked")
    profile: str
    budget_bytes: int
    used_bytes: int = 0
    ops: int
    compared: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    unexpected: int = Field(default=0, description="ops that diverge without a reason: engine bugs")
    first_unexpected: int | None = None
    rows: list[CompareRow] = Field(default_factory=list)
    next: int | None = None
    model_config = examples(
        {
            "available": True,
            "kvm_available": True,
            "kernel": "6.18.0",
            "profile": "rfc-v2",
            "budget_bytes": 67108864,
            "used_bytes": 0,
            "ops": 2,
            "compared": 2,
            "counts": {"agree": 1, "intended": 1},
            "unexpected": 0,
            "rows": [
                {
                    "n": 2,
                    "op": "fcntl",
                    "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]},
                    "engine": {"ok": True, "value": {"seals": 32}, "text": "seals 0x20"},
                    "kernel": None,
                    "status": "intended",
                    "diverges": True,
                    "intended": True,
                    "reason": "F_SEAL_GUEST is the RFC's seal: the kernel has none like it",
                }
            ],
        },
        {
            "available": False,
            "reason": "memfd_create failed: ENOSYS",
            "profile": "guest-memfd",
            "budget_bytes": 67108864,
            "ops": 3,
        },
    )
