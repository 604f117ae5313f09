"""A batch of KVM ops answers each op as its own route does: 201 for vm_create,
vm_guest_memfd and vcpu_create, the same answers, errno names and 404s; the same trace
and events (both profiles)."""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import Settings
from tests.api.helpers import new_session, running

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
MiB = 1 << 20
UADDR = 0x7F0000000000 - 2 * MiB  # the first mapping's address (KVM_CONTRACT.md)
U64 = 2**64 - 1
RW, SHARED = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]


def op(op_name: str, /, **args: Any) -> dict[str, Any]:
    return {"op": op_name, "args": args}


GMEM_OPS = [
    op("vm_create", name="vm0", type="KVM_X86_SW_PROTECTED_VM"),  # 201, vm "0"
    op("vm_create", name="bad", type="KVM_X86_NO_SUCH_VM"),  # 409 EINVAL
    op("vcpu_create", vm_id="0"),  # 201 vcpu 0
    op("vcpu_create", vm_id="7"),  # 404 ENOENT, no op logged
    op("vm_guest_memfd", vm_id="0", size=2 * MiB, flags=[]),  # 201 fd 3
    op("vm_guest_memfd", vm_id="0", size=2 * MiB, flags=["GUEST_MEMFD_FLAG_INIT_SHARED"]),
    op("vm_guest_memfd", vm_id="0", size=U64, flags=[]),  # EINVAL
    op("memfd_create", name="shared", flags=[]),  # fd 4
    op("ftruncate", fd=4, length=2 * MiB),
    op("mmap", fd=4, offset=0, length=2 * MiB, prot=RW, flags=SHARED),
    op(
        "set_user_memory_region",
        vm_id="0",
        slot=0,
        flags=["KVM_MEM_GUEST_MEMFD"],
        guest_phys_addr=0,
        memory_size=2 * MiB,
        userspace_addr=UADDR,
        guest_memfd_offset=0,
        guest_memfd=3,
    ),
    op("set_user_memory_region", vm_id="0", slot=1, memory_size=4096, userspace_addr=UADDR),
    op("set_user_memory_region", vm_id="0", slot=2, memory_size=U64, userspace_addr=U64),
    op(
        "set_user_memory_region",
        vm_id="0",
        slot=2,
        guest_phys_addr=U64 - 4095,
        memory_size=U64 - 4095,
        userspace_addr=0,
    ),
    op(
        "set_user_memory_region",
        vm_id="0",
        slot=3,
        flags=["KVM_MEM_GUEST_MEMFD"],
        guest_phys_addr=4 * MiB,
        memory_size=4096,
        guest_memfd=99,
    ),  # EBADF: 404
    op(
        "set_memory_attributes",
        vm_id="0",
        address=0,
        size=8192,
        attributes=["KVM_MEMORY_ATTRIBUTE_PRIVATE"],
        flags=0,
    ),
    op("set_memory_attributes", vm_id="0", address=0, size=4096, attributes=[], flags=1),
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=0, write=True, private=None, value=7),
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=16384, write=False, private=True, value=0),
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=8 * MiB + 5, write=False, private=None, value=0),
    op("vcpu_access", vm_id="0", vcpu_id=5, gpa=0, write=False, private=None, value=0),
    op("vcpu_access", vm_id="9", vcpu_id=0, gpa=0, write=False, private=None, value=0),
    op("mapping_access", map_id=1, offset=12288, write=True, value=9),
    op("mapping_access", map_id=1, offset=4 * MiB, write=False, value=0),  # SIGSEGV
    op("mapping_access", map_id=77, offset=0, write=False, value=0),  # 404
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=12288, write=False, private=None, value=0),
    op("pre_fault_memory", vm_id="0", vcpu_id=0, gpa=0, size=16384, flags=0),
    op("pre_fault_memory", vm_id="0", vcpu_id=0, gpa=0, size=4096, flags=U64),
    op("fallocate", fd=3, mode=["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], offset=0, len=4096),
    op(
        "set_user_memory_region",
        vm_id="0",
        slot=0,
        flags=["KVM_MEM_GUEST_MEMFD"],
        guest_phys_addr=0,
        memory_size=0,
        userspace_addr=UADDR,
        guest_memfd=3,
    ),  # delete
    op("close", fd=3),
    op("munmap", map_id=1),
    op("mapping_access", map_id=1, offset=0, write=False, value=0),  # gone: 404
]

RFC_OPS = [
    op("vm_create", name="vm0", type="KVM_X86_DEFAULT_VM"),
    op("vm_create", name="vm1", type="KVM_X86_TDX_VM"),  # rfc-v2: EINVAL
    op("vcpu_create", vm_id="0"),
    op("memfd_create", name="shared", flags=["MFD_ALLOW_SEALING"]),  # fd 3
    op("memfd_create", name="private", flags=["MFD_ALLOW_SEALING"]),  # fd 4
    op("fcntl", fd=4, cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"]),
    op("ftruncate", fd=3, length=MiB),
    op("ftruncate", fd=4, length=MiB),
    op("vm_guest_memfd", vm_id="0", size=MiB, flags=[]),  # ENOTTY in rfc-v2
    op(
        "set_user_memory_region",
        vm_id="0",
        slot=0,
        flags=["KVM_MEM_FD"],
        guest_phys_addr=0,
        memory_size=MiB,
        userspace_addr=0,
        fd=3,
        private_fd=4,
    ),
    op(
        "set_user_memory_region",
        vm_id="0",
        slot=1,
        flags=["KVM_MEM_FD"],
        guest_phys_addr=2 * MiB,
        memory_size=MiB,
        userspace_addr=0,
        fd=3,
        private_fd=-1,
    ),  # fd 3 registered: EPERM?
    op(
        "set_memory_attributes",
        vm_id="0",
        address=0,
        size=4096,
        attributes=["KVM_MEMORY_ATTRIBUTE_PRIVATE"],
        flags=0,
    ),
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=0, write=False, private=True, value=0),
    op("fallocate", fd=4, mode=[], offset=0, len=4096),
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=0, write=True, private=True, value=3),
    op("vcpu_access", vm_id="0", vcpu_id=0, gpa=8192, write=True, private=False, value=4),
    op("pre_fault_memory", vm_id="0", vcpu_id=0, gpa=0, size=4096, flags=0),  # ENOTTY
]


