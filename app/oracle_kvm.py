"""The real KVM as an oracle: the KVM ops of a session's log on this machine's /dev/kvm.

`KvmKernel` extends `app.oracle.Kernel` (virtual fds and map ids) with what the
contract between engine and oracle names (KVM_CONTRACT.md): VMs by owner id ("0",
"1", ... in creation order), KVM_CHECK_EXTENSION, KVM_CREATE_GUEST_MEMFD,
KVM_SET_USER_MEMORY_REGION2, KVM_SET_MEMORY_ATTRIBUTES, vCPUs running a tiny real
guest (app.oracle_vcpu), and host access to a mapping.

The VMM address space and host access to it are app.oracle_vmm's (VmmSpace): a
`userspace_addr` is translated to this process's address there.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import struct
from collections.abc import Callable, Iterable
from typing import Any

from app.oracle import GMEM_FLAGS, KVM_CREATE_GUEST_MEMFD, KernelError, bits
from app.oracle_vcpu import SCRATCH_BASES, SCRATCH_SIZE, U64, WINDOW, Vcpu, region2
from app.oracle_vmm import VmmSpace

VM_TYPES = {
    "KVM_X86_DEFAULT_VM": 0,
    "KVM_X86_SW_PROTECTED_VM": 1,
    "KVM_X86_SEV_VM": 2,
    "KVM_X86_SEV_ES_VM": 3,
    "KVM_X86_SNP_VM": 4,
    "KVM_X86_TDX_VM": 5,
}
MEM_FLAGS = {"KVM_MEM_LOG_DIRTY_PAGES": 1, "KVM_MEM_READONLY": 2, "KVM_MEM_GUEST_MEMFD": 4}
ATTRIBUTES = {"KVM_MEMORY_ATTRIBUTE_PRIVATE": 1 << 3}
CAPS = {
    "KVM_CAP_NR_VCPUS": 9,
    "KVM_CAP_NR_MEMSLOTS": 10,
    "KVM_CAP_MAX_VCPUS": 66,
    "KVM_CAP_READONLY_MEM": 81,
    "KVM_CAP_MULTI_ADDRESS_SPACE": 118,
    "KVM_CAP_USER_MEMORY2": 231,
    "KVM_CAP_MEMORY_FAULT_INFO": 232,
    "KVM_CAP_MEMORY_ATTRIBUTES": 233,
    "KVM_CAP_GUEST_MEMFD": 234,
    "KVM_CAP_VM_TYPES": 235,
    "KVM_CAP_PRE_FAULT_MEMORY": 236,
    "KVM_CAP_GUEST_MEMFD_FLAGS": 244,
}
KVM_CREATE_VM = 0xAE01
KVM_CHECK_EXTENSION = 0xAE03
KVM_PRE_FAULT_MEMORY = 0xC040AED5  # _IOWR(KVMIO, 0xd5, struct kvm_pre_fault_memory)
KVM_SET_MEMORY_ATTRIBUTES = 0x4020AED2  # _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
MAX_SLOT_ID = 32763  # KVM_MEM_SLOTS_NUM - 1 on x86 (KVM_CAP_NR_MEMSLOTS 32764)
KVM_OPS = (
    "vm_create",
    "vm_capabilities",
    "vm_guest_memfd",
    "set_user_memory_region",
    "set_memory_attributes",
    "vcpu_create",
    "vcpu_access",
    "mapping_access",
    "pre_fault_memory",
    "vm_close",
)


def known_bits(names: Iterable[str | int], table: dict[str, int], unknown: int) -> int:
    """As app.oracle.bits, but a name the kernel does not know is a bit it does not know
    (the contract: an unknown name is the kernel's answer to an unknown value)."""
    if isinstance(names, (str, int)):
        names = [names]
    return bits([n if isinstance(n, int) else table.get(n, unknown) for n in names], table, "")


class _Vm:
    def __init__(self, fd: int, vm_type: int) -> None:
        self.fd = fd
        self.type = vm_type
        self.vcpus: list[Vcpu] = []
        self.slots: dict[int, tuple[int, int]] = {}  # slot id -> (gpa, size), as the log set


class KvmKernel(VmmSpace):
    """The file-side oracle plus VMs, vCPUs and the VMM address space (VmmSpace)."""

    def __init__(self) -> None:
        super().__init__()
        self._dev: int | None = None
        self._vms: dict[str, _Vm] = {}
        self._next_owner = 0

    def shutdown(self) -> None:
        for vm in self._vms.values():
            self._close_vm(vm)
        self._vms.clear()
        if self._dev is not None:
            os.close(self._dev)
            self._dev = None
        super().shutdown()

    def _kvm(self) -> int:
        if self._dev is None:
            self._dev = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        return self._dev

    def _get_vm(self, vm_id: str) -> _Vm:
        vm = self._vms.get(str(vm_id))
        if vm is None:
            raise KernelError(_errno.EINVAL, "vm")  # the engine's: "the owner is not a VM"
        if vm.fd < 0:
            raise KernelError(_errno.EBADF, "vm")  # its fd is closed (vm_close)
        return vm

    @staticmethod
    def _close_vm(vm: _Vm) -> None:
        for v in vm.vcpus:
            v.close()
        vm.vcpus.clear()
        if vm.fd >= 0:
            os.close(vm.fd)
            vm.fd = -1

    def vm_close(self, vm_id: str) -> None:
        """close(vm_fd), its vCPU fds first (the simulator's vCPUs have none): the VM
        lives on in the kernel while a guest_memfd it made is open."""
        self._close_vm(self._get_vm(vm_id))

    @staticmethod
    def _ioctl(fd: int, req: int, arg: int | bytes | bytearray, op: str) -> int:
        try:
            if isinstance(arg, bytearray):
                return fcntl.ioctl(fd, req, arg, True)
            return fcntl.ioctl(fd, req, arg)  # type: ignore[return-value]
        except OSError as e:
            raise KernelError(e.errno or 0, op) from None

    # ---- VMs ----
    def vm_create(self, name: str = "vm", type: str | int = "KVM_X86_DEFAULT_VM") -> str:
        value = type if isinstance(type, int) else VM_TYPES.get(type, 1 << 31)
        fd = self._ioctl(self._kvm(), KVM_CREATE_VM, value, "KVM_CREATE_VM")
        vm_id, self._next_owner = str(self._next_owner), self._next_owner + 1
        self._vms[vm_id] = _Vm(fd, value)
        return vm_id

    def check_extension(self, vm_id: str, cap: str | int) -> int:
        number = cap if isinstance(cap, int) else CAPS[cap]
        return self._ioctl(
            self._get_vm(vm_id).fd, KVM_CHECK_EXTENSION, number, "KVM_CHECK_EXTENSION"
        )

    def vm_capabilities(self, vm_id: str) -> dict[str, int]:
        return {name: self.check_extension(vm_id, name) for name in CAPS}

    def vm_guest_memfd(self, vm_id: str, size: int, flags: Iterable[str | int] = ()) -> int:
        value = known_bits(flags, GMEM_FLAGS, 1 << 63)
        arg = bytearray(struct.pack("<QQ", size & U64, value) + bytes(48))
        fd = self._ioctl(
            self._get_vm(vm_id).fd, KVM_CREATE_GUEST_MEMFD, arg, "KVM_CREATE_GUEST_MEMFD"
        )
        return self._install(fd)

    def set_user_memory_region(
        self,
        vm_id: str,
        slot: int,
        flags: Iterable[str | int],
        guest_phys_addr: int,
        memory_size: int,
        userspace_addr: int,
        guest_memfd_offset: int = 0,
        guest_memfd: int = 0,
        **rfc: Any,
    ) -> None:
        if rfc:
            raise ValueError("the RFC's KVM_MEM_FD region (fd, private_fd) is not in this kernel")
        vm = self._get_vm(vm_id)
        f = known_bits(flags, MEM_FLAGS, 1 << 31)
        real_fd = self._fds.get(guest_memfd, -1) if isinstance(guest_memfd, int) else -1
        err = region2(
            vm.fd, slot, f, guest_phys_addr, memory_size, self.real_addr(userspace_addr),
            guest_memfd_offset, real_fd,
        )  # fmt: skip
        if err:
            raise KernelError(err, "KVM_SET_USER_MEMORY_REGION2")
        if memory_size & U64:
            vm.slots[slot & 0xFFFF] = (guest_phys_addr, memory_size)
        else:
            vm.slots.pop(slot & 0xFFFF, None)

    def set_memory_attributes(
        self, vm_id: str, address: int, size: int, attributes: Iterable[str | int], flags: int = 0
    ) -> None:
        value = known_bits(attributes, ATTRIBUTES, 1 << 63)
        arg = struct.pack("<QQQQ", address & U64, size & U64, value & U64, flags & U64)
        self._ioctl(
            self._get_vm(vm_id).fd, KVM_SET_MEMORY_ATTRIBUTES, arg, "KVM_SET_MEMORY_ATTRIBUTES"
        )

    # ---- vCPUs ----
    def vcpu_create(self, vm_id: str) -> int:
        vm = self._get_vm(vm_id)
        try:
            vm.vcpus.append(Vcpu(self._kvm(), vm.fd, len(vm.vcpus)))
        except OSError as e:
            raise KernelError(e.errno or 0, "KVM_CREATE_VCPU") from None
        return len(vm.vcpus) - 1

    def _scratch_place(self, vm: _Vm, gpa: int) -> tuple[int, int]:
        """(slot id, gpa) for the guest's scratch memslot: free in the log's slots."""
        used = vm.slots
        slot = next(s for s in range(MAX_SLOT_ID, -1, -1) if s not in used)
        for base in SCRATCH_BASES:
            if base <= gpa < base + WINDOW:
                continue
            if all(g + n <= base or base + WINDOW <= g for g, n in used.values()):
                return slot, base
        raise ValueError("no room in the guest physical space for the oracle's scratch slot")

    def vcpu_access(
        self,
        vm_id: str,
        vcpu_id: int,
        gpa: int,
        write: bool = False,
        private: bool | None = None,
        value: int = 0,
    ) -> dict[str, Any]:
        vm = self._get_vm(vm_id)
        if not 0 <= vcpu_id < len(vm.vcpus):
            raise KernelError(_errno.ENOENT, "vcpu")  # the engine's 404
        if private is not None:
            raise ValueError("a guest's own private/shared view needs an SNP or TDX VM")
        vcpu = vm.vcpus[vcpu_id]
        slot, base = self._scratch_place(vm, gpa)

        def add() -> None:
            err = region2(vm.fd, slot, 0, base, SCRATCH_SIZE, vcpu.scratch_addr)
            if err:
                raise KernelError(err, "scratch memslot")

        try:
            return vcpu.access(base, add, gpa, write, value)
        except OSError as e:
            raise KernelError(e.errno or 0, "KVM_RUN") from None
        finally:
            region2(vm.fd, slot, 0, base, 0, 0)

    def pre_fault_memory(
        self, vm_id: str, vcpu_id: int, gpa: int, size: int, flags: int = 0
    ) -> dict[str, int]:
        """KVM_PRE_FAULT_MEMORY on the vCPU: what is left, {gpa, size}. This machine
        (shadow paging under PVM) answers EOPNOTSUPP for a valid range (ENOSPC before the
        vCPU first ran); the range checks come first (EINVAL)."""
        vm = self._get_vm(vm_id)
        if not 0 <= vcpu_id < len(vm.vcpus):
            raise KernelError(_errno.ENOENT, "vcpu")
        arg = bytearray(struct.pack("<QQQ", gpa & U64, size & U64, flags & U64) + bytes(40))
        self._ioctl(vm.vcpus[vcpu_id].fd, KVM_PRE_FAULT_MEMORY, arg, "KVM_PRE_FAULT_MEMORY")
        left_gpa, left_size = struct.unpack_from("<QQ", arg)
        return {"gpa": left_gpa, "size": left_size}

    # ---- the log's steps ----
    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        """As Kernel.run, plus the KVM ops of the contract (KVM_OPS)."""
        if op not in KVM_OPS:
            return super().run(op, args)
        fn: Callable[..., Any] = getattr(self, op)
        try:
            return True, fn(**args)
        except KernelError as e:
            return False, e.name


def kvm_vm_types() -> dict[str, bool]:
    """Which VM types this machine's KVM creates."""
    out = {}
    with KvmKernel() as k:
        for name in VM_TYPES:
            out[name] = k.run("vm_create", {"name": "probe", "type": name})[0]
    return out
