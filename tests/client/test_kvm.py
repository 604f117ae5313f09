"""The client's KVM side (API.md "The KVM side") against a live server, where the server
has it: another branch implements those endpoints; this build may not."""

from __future__ import annotations

import httpx
import pytest

from sealscope.client import Client, SealscopeError
from tests.api.helpers import Server


@pytest.fixture
def kvm(live: Server) -> Client:
    paths = httpx.get(f"{live.url}/openapi.json").json()["paths"]
    if "/api/v1/sessions/{sid}/vms" not in paths:
        pytest.skip("this build of the service has no KVM endpoints (POST .../vms) yet")
    return Client(live.url)


def test_vm_lifecycle(kvm: Client) -> None:
    with kvm as c:
        s = c.create_session(profile="guest-memfd")
        vm = s.vm_create("vm0", "KVM_X86_SW_PROTECTED_VM")
        vm_id = vm["vm_id"]
        assert s.vm(vm_id)["name"] == "vm0"
        assert all(k.startswith("KVM_CAP_") for k in s.vm_capabilities(vm_id))
        f = s.vm_guest_memfd(vm_id, 1 << 21)
        assert f["kind"] == "guest_memfd" and f["vm_id"] == vm_id
        assert "vcpu_id" in s.vcpu_create(vm_id)
        s.set_memory_attributes(vm_id, 0, 4096, ["KVM_MEMORY_ATTRIBUTE_PRIVATE"])
        runs = s.memory_attributes(vm_id)["extents"]
        assert runs[0]["attributes"] == ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
        with pytest.raises(SealscopeError) as e:
            s.vm("999")
        assert e.value.status == 404
        with pytest.raises(SealscopeError) as e:
            s.vm_create("vm1", "KVM_X86_NO_SUCH_VM")
        assert (e.value.status, e.value.errno) == (409, "EINVAL")
        s.delete()
