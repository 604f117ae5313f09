"""The KVM side of API.md ("The KVM side"), for Session (KvmOps) and AsyncSession
(AsyncKvmOps): each answer is the server's own model (app/models/kvm.py); an error
answer raises SealscopeError. The requests are built once, here (`Req`); the two classes
only send them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel, RootModel

from sealscope.models.kvm import (
    AccessAnswer,
    GfnSources,
    HostAccessAnswer,
    KvmMemslot,
    MemoryAttributes,
    PreFaultAnswer,
    Vcpu,
    Vm,
    VmDetail,
    VmFile,
    Vms,
)

M = TypeVar("M", bound=BaseModel)


class Capabilities(RootModel[dict[str, int]]):
    """KVM_CHECK_EXTENSION's answers by name (the server answers a plain object)."""


class Req(NamedTuple, Generic[M]):
    model: type[M]
    method: str
    path: str  # under the session's path
    body: Any = None
    params: tuple[tuple[str, Any], ...] = ()  # the query


def _vm(vm_id: str) -> str:
    return f"/vms/{vm_id}"


def vm_create(name: str, type: str) -> Req[Vm]:
    return Req(Vm, "POST", "/vms", {"name": name, "type": type})


def vms() -> Req[Vms]:
    return Req(Vms, "GET", "/vms")


def vm(vm_id: str) -> Req[VmDetail]:
    return Req(VmDetail, "GET", _vm(vm_id))


def capabilities(vm_id: str) -> Req[Capabilities]:
    return Req(Capabilities, "GET", _vm(vm_id) + "/capabilities")


def guest_memfd(vm_id: str, size: int, flags: Sequence[str]) -> Req[VmFile]:
    return Req(VmFile, "POST", _vm(vm_id) + "/guest_memfd", {"size": size, "flags": list(flags)})


def memory_region(vm_id: str, region: dict[str, Any]) -> Req[KvmMemslot]:
    return Req(KvmMemslot, "POST", _vm(vm_id) + "/memory_regions", region)


def set_attributes(
    vm_id: str, address: int, size: int, attributes: Sequence[str], flags: int
) -> Req[MemoryAttributes]:
    body = {"address": address, "size": size, "attributes": list(attributes), "flags": flags}
    return Req(MemoryAttributes, "POST", _vm(vm_id) + "/memory_attributes", body)


def attributes(vm_id: str, start: int, end: int | None) -> Req[MemoryAttributes]:
    params = (("start", start), ("end", end))
    return Req(MemoryAttributes, "GET", _vm(vm_id) + "/memory_attributes", None, params)


def gfns(vm_id: str, start: int, end: int | None, limit: int | None) -> Req[GfnSources]:
    params = (("start", start), ("end", end), ("limit", limit))
    return Req(GfnSources, "GET", _vm(vm_id) + "/gfns", None, params)


def vcpu_create(vm_id: str) -> Req[Vcpu]:
    return Req(Vcpu, "POST", _vm(vm_id) + "/vcpus", {})


def vcpu_access(vm_id: str, vcpu: int, body: dict[str, Any]) -> Req[AccessAnswer]:
    return Req(AccessAnswer, "POST", f"{_vm(vm_id)}/vcpus/{vcpu}/access", body)


def pre_fault(vm_id: str, vcpu: int, gpa: int, size: int, flags: int) -> Req[PreFaultAnswer]:
    body = {"gpa": gpa, "size": size, "flags": flags}
    return Req(PreFaultAnswer, "POST", f"{_vm(vm_id)}/vcpus/{vcpu}/pre_fault_memory", body)


def mapping_access(map_id: int, offset: int, write: bool, value: int) -> Req[HostAccessAnswer]:
    body = {"offset": offset, "write": write, "value": value}
    return Req(HostAccessAnswer, "POST", f"/mappings/{map_id}/access", body)


