"""The guest interface and the simulated owners. Each call is one op of the log."""

from __future__ import annotations

from typing import cast

from app.models.files import File
from app.models.guest import (
    Fault,
    FaultAnswer,
    FaultArgs,
    GetLockPfn,
    GetLockPfnArgs,
    Invalidate,
    InvalidateArgs,
    Memslot,
    MemslotArgs,
    MemslotCreate,
    Migrated,
    MigratePage,
    Owner,
    OwnerCreate,
    Pfn,
    PutUnlockPfn,
    RegisterGuest,
    RegisterGuestArgs,
    Unlocked,
    UnregisterGuest,
    UnregisterGuestArgs,
)
from app.models.views import Callbacks
from app.registry import Registry
from app.service.runner import execute


async def owner_create(reg: Registry, sid: str, body: OwnerCreate) -> Owner:
    return cast(Owner, await execute(reg, sid, "owner_create", body))


async def register_guest(reg: Registry, sid: str, fd: int, body: RegisterGuest) -> File:
    args = RegisterGuestArgs(fd=fd, owner_id=body.owner_id)
    return cast(File, await execute(reg, sid, "register_guest", args))


async def unregister_guest(reg: Registry, sid: str, fd: int, body: UnregisterGuest) -> File:
    args = UnregisterGuestArgs(fd=fd, owner_id=body.owner_id)
    return cast(File, await execute(reg, sid, "unregister_guest", args))


async def get_lock_pfn(reg: Registry, sid: str, fd: int, body: GetLockPfn) -> Pfn:
    args = GetLockPfnArgs(fd=fd, index=body.index, alloc=body.alloc)
    return cast(Pfn, await execute(reg, sid, "get_lock_pfn", args))


async def migrate_page(reg: Registry, sid: str, body: MigratePage) -> Migrated:
    return cast(Migrated, await execute(reg, sid, "migrate_page", body))


async def put_unlock_pfn(reg: Registry, sid: str, body: PutUnlockPfn) -> Unlocked:
    return cast(Unlocked, await execute(reg, sid, "put_unlock_pfn", body))


async def invalidate(reg: Registry, sid: str, fd: int, body: Invalidate) -> Callbacks:
    args = InvalidateArgs(fd=fd, start=body.start, end=body.end)
    return cast(Callbacks, await execute(reg, sid, "invalidate", args))


async def memslot_create(reg: Registry, sid: str, owner_id: str, body: MemslotCreate) -> Memslot:
    args = MemslotArgs(owner_id=owner_id, **body.model_dump())
    return cast(Memslot, await execute(reg, sid, "memslot_create", args))


async def fault(reg: Registry, sid: str, owner_id: str, body: Fault) -> FaultAnswer:
    args = FaultArgs(owner_id=owner_id, gfn=body.gfn)
    return cast(FaultAnswer, await execute(reg, sid, "fault", args))
