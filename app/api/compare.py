"""Side by side: a session's log under another design, and against the real kernel."""

from __future__ import annotations

from fastapi import Request

from app.api import new_router
from app.deps import SessionId, registry
from app.models.compare import CompareRequest, Comparison, Diff, DiffRequest
from app.service import diff as diff_svc
from app.service import kernel

router = new_router("side by side")


@router.post("/sessions/{sid}/diff", name="diff")
async def diff(request: Request, sid: SessionId, body: DiffRequest) -> Diff:
    """The session's log replayed under `base` (default: the session's own design) and
    under `variant` — the RFC as posted, multi_owner, mmap_shared or today's
    guest-memfd — op by op: each side's answer or errno, callbacks, frames in use and
    resident pages, and `differs` naming what parts. The session does not change."""
    return await diff_svc.diff(registry(request), sid, body)


@router.post("/sessions/{sid}/compare", name="compare")
async def compare(
    request: Request, sid: SessionId, body: CompareRequest | None = None
) -> Comparison:
    """The session's log run against this machine's kernel (memfd_create, ftruncate,
    seals, fallocate, pread/pwrite, mmap/munmap, close, KVM_CREATE_GUEST_MEMFD), op by
    op: the engine's answer, the kernel's, and whether they diverge — intended
    differences marked with the reason. Where the kernel cannot answer: 200 with
    `available` false and the reason. The kernel's memory use is capped (SEALSCOPE_
    COMPARE_BYTES): ops past it are skipped, saying so."""
    return await kernel.compare(registry(request), sid, body or CompareRequest())