class KvmOps:
    """Session's KVM methods (blocking)."""

    def _kvm(self, req: Req[M]) -> M:
        raise NotImplementedError

    def op(self, op: str, **args: Any) -> Any:
        raise NotImplementedError

    def vm_close(self, vm_id: str) -> None:
        """close(vm_fd): the VM's ioctls answer EBADF from now on; it is destroyed now, or
        with the last guest_memfd it made (then vm() raises 404)."""
        self.op("vm_close", vm_id=vm_id)

    def vm_create(self, name: str = "vm0", type: str = "KVM_X86_DEFAULT_VM") -> Vm:
        return self._kvm(vm_create(name, type))

    def vms(self) -> Vms:
        return self._kvm(vms())

    def vm(self, vm_id: str) -> VmDetail:
        return self._kvm(vm(vm_id))

    def vm_capabilities(self, vm_id: str) -> dict[str, int]:
        return self._kvm(capabilities(vm_id)).root

    def vm_guest_memfd(self, vm_id: str, size: int, flags: Sequence[str] = ()) -> VmFile:
        return self._kvm(guest_memfd(vm_id, size, flags))

    def set_memory_region(self, vm_id: str, **region: Any) -> KvmMemslot:
        """KVM_SET_USER_MEMORY_REGION2 (or the RFC's region_ext): the uapi field names."""
        return self._kvm(memory_region(vm_id, region))

    def set_memory_attributes(
        self, vm_id: str, address: int, size: int, attributes: Sequence[str], flags: int = 0
    ) -> MemoryAttributes:
        return self._kvm(set_attributes(vm_id, address, size, attributes, flags))

    def memory_attributes(
        self, vm_id: str, start: int = 0, end: int | None = None
    ) -> MemoryAttributes:
        return self._kvm(attributes(vm_id, start, end))

    def vm_gfns(
        self, vm_id: str, start: int = 0, end: int | None = None, limit: int | None = None
    ) -> GfnSources:
        return self._kvm(gfns(vm_id, start, end, limit))

    def vcpu_create(self, vm_id: str) -> Vcpu:
        return self._kvm(vcpu_create(vm_id))

    def vcpu_access(
        self, vm_id: str, vcpu: int, gpa: int, write: bool = False, **more: Any
    ) -> AccessAnswer:
        """`more`: private (True, False or None), value (the byte a write stores)."""
        return self._kvm(vcpu_access(vm_id, vcpu, {"gpa": gpa, "write": write, **more}))

    def pre_fault_memory(
        self, vm_id: str, vcpu: int, gpa: int, size: int, flags: int = 0
    ) -> PreFaultAnswer:
        return self._kvm(pre_fault(vm_id, vcpu, gpa, size, flags))

    def mapping_access(
        self, map_id: int, offset: int, write: bool = False, value: int = 0
    ) -> HostAccessAnswer:
        return self._kvm(mapping_access(map_id, offset, write, value))


class AsyncKvmOps:
    """AsyncSession's KVM methods: the same, awaited."""

    async def _kvm(self, req: Req[M]) -> M:
        raise NotImplementedError

    async def op(self, op: str, **args: Any) -> Any:
        raise NotImplementedError

    async def vm_close(self, vm_id: str) -> None:
        """close(vm_fd), as KvmOps.vm_close."""
        await self.op("vm_close", vm_id=vm_id)

    async def vm_create(self, name: str = "vm0", type: str = "KVM_X86_DEFAULT_VM") -> Vm:
        return await self._kvm(vm_create(name, type))

    async def vms(self) -> Vms:
        return await self._kvm(vms())

    async def vm(self, vm_id: str) -> VmDetail:
        return await self._kvm(vm(vm_id))

    async def vm_capabilities(self, vm_id: str) -> dict[str, int]:
        return (await self._kvm(capabilities(vm_id))).root

    async def vm_guest_memfd(self, vm_id: str, size: int, flags: Sequence[str] = ()) -> VmFile:
        return await self._kvm(guest_memfd(vm_id, size, flags))

    async def set_memory_region(self, vm_id: str, **region: Any) -> KvmMemslot:
        return await self._kvm(memory_region(vm_id, region))

    async def set_memory_attributes(
        self, vm_id: str, address: int, size: int, attributes: Sequence[str], flags: int = 0
    ) -> MemoryAttributes:
        return await self._kvm(set_attributes(vm_id, address, size, attributes, flags))

    async def memory_attributes(
        self, vm_id: str, start: int = 0, end: int | None = None
    ) -> MemoryAttributes:
        return await self._kvm(attributes(vm_id, start, end))

    async def vm_gfns(
        self, vm_id: str, start: int = 0, end: int | None = None, limit: int | None = None
    ) -> GfnSources:
        return await self._kvm(gfns(vm_id, start, end, limit))

    async def vcpu_create(self, vm_id: str) -> Vcpu:
        return await self._kvm(vcpu_create(vm_id))

    async def vcpu_access(
        self, vm_id: str, vcpu: int, gpa: int, write: bool = False, **more: Any
    ) -> AccessAnswer:
        return await self._kvm(vcpu_access(vm_id, vcpu, {"gpa": gpa, "write": write, **more}))

    async def pre_fault_memory(
        self, vm_id: str, vcpu: int, gpa: int, size: int, flags: int = 0
    ) -> PreFaultAnswer:
        return await self._kvm(pre_fault(vm_id, vcpu, gpa, size, flags))

    async def mapping_access(
        self, map_id: int, offset: int, write: bool = False, value: int = 0
    ) -> HostAccessAnswer:
        return await self._kvm(mapping_access(map_id, offset, write, value))
