"""The client's KVM side (API.md "The KVM side") against a live server: every method
answers the server's own model (app/models/kvm.py), errors raise SealscopeError."""

from __future__ import annotations

import pytest

from app.models import kvm as server_models
from sealscope.client import AsyncClient, Client, SealscopeError
from sealscope.models import kvm
from tests.api.helpers import Server

MiB = 1 << 20
PRIVATE = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


def test_the_models_are_the_servers() -> None:
    assert kvm.Vm is server_models.Vm and kvm.AccessAnswer is server_models.AccessAnswer


def test_vm_lifecycle(live: Server) -> None:
    with Client(live.url) as c:
        s = c.create_session(profile="guest-memfd")
        vm = s.vm_create("vm0", "KVM_X86_SW_PROTECTED_VM")
        assert isinstance(vm, kvm.Vm) and vm.type == "KVM_X86_SW_PROTECTED_VM"
        detail = s.vm(vm.vm_id)
        assert isinstance(detail, kvm.VmDetail) and detail.name == "vm0"
        assert [v.vm_id for v in s.vms().vms] == [vm.vm_id]
        caps = s.vm_capabilities(vm.vm_id)
        assert caps["KVM_CAP_GUEST_MEMFD_FLAGS"] == 1 and all(
            k.startswith("KVM_CAP_") for k in caps
        )
        f = s.vm_guest_memfd(vm.vm_id, 2 * MiB)
        assert isinstance(f, kvm.VmFile) and f.kind == "guest_memfd" and f.vm_id == vm.vm_id
        assert s.vcpu_create(vm.vm_id) == kvm.Vcpu(vcpu_id=0)
        shared = s.memfd_create("shared")
        s.ftruncate(shared.fd, 2 * MiB)
        m = s.mmap(shared.fd, 2 * MiB)
        slot = s.set_memory_region(
            vm.vm_id,
            slot=0,
            flags=["KVM_MEM_GUEST_MEMFD"],
            guest_phys_addr=0,
            memory_size=2 * MiB,
            userspace_addr=m.addr,
            guest_memfd=f.fd,
        )
        assert isinstance(slot, kvm.KvmMemslot) and slot.guest_memfd == f.fd and not slot.deleted
        attrs = s.set_memory_attributes(vm.vm_id, 0, 4096, PRIVATE)
        assert isinstance(attrs, kvm.MemoryAttributes) and attrs.seq is not None
        runs = s.memory_attributes(vm.vm_id).extents
        assert (runs[0].start, runs[0].end, runs[0].attributes) == (0, 1, PRIVATE)
        a = s.vcpu_access(vm.vm_id, 0, 0, write=True, value=7)
        assert isinstance(a, kvm.AccessAnswer)
        assert (a.exit, a.backing, a.fd, a.value) == (None, "private", f.fd, 7)
        a = s.vcpu_access(vm.vm_id, 0, 4096, private=True)
        assert a.exit is not None and a.exit.reason == "KVM_EXIT_MEMORY_FAULT"
        assert a.exit.flags == ["KVM_MEMORY_EXIT_FLAG_PRIVATE"] and a.exit.gpa == 4096
        h = s.mapping_access(m.map_id, 4096, write=True, value=5)
        assert isinstance(h, kvm.HostAccessAnswer) and (h.signal, h.value) == (None, 5)
        assert s.vcpu_access(vm.vm_id, 0, 4096).value == 5  # shared: through userspace_addr
        assert s.mapping_access(m.map_id, 4 * MiB).signal == "SIGSEGV"
        left = s.pre_fault_memory(vm.vm_id, 0, 0, 8192)
        assert isinstance(left, kvm.PreFaultAnswer) and left.size == 0
        g = s.vm_gfns(vm.vm_id, 0, 512)
        assert isinstance(g, kvm.GfnSources) and g.runs[0].source == "private"
        with pytest.raises(SealscopeError) as e:
            s.vm("999")
        assert (e.value.status, e.value.errno) == (404, "ENOENT")
        with pytest.raises(SealscopeError) as e:
            s.vm_create("vm1", "KVM_X86_NO_SUCH_VM")
        assert (e.value.status, e.value.errno) == (409, "EINVAL")
        with pytest.raises(SealscopeError) as e:
            s.set_memory_attributes(vm.vm_id, 0, 4096, PRIVATE, flags=2**64 - 1)
        assert (e.value.status, e.value.errno, e.value.op) == (
            409,
            "EINVAL",
            "KVM_SET_MEMORY_ATTRIBUTES",
        )
        # close(vm_fd): the guest_memfd keeps the VM (closed, EBADF), its close ends it
        s.vm_close(vm.vm_id)
        assert s.vm(vm.vm_id).closed
        with pytest.raises(SealscopeError) as e:
            s.vcpu_create(vm.vm_id)
        assert (e.value.status, e.value.errno) == (404, "EBADF")
        s.close(f.fd)
        with pytest.raises(SealscopeError) as e:
            s.vm(vm.vm_id)
        assert e.value.status == 404
        s.delete()


@pytest.mark.anyio
async def test_async_kvm(live: Server) -> None:
    async with AsyncClient(live.url) as c:
        s = await c.create_session(profile="rfc-v2")
        vm = await s.vm_create()
        assert isinstance(vm, kvm.Vm) and vm.type == "KVM_X86_DEFAULT_VM"
        assert (await s.vcpu_create(vm.vm_id)).vcpu_id == 0
        assert (await s.vm_capabilities(vm.vm_id))["KVM_CAP_GUEST_MEMFD"] == 0
        shared = await s.memfd_create("shared", ["MFD_ALLOW_SEALING"])
        await s.ftruncate(shared.fd, MiB)
        slot = await s.set_memory_region(
            vm.vm_id, slot=0, flags=["KVM_MEM_FD"], memory_size=MiB, fd=shared.fd, private_fd=-1
        )
        assert isinstance(slot, kvm.KvmMemslot) and slot.fd == shared.fd
        a = await s.vcpu_access(vm.vm_id, 0, 8192, write=True, private=False, value=4)
        assert (a.backing, a.fd, a.index, a.value) == ("shared", shared.fd, 2, 4)
        with pytest.raises(SealscopeError) as e:
            await s.vm_guest_memfd(vm.vm_id, MiB)
        assert (e.value.status, e.value.errno) == (409, "ENOTTY")
        with pytest.raises(SealscopeError) as e:
            await s.pre_fault_memory(vm.vm_id, 0, 0, 4096)
        assert e.value.errno == "ENOTTY"
        attrs = await s.memory_attributes(vm.vm_id)
        assert isinstance(attrs, kvm.MemoryAttributes)
        await s.vm_close(vm.vm_id)  # rfc-v2: destroyed at once
        assert vm.vm_id not in [v.vm_id for v in (await s.vms()).vms]
        await s.delete()
