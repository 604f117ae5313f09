"""Files: the syscall-like operations (bytes). Each call is one op of the session's log."""

from __future__ import annotations

from typing import cast

from app.models.files import (
    Fallocate,
    FallocateAnswer,
    FallocateArgs,
    FcntlAddSeals,
    FcntlArgs,
    FcntlGetSeals,
    FdArgs,
    File,
    Ftruncate,
    FtruncateArgs,
    GuestMemfdCreate,
    Mapping,
    MemfdCreate,
    Mmap,
    MmapArgs,
    MunmapArgs,
    Pread,
    PreadAnswer,
    PreadArgs,
    Pwrite,
    PwriteAnswer,
    PwriteArgs,
    Seals,
)
from app.registry import Registry
from app.service.runner import execute


async def memfd_create(reg: Registry, sid: str, body: MemfdCreate) -> File:
    return cast(File, await execute(reg, sid, "memfd_create", body))


async def guest_memfd_create(reg: Registry, sid: str, body: GuestMemfdCreate) -> File:
    return cast(File, await execute(reg, sid, "guest_memfd_create", body))


async def ftruncate(reg: Registry, sid: str, fd: int, body: Ftruncate) -> File:
    args = FtruncateArgs(fd=fd, length=body.length)
    return cast(File, await execute(reg, sid, "ftruncate", args))


async def fcntl(reg: Registry, sid: str, fd: int, body: FcntlAddSeals | FcntlGetSeals) -> Seals:
    seals = body.seals if isinstance(body, FcntlAddSeals) else []
    args = FcntlArgs(fd=fd, cmd=body.cmd, seals=seals)
    return cast(Seals, await execute(reg, sid, "fcntl", args))


async def fallocate(reg: Registry, sid: str, fd: int, body: Fallocate) -> FallocateAnswer:
    args = FallocateArgs(fd=fd, mode=body.mode, offset=body.offset, len=body.len)
    return cast(FallocateAnswer, await execute(reg, sid, "fallocate", args))


async def pread(reg: Registry, sid: str, fd: int, body: Pread) -> PreadAnswer:
    args = PreadArgs(fd=fd, offset=body.offset, count=body.count)
    return cast(PreadAnswer, await execute(reg, sid, "pread", args))


async def pwrite(reg: Registry, sid: str, fd: int, body: Pwrite) -> PwriteAnswer:
    args = PwriteArgs(fd=fd, offset=body.offset, data_b64=body.data_b64)
    return cast(PwriteAnswer, await execute(reg, sid, "pwrite", args))


async def mmap(reg: Registry, sid: str, fd: int, body: Mmap) -> Mapping:
    args = MmapArgs(fd=fd, **body.model_dump())
    return cast(Mapping, await execute(reg, sid, "mmap", args))


async def munmap(reg: Registry, sid: str, map_id: int) -> None:
    await execute(reg, sid, "munmap", MunmapArgs(map_id=map_id))


async def close(reg: Registry, sid: str, fd: int) -> None:
    await execute(reg, sid, "close", FdArgs(fd=fd))
