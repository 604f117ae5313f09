"""Files: memfd and guest_memfd, and the syscall-like operations on them (bytes)."""

from __future__ import annotations

from fastapi import Request, Response

from app.api import new_router
from app.deps import FdPath, MapPath, SessionId, registry
from app.models.files import (
    Fallocate,
    FallocateAnswer,
    Fcntl,
    File,
    Ftruncate,
    GuestMemfdCreate,
    Mapping,
    MemfdCreate,
    Mmap,
    Pread,
    PreadAnswer,
    Pwrite,
    PwriteAnswer,
    Seals,
)
from app.service import files as svc
from app.service import views

router = new_router("files")
FILE = "/sessions/{sid}/files/{fd}"


@router.post("/sessions/{sid}/memfds", status_code=201, name="memfd_create")
async def memfd_create(request: Request, sid: SessionId, body: MemfdCreate) -> File:
    """memfd_create(name, flags)."""
    return await svc.memfd_create(registry(request), sid, body)


@router.post("/sessions/{sid}/guest_memfds", status_code=201, name="guest_memfd_create")
async def guest_memfd_create(request: Request, sid: SessionId, body: GuestMemfdCreate) -> File:
    """KVM_CREATE_GUEST_MEMFD(size, flags) (profile guest-memfd)."""
    return await svc.guest_memfd_create(registry(request), sid, body)


@router.get(FILE, name="file")
async def get_file(request: Request, sid: SessionId, fd: FdPath) -> File:
    return await views.file(registry(request), sid, fd)


@router.post(FILE + "/ftruncate", name="ftruncate")
async def ftruncate(request: Request, sid: SessionId, fd: FdPath, body: Ftruncate) -> File:
    return await svc.ftruncate(registry(request), sid, fd, body)


@router.post(FILE + "/fcntl", name="fcntl")
async def fcntl(request: Request, sid: SessionId, fd: FdPath, body: Fcntl) -> Seals:
    """F_ADD_SEALS (with `seals`) or F_GET_SEALS; answers the seals after the call."""
    return await svc.fcntl(registry(request), sid, fd, body)


@router.post(FILE + "/fallocate", name="fallocate")
async def fallocate(
    request: Request, sid: SessionId, fd: FdPath, body: Fallocate
) -> FallocateAnswer:
    """Allocate, or punch with ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]. A punch
    meeting a page locked by get_lock_pfn sleeps: `pending` is true until the unlock."""
    return await svc.fallocate(registry(request), sid, fd, body)


@router.post(FILE + "/pread", name="pread")
async def pread(request: Request, sid: SessionId, fd: FdPath, body: Pread) -> PreadAnswer:
    return await svc.pread(registry(request), sid, fd, body)


@router.post(FILE + "/pwrite", name="pwrite")
async def pwrite(request: Request, sid: SessionId, fd: FdPath, body: Pwrite) -> PwriteAnswer:
    return await svc.pwrite(registry(request), sid, fd, body)


@router.post(FILE + "/mmap", status_code=201, name="mmap")
async def mmap(request: Request, sid: SessionId, fd: FdPath, body: Mmap) -> Mapping:
    return await svc.mmap(registry(request), sid, fd, body)


@router.delete("/sessions/{sid}/mappings/{map_id}", status_code=204, name="munmap")
async def munmap(request: Request, sid: SessionId, map_id: MapPath) -> Response:
    await svc.munmap(registry(request), sid, map_id)
    return Response(status_code=204)


@router.post(FILE + "/close", status_code=204, name="close")
async def close(request: Request, sid: SessionId, fd: FdPath) -> Response:
    await svc.close(registry(request), sid, fd)
    return Response(status_code=204)
