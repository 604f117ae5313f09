"""The KVM side of API.md ("The KVM side"), for Session and AsyncSession: answers are
JSON objects (the service's KVM models are not part of the client's yet). Every method
returns what `_kvm` returns: the object, or for AsyncSession an awaitable of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class KvmOps:
    def _kvm(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        raise NotImplementedError

    def vm_create(self, name: str = "vm0", type: str = "KVM_X86_DEFAULT_VM") -> Any:
        return self._kvm("POST", "/vms", {"name": name, "type": type})

    def vm(self, vm_id: str) -> Any:
        return self._kvm("GET", f"/vms/{vm_id}")

    def vm_capabilities(self, vm_id: str) -> Any:
        return self._kvm("GET", f"/vms/{vm_id}/capabilities")

    def vm_guest_memfd(self, vm_id: str, size: int, flags: Sequence[str] = ()) -> Any:
        return self._kvm("POST", f"/vms/{vm_id}/guest_memfd", {"size": size, "flags": list(flags)})

    def set_memory_region(self, vm_id: str, **region: Any) -> Any:
        """KVM_SET_USER_MEMORY_REGION2 (or the RFC's region_ext): the uapi field names."""
        return self._kvm("POST", f"/vms/{vm_id}/memory_regions", region)

    def set_memory_attributes(
        self, vm_id: str, address: int, size: int, attributes: Sequence[str], flags: int = 0
    ) -> Any:
        body = {"address": address, "size": size, "attributes": list(attributes), "flags": flags}
        return self._kvm("POST", f"/vms/{vm_id}/memory_attributes", body)

    def memory_attributes(self, vm_id: str, start: int = 0, end: int | None = None) -> Any:
        return self._kvm("GET", f"/vms/{vm_id}/memory_attributes", start=start, end=end)

    def vcpu_create(self, vm_id: str) -> Any:
        return self._kvm("POST", f"/vms/{vm_id}/vcpus", {})

    def vcpu_access(self, vm_id: str, vcpu: int, gpa: int, write: bool = False, **more: Any) -> Any:
        body = {"gpa": gpa, "write": write, **more}
        return self._kvm("POST", f"/vms/{vm_id}/vcpus/{vcpu}/access", body)

    def pre_fault_memory(self, vm_id: str, vcpu: int, gpa: int, size: int, flags: int = 0) -> Any:
        body = {"gpa": gpa, "size": size, "flags": flags}
        return self._kvm("POST", f"/vms/{vm_id}/vcpus/{vcpu}/pre_fault_memory", body)

    def mapping_access(self, map_id: int, offset: int, write: bool = False, value: int = 0) -> Any:
        body = {"offset": offset, "write": write, "value": value}
        return self._kvm("POST", f"/mappings/{map_id}/access", body)
