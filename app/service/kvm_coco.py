"""Confidential VMs through the session log: populate, finalize, the launch view."""

from __future__ import annotations

from typing import cast

from app.models.kvm_coco import (
    Launch,
    LaunchAnswer,
    LaunchFinishArgs,
    LaunchUpdate,
    LaunchUpdateAnswer,
    LaunchUpdateArgs,
    MemoryFailure,
    MemoryFailureAnswer,
)
from app.models.kvm_inplace import MemoryAttributes2, MemoryAttributes2Answer, MemoryAttributes2Args
from app.models.kvm_pin import PinAnswer, PinArgs, PinBody, UnpinArgs
from app.registry import Registry
from app.service.kvm_coco_ops import launch_out
from app.service.kvm_ops import vm_arg
from app.service.runner import execute


async def update(reg: Registry, sid: str, vm_id: str, body: LaunchUpdate) -> LaunchUpdateAnswer:
    args = LaunchUpdateArgs(vm_id=vm_id, **body.model_dump())
    return cast(LaunchUpdateAnswer, await execute(reg, sid, "launch_update", args))


async def finish(reg: Registry, sid: str, vm_id: str) -> LaunchAnswer:
    return cast(
        LaunchAnswer, await execute(reg, sid, "launch_finish", LaunchFinishArgs(vm_id=vm_id))
    )


async def launch(reg: Registry, sid: str, vm_id: str) -> Launch:
    s = reg.get(sid)
    async with s.lock:
        return launch_out(s.machine, vm_arg(s.machine, vm_id, "launch"))


async def memory_failure(reg: Registry, sid: str, body: MemoryFailure) -> MemoryFailureAnswer:
    return cast(MemoryFailureAnswer, await execute(reg, sid, "memory_failure", body))


async def memory_attributes2(
    reg: Registry, sid: str, fd: int, body: MemoryAttributes2
) -> MemoryAttributes2Answer:
    args = MemoryAttributes2Args(fd=fd, **body.model_dump())
    return cast(MemoryAttributes2Answer, await execute(reg, sid, "set_memory_attributes2", args))


async def pin(reg: Registry, sid: str, map_id: int, body: PinBody) -> PinAnswer:
    args = PinArgs(map_id=map_id, **body.model_dump())
    return cast(PinAnswer, await execute(reg, sid, "mapping_pin", args))


async def unpin(reg: Registry, sid: str, pin_id: int) -> None:
    await execute(reg, sid, "mapping_unpin", UnpinArgs(pin_id=pin_id))
