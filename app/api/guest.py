"""The guest interface (kernel-internal, page indexes) and the simulated owners."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from app.api import new_router
from app.deps import FdPath, OwnerPath, SessionId, registry
from app.models.common import UINT64_MAX
from app.models.files import File
from app.models.guest import (
    Fault,
    FaultAnswer,
    GetLockPfn,
    Invalidate,
    Memslot,
    MemslotCreate,
    Migrated,
    MigratePage,
    Owner,
    OwnerCreate,
    OwnerDetail,
    Pfn,
    PutUnlockPfn,
    RegisterGuest,
    Unlocked,
    UnregisterGuest,
)
from app.models.views import Callbacks
from app.service import guest as svc
from app.service import views

router = new_router("guest")
FILE = "/sessions/{sid}/files/{fd}"
OWNER = "/sessions/{sid}/owners/{owner_id}"


@router.post("/sessions/{sid}/owners", status_code=201, name="owner_create")
async def owner_create(request: Request, sid: SessionId, body: OwnerCreate) -> Owner:
    """A simulated owner: "kvm" (memslots, a gfn -> pfn table) or "recorder"."""
    return await svc.owner_create(registry(request), sid, body)


@router.get(OWNER, name="owner")
async def get_owner(
    request: Request,
    sid: SessionId,
    owner_id: OwnerPath,
    start: Annotated[int, Query(ge=0, le=UINT64_MAX, description="first gfn")] = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> OwnerDetail:
    """The owner with its memslots and its mapped gfn ranges."""
    return await views.owner(registry(request), sid, owner_id, start, limit)


@router.post(FILE + "/register_guest", name="memfd_register_guest")
async def register_guest(request: Request, sid: SessionId, fd: FdPath, body: RegisterGuest) -> File:
    """memfd_register_guest(inode, owner, guest_ops, &guest_mem_ops)."""
    return await svc.register_guest(registry(request), sid, fd, body)


@router.post(FILE + "/unregister_guest", name="memfd_unregister_guest")
async def unregister_guest(
    request: Request, sid: SessionId, fd: FdPath, body: UnregisterGuest
) -> File:
    """Drop a registration (the multi_owner design variant)."""
    return await svc.unregister_guest(registry(request), sid, fd, body)


@router.post(FILE + "/get_lock_pfn", name="get_lock_pfn")
async def get_lock_pfn(request: Request, sid: SessionId, fd: FdPath, body: GetLockPfn) -> Pfn:
    """Lock the page at `index` (allocating a hole with `alloc`); `pending` when it sleeps
    on a page already locked."""
    return await svc.get_lock_pfn(registry(request), sid, fd, body)


@router.post("/sessions/{sid}/migrate_page", name="migrate_page")
async def migrate_page(request: Request, sid: SessionId, body: MigratePage) -> Migrated:
    """Move the page holding pfn to new frames, as compaction would. Pages of an
    F_SEAL_GUEST file refuse (ENOTSUPP): the RFC pins guest memory for good."""
    return await svc.migrate_page(registry(request), sid, body)


@router.post("/sessions/{sid}/put_unlock_pfn", name="put_unlock_pfn")
async def put_unlock_pfn(request: Request, sid: SessionId, body: PutUnlockPfn) -> Unlocked:
    """Mark dirty, unlock, drop the reference; wakes operations sleeping on the page."""
    return await svc.put_unlock_pfn(registry(request), sid, body)


@router.post(FILE + "/invalidate", name="invalidate")
async def invalidate(request: Request, sid: SessionId, fd: FdPath, body: Invalidate) -> Callbacks:
    """Run the owners' invalidate_page_range over [start, end]: the callbacks it caused."""
    return await svc.invalidate(registry(request), sid, fd, body)


@router.post(OWNER + "/memslots", status_code=201, name="memslot")
async def memslot_create(
    request: Request, sid: SessionId, owner_id: OwnerPath, body: MemslotCreate
) -> Memslot:
    return await svc.memslot_create(registry(request), sid, owner_id, body)


@router.post(OWNER + "/fault", name="fault")
async def fault(request: Request, sid: SessionId, owner_id: OwnerPath, body: Fault) -> FaultAnswer:
    """The guest touched gfn: the owner maps it through get_lock_pfn / put_unlock_pfn."""
    return await svc.fault(registry(request), sid, owner_id, body)