def _single(o: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    """The op's own route: method, path (ids from its args) and body."""
    a, name = dict(o["args"]), o["op"]
    vm = f"/vms/{a.pop('vm_id', '')}"
    if name == "vm_create":
        return "POST", "/vms", a
    if name == "vm_guest_memfd":
        return "POST", vm + "/guest_memfd", a
    if name == "set_user_memory_region":
        return "POST", vm + "/memory_regions", a
    if name == "set_memory_attributes":
        return "POST", vm + "/memory_attributes", a
    if name == "vcpu_create":
        return "POST", vm + "/vcpus", {}
    if name in ("vcpu_access", "pre_fault_memory"):
        return "POST", f"{vm}/vcpus/{a.pop('vcpu_id')}/{name.removeprefix('vcpu_')}", a
    if name == "mapping_access":
        return "POST", f"/mappings/{a.pop('map_id')}/access", a
    if name == "memfd_create":
        return "POST", "/memfds", a
    if name == "munmap":
        return "DELETE", f"/mappings/{a['map_id']}", None
    return "POST", f"/files/{a.pop('fd')}/{name}", (a or None)


@pytest.mark.parametrize(
    ("profile", "ops"), [("guest-memfd", GMEM_OPS), ("rfc-v2", RFC_OPS)], ids=["gmem", "rfc"]
)
async def test_kvm_ops_batched_answer_as_sent_alone(
    settings: Settings, profile: str, ops: list[dict[str, Any]]
) -> None:
    async with running(settings) as (app, c):
        alone = await new_session(c, profile=profile)
        batched = await new_session(c, profile=profile)
        singles = []
        for o in ops:
            method, path, body = _single(o)
            r = await c.request(method, f"{API}/{alone}{path}", json=body)
            assert r.status_code != 500 and r.status_code != 422, (o, r.text)
            singles.append((r.status_code, r.json() if r.content else None))
            app.state.registry.get(alone).machine.check()
        r = await c.post(f"{API}/{batched}/ops", json={"ops": ops})
        assert r.status_code == 200, r.text
        out = r.json()
        app.state.registry.get(batched).machine.check()
        got = [(x["status"], x["answer"]) for x in out["results"]]
        for i, (g, s) in enumerate(zip(got, singles, strict=True)):
            assert g == s, (i, ops[i], g, s)
        assert [x["errno"] for x in out["results"]] == [
            (a or {}).get("errno") if s >= 400 else None for s, a in singles
        ]
        for (status, answer), x in zip(singles, out["results"], strict=True):
            if status >= 400:
                assert answer["errno"] and isinstance(answer["errno_value"], int)
            if status == 404 and answer["errno"] == "ENOENT":  # an unknown id: not an op
                assert x["seq"] is None
        statuses = {s for s, _ in singles}
        assert statuses >= ({200, 201, 409} if profile == "rfc-v2" else {200, 201, 204, 404, 409})
        ta = (await c.get(f"{API}/{alone}/trace")).json()
        tb = (await c.get(f"{API}/{batched}/trace")).json()
        assert ta["ops"] == tb["ops"] and out["seq"] == len(tb["ops"])
        ea = (await c.get(f"{API}/{alone}/events")).json()["events"]
        eb = (await c.get(f"{API}/{batched}/events")).json()["events"]
        assert ea == eb and out["event_seq"] == len(eb)
        va = (await c.get(f"{API}/{alone}/vms/0")).json()
        vb = (await c.get(f"{API}/{batched}/vms/0")).json()
        assert va == vb


async def test_created_kvm_ops_answer_201_in_a_batch(settings: Settings) -> None:
    async with running(settings) as (_, c):
        sid = await new_session(c, profile="guest-memfd")
        r = await c.post(f"{API}/{sid}/ops", json={"ops": GMEM_OPS[:5]})
        res = r.json()["results"]
        assert [x["status"] for x in res] == [201, 409, 201, 404, 201]
        assert res[0]["answer"]["vm_id"] == "0" and res[2]["answer"] == {"vcpu_id": 0}
        assert res[4]["answer"]["vm_id"] == "0" and res[4]["answer"]["kind"] == "guest_memfd"
        assert res[1]["errno"] == "EINVAL" and res[1]["answer"]["op"] == "KVM_CREATE_VM"
        assert res[3]["errno"] == "ENOENT" and res[3]["seq"] is None


async def test_the_owner_limit_in_a_batch_is_the_single_routes(settings: Settings) -> None:
    """The 9th owner (VMs are owners) is 429 max_owners, batched as alone; not logged."""
    vms = [op("vm_create", name=f"v{i}", type="KVM_X86_DEFAULT_VM") for i in range(9)]
    async with running(settings) as (_, c):
        alone = await new_session(c, profile="guest-memfd")
        singles = []
        for o in vms:
            r = await c.post(f"{API}/{alone}/vms", json=o["args"])
            singles.append((r.status_code, r.json()))
        batched = await new_session(c, profile="guest-memfd")
        out = (await c.post(f"{API}/{batched}/ops", json={"ops": vms})).json()
        assert [(x["status"], x["answer"]) for x in out["results"]] == singles
        last = out["results"][-1]
        assert last["status"] == 429 and last["answer"]["limit"] == "max_owners"
        assert last["seq"] is None and out["seq"] == 8
