"""Hostile bodies and values on every KVM route (API.md "The KVM side", "Errors"): never
a 500; an errno name and value in every error; 422 only for a body that does not fit the
schema (a u64 field out of 0 .. 2^64 - 1, a negative, a float, a string, a list where an
object goes, a missing field, a nesting too deep); 409 EINVAL for values the kernel
refuses (any u64 the schema takes, names the kernel does not know); extra fields are
ignored. The engine's invariants are checked after every request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.api.helpers import new_session, running

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
MiB = 1 << 20
U64 = 2**64 - 1
PRIVATE = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


class Raw(bytes):
    """A body sent as these bytes (json.dumps cannot write it)."""


DEEP = Raw(b'{"x":' * 5000 + b"0" + b"}" * 5000)

VM = "/vms/0"
GMEM = VM + "/guest_memfd"
REGION = VM + "/memory_regions"
ATTRS = VM + "/memory_attributes"
ACCESS = VM + "/vcpus/0/access"
PREFAULT = VM + "/vcpus/0/pre_fault_memory"
HOST = "/mappings/1/access"


class Case(NamedTuple):
    path: str
    body: Any  # None: a GET (query in the path)
    status: int
    errno: str | None = None  # None: any name (checked to be there on an error)


def gmem_region(**over: Any) -> dict[str, Any]:
    body = {
        "slot": 5,
        "flags": ["KVM_MEM_GUEST_MEMFD"],
        "guest_phys_addr": 64 * MiB,
        "memory_size": MiB,
        "userspace_addr": 0,
        "guest_memfd_offset": 0,
        "guest_memfd": 3,
    }
    return {**body, **over}


CASES: dict[str, Case] = {
    # ---- POST /vms
    "vm-unknown-type": Case("/vms", {"name": "v", "type": "KVM_X86_NO_SUCH_VM"}, 409, "EINVAL"),
    "vm-type-int": Case("/vms", {"name": "v", "type": 1}, 422, "EINVAL"),
    "vm-type-list": Case("/vms", {"type": ["KVM_X86_DEFAULT_VM"]}, 422),
    "vm-type-huge-string": Case("/vms", {"type": "K" * 100_000}, 422),
    "vm-name-too-long": Case("/vms", {"name": "n" * 10_000}, 422),
    "vm-name-nul": Case("/vms", {"name": "a\u0000b"}, 201),  # a C string: "a"
    "vm-body-list": Case("/vms", [1, 2, 3], 422),
    "vm-body-deep": Case("/vms", DEEP, 422),
    "vm-extra-field": Case("/vms", {"name": "v", "type": "KVM_X86_DEFAULT_VM", "x": [1]}, 201),
    # ---- POST .../guest_memfd
    "gmem-missing-size": Case(GMEM, {"flags": []}, 422),
    "gmem-size-0": Case(GMEM, {"size": 0}, 409, "EINVAL"),
    "gmem-size-u64-max": Case(GMEM, {"size": U64}, 409, "EINVAL"),
    "gmem-size-2p63": Case(GMEM, {"size": 1 << 63}, 409, "EINVAL"),
    "gmem-size-2p64": Case(GMEM, {"size": 1 << 64}, 422),
    "gmem-size-negative": Case(GMEM, {"size": -4096}, 422),
    "gmem-size-float": Case(GMEM, {"size": 4096.0}, 422),
    "gmem-size-string": Case(GMEM, {"size": "4096"}, 422),
    "gmem-size-bool": Case(GMEM, {"size": True}, 422),
    "gmem-size-unaligned": Case(GMEM, {"size": 4097}, 409, "EINVAL"),
    "gmem-unknown-flag": Case(
        GMEM, {"size": MiB, "flags": ["GUEST_MEMFD_FLAG_NOPE"]}, 409, "EINVAL"
    ),
    "gmem-flags-huge-list": Case(GMEM, {"size": MiB, "flags": ["X"] * 100_000}, 422),
    "gmem-flags-string": Case(GMEM, {"size": MiB, "flags": "GUEST_MEMFD_FLAG_MMAP"}, 422),
    "gmem-unknown-vm": Case("/vms/77/guest_memfd", {"size": MiB}, 404, "ENOENT"),
    "gmem-vm-id-huge": Case("/vms/" + "9" * 300 + "/guest_memfd", {"size": MiB}, 422),
    # ---- POST .../memory_regions (KVM_SET_USER_MEMORY_REGION2)
    "region-slot-2p32": Case(REGION, gmem_region(slot=1 << 32), 422),
    "region-slot-u32-max": Case(REGION, gmem_region(slot=2**32 - 1), 409, "EINVAL"),
    "region-slot-negative": Case(REGION, gmem_region(slot=-1), 422),
    "region-gpa-u64-max": Case(REGION, gmem_region(guest_phys_addr=U64 - 4095), 409, "EINVAL"),
    "region-gpa-2p64": Case(REGION, gmem_region(guest_phys_addr=1 << 64), 422),
    "region-gpa-max-gfn": Case(REGION, gmem_region(guest_phys_addr=1 << 52), 409, "EINVAL"),
    "region-size-u64-max": Case(REGION, gmem_region(memory_size=U64), 409, "EINVAL"),
    "region-size-top-page": Case(REGION, gmem_region(memory_size=U64 - 4095), 409, "EINVAL"),
    "region-size-2p31-pages": Case(REGION, gmem_region(memory_size=(1 << 31) * 4096), 409),
    "region-size-float": Case(REGION, gmem_region(memory_size=1.5), 422),
    "region-uaddr-u64-max": Case(REGION, gmem_region(userspace_addr=U64 - 4095), 409, "EINVAL"),
    "region-uaddr-string": Case(REGION, gmem_region(userspace_addr="0x1000"), 422),
    "region-offset-u64-max": Case(REGION, gmem_region(guest_memfd_offset=U64 - 4095), 409),
    "region-offset-2p63": Case(REGION, gmem_region(guest_memfd_offset=1 << 63), 409, "EINVAL"),
    "region-offset-past-end": Case(REGION, gmem_region(guest_memfd_offset=2 * MiB), 409),
    "region-gmem-fd-unknown": Case(REGION, gmem_region(guest_memfd=99), 404, "EBADF"),
    "region-gmem-fd-negative": Case(REGION, gmem_region(guest_memfd=-1), 404, "EBADF"),
    "region-gmem-fd-int64-max": Case(REGION, gmem_region(guest_memfd=2**63 - 1), 404, "EBADF"),
    "region-gmem-fd-2p63": Case(REGION, gmem_region(guest_memfd=1 << 63), 422),
    "region-gmem-fd-plain-memfd": Case(REGION, gmem_region(guest_memfd=4), 409, "EINVAL"),
    "region-unknown-flag": Case(REGION, gmem_region(flags=["KVM_MEM_NOPE"]), 409, "EINVAL"),
    "region-flags-dict": Case(REGION, gmem_region(flags={"KVM_MEM_GUEST_MEMFD": 1}), 422),
    "region-delete-missing": Case(REGION, gmem_region(slot=9, memory_size=0), 409, "EINVAL"),
    "region-empty-body": Case(REGION, {}, 200),  # a zeroed struct: deletes slot 0
    "region-extra-field": Case(REGION, gmem_region(guest_memfd_offset=MiB, reserved=[0] * 14), 200),
    "region-gmem-range-bound": Case(REGION, gmem_region(), 409, "EINVAL"),  # slot 0 has it
    "region-deep": Case(REGION, Raw(b'{"slot":' + DEEP + b"}"), 422),
    "region-not-json": Case(REGION, Raw(b'{"slot": 0,'), 422),
    "region-unknown-vm": Case("/vms/5/memory_regions", gmem_region(), 404, "ENOENT"),
    # ---- POST .../memory_attributes
    "attrs-missing-size": Case(ATTRS, {"address": 0, "attributes": PRIVATE}, 422),
    "attrs-size-0": Case(ATTRS, {"address": 0, "size": 0, "attributes": PRIVATE}, 409, "EINVAL"),
    "attrs-wrap": Case(ATTRS, {"address": U64 - 4095, "size": 8192, "attributes": PRIVATE}, 409),
    "attrs-u64-max": Case(ATTRS, {"address": 0, "size": U64, "attributes": PRIVATE}, 409, "EINVAL"),
    "attrs-unaligned": Case(ATTRS, {"address": 1, "size": 4096, "attributes": PRIVATE}, 409),
    "attrs-flags-u64-max": Case(
        ATTRS, {"address": 0, "size": 4096, "attributes": PRIVATE, "flags": U64}, 409, "EINVAL"
    ),
    "attrs-flags-2p64": Case(
        ATTRS, {"address": 0, "size": 4096, "attributes": PRIVATE, "flags": 1 << 64}, 422
    ),
    "attrs-unknown-name": Case(
        ATTRS, {"address": 0, "size": 4096, "attributes": ["KVM_MEMORY_ATTRIBUTE_RWX"]}, 409
    ),
    "attrs-name-int": Case(ATTRS, {"address": 0, "size": 4096, "attributes": [8]}, 422),
    "attrs-huge-list": Case(
        ATTRS, {"address": 0, "size": 4096, "attributes": PRIVATE * 50_000}, 422
    ),
    "attrs-top-of-space": Case(  # address + size is 2^64: wraps to 0
        ATTRS, {"address": U64 - 4095, "size": 4096, "attributes": PRIVATE}, 409, "EINVAL"
    ),
    "attrs-2p63": Case(ATTRS, {"address": 1 << 63, "size": 4096, "attributes": PRIVATE}, 200),
    "attrs-get-u64-range": Case(f"{ATTRS}?start=0&end={U64}", None, 200),
    "attrs-get-2p64": Case(f"{ATTRS}?start={1 << 64}", None, 422),
    "attrs-get-negative": Case(f"{ATTRS}?start=-1", None, 422),
    "attrs-get-float": Case(f"{ATTRS}?end=1.5", None, 422),
    "attrs-get-reversed": Case(f"{ATTRS}?start=100&end=5", None, 200),
    # ---- POST .../vcpus, .../access, .../pre_fault_memory
    "vcpu-body-list": Case(VM + "/vcpus", [], 422),
    "vcpu-unknown-vm": Case("/vms/3/vcpus", {}, 404, "ENOENT"),
    "access-unknown-vcpu": Case(VM + "/vcpus/7/access", {"gpa": 0}, 404, "ENOENT"),
    "access-vcpu-negative": Case(VM + "/vcpus/-1/access", {"gpa": 0}, 422),
    "access-vcpu-2p31": Case(VM + f"/vcpus/{1 << 31}/access", {"gpa": 0}, 422),
    "access-vcpu-not-int": Case(VM + "/vcpus/zero/access", {"gpa": 0}, 422),
    "access-gpa-u64-max": Case(ACCESS, {"gpa": U64}, 200),  # an exit: KVM_EXIT_MMIO
    "access-gpa-2p64": Case(ACCESS, {"gpa": 1 << 64}, 422),
    "access-gpa-missing": Case(ACCESS, {"write": True}, 422),
    "access-write-int": Case(ACCESS, {"gpa": 0, "write": 1}, 422),
    "access-private-string": Case(ACCESS, {"gpa": 0, "private": "yes"}, 422),
    "access-value-256": Case(ACCESS, {"gpa": 0, "write": True, "value": 256}, 422),
    "access-value-negative": Case(ACCESS, {"gpa": 0, "write": True, "value": -1}, 422),
    "access-extra-field": Case(ACCESS, {"gpa": 0, "size": 8}, 200),
    "prefault-flags-u64-max": Case(PREFAULT, {"gpa": 0, "size": 4096, "flags": U64}, 409, "EINVAL"),
    "prefault-wrap": Case(PREFAULT, {"gpa": U64 - 4095, "size": 8192}, 409, "EINVAL"),
    "prefault-size-0": Case(PREFAULT, {"gpa": 0, "size": 0}, 409, "EINVAL"),
    "prefault-no-slot": Case(PREFAULT, {"gpa": 1 << 40, "size": 4096}, 404, "ENOENT"),
    "prefault-size-2p64": Case(PREFAULT, {"gpa": 0, "size": 1 << 64}, 422),
    # ---- POST /mappings/{map_id}/access
    "host-offset-u64-max": Case(HOST, {"offset": U64}, 200),  # SIGSEGV
    "host-offset-2p64": Case(HOST, {"offset": 1 << 64}, 422),
    "host-offset-negative": Case(HOST, {"offset": -1}, 422),
    "host-unknown-map": Case("/mappings/99/access", {"offset": 0}, 404, "ENOENT"),
    "host-map-id-2p63": Case(f"/mappings/{1 << 63}/access", {"offset": 0}, 422),
    "host-map-id-negative": Case("/mappings/-5/access", {"offset": 0}, 404),
    "host-write-string": Case(HOST, {"offset": 0, "write": "true"}, 422),
    # ---- GET views
    "vm-get-unknown": Case("/vms/12", None, 404, "ENOENT"),
    "vm-get-limit-0": Case(VM + "?limit=0", None, 422),
    "vm-get-start-u64-max": Case(f"{VM}?start={U64}", None, 200),
    "caps-unknown-vm": Case("/vms/abc/capabilities", None, 404),
    "gfns-u64-range": Case(f"{VM}/gfns?start={U64 - 1}&end={U64}", None, 200),
    "gfns-limit-huge": Case(VM + "/gfns?limit=100000000", None, 422),
}


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, str]]:
    """A guest-memfd session: VM 0 (SW_PROTECTED) with vCPU 0, guest_memfd 3 of 2 MiB
    bound by slot 0 at gpa 0, memfd 4 mapped as map 1 (its userspace_addr)."""
    async with running(settings) as (app, c):
        sid = await new_session(c, profile="guest-memfd")
        b = f"{API}/{sid}"
        assert (await c.post(f"{b}/vms", json={"type": "KVM_X86_SW_PROTECTED_VM"})).is_success
        assert (await c.post(f"{b}/vms/0/vcpus", json={})).status_code == 201
        assert (await c.post(f"{b}/vms/0/guest_memfd", json={"size": 2 * MiB})).json()["fd"] == 3
        assert (await c.post(f"{b}/memfds", json={"name": "s"})).json()["fd"] == 4
        assert (await c.post(f"{b}/files/4/ftruncate", json={"length": 2 * MiB})).is_success
        body = {"offset": 0, "length": 2 * MiB, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}
        mp = (await c.post(f"{b}/files/4/mmap", json=body)).json()
        assert mp["map_id"] == 1
        region = gmem_region(slot=0, guest_phys_addr=0, userspace_addr=mp["addr"])
        assert (await c.post(f"{b}/vms/0/memory_regions", json=region)).status_code == 200
        yield app, c, sid


def _error_ok(status: int, body: Any) -> None:
    assert isinstance(body, dict) and isinstance(body.get("errno"), str), body
    assert body["errno"].startswith("E") and isinstance(body.get("errno_value"), int), body
    assert isinstance(body.get("message"), str) and body["message"], body
    if status == 422:
        assert body["errno"] == "EINVAL"


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_hostile_kvm_input(world: tuple[FastAPI, httpx.AsyncClient, str], case: Case) -> None:
    app, c, sid = world
    url = f"{API}/{sid}{case.path}"
    if case.body is None:
        r = await c.get(url)
    else:
        raw = case.body if isinstance(case.body, Raw) else json.dumps(case.body).encode()
        r = await c.post(url, content=raw, headers={"content-type": "application/json"})
    app.state.registry.get(sid).machine.check()
    assert r.status_code == case.status, r.text[:500]
    if r.status_code >= 400:
        _error_ok(r.status_code, r.json())
        if case.errno is not None:
            assert r.json()["errno"] == case.errno, r.text[:500]
    assert (await c.get(f"{API}/{sid}/vms/0")).status_code == 200  # the service goes on


RFC_REGION = {"slot": 0, "flags": ["KVM_MEM_FD"], "memory_size": MiB, "fd": 3, "private_fd": 4}
RFC_CASES: dict[str, tuple[dict[str, Any], int, str | None]] = {
    "fd-unknown": ({**RFC_REGION, "fd": 99}, 404, "EBADF"),
    "fd-int64-min": ({**RFC_REGION, "fd": -(2**63)}, 404, "EBADF"),
    "fd-2p63": ({**RFC_REGION, "fd": 1 << 63}, 422, "EINVAL"),
    "private-fd-unknown": ({**RFC_REGION, "private_fd": 77}, 404, "EBADF"),
    "private-fd-float": ({**RFC_REGION, "private_fd": -1.0}, 422, "EINVAL"),
    # KVM_MEM_FD: userspace_addr is the files' offset, no access_ok (KVM_CONTRACT.md)
    "uaddr-u64-max": ({**RFC_REGION, "userspace_addr": U64 - 4095}, 200, None),
    "size-u64-max": ({**RFC_REGION, "memory_size": U64 - 4095}, 409, "EINVAL"),
    "gpa-top": ({**RFC_REGION, "guest_phys_addr": U64 - 4095}, 409, "EINVAL"),
    "guest-memfd-flag": ({**RFC_REGION, "flags": ["KVM_MEM_GUEST_MEMFD"]}, 409, None),
    "attributes-on-rfc": ({}, 409, "ENOTTY"),  # KVM_SET_MEMORY_ATTRIBUTES: not in 5.15
    "ok": (RFC_REGION, 200, None),
}


@pytest.mark.parametrize("name", list(RFC_CASES), ids=list(RFC_CASES))
async def test_hostile_region_ext(settings: Settings, name: str) -> None:
    body, status, errno = RFC_CASES[name]
    async with running(settings) as (app, c):
        sid = await new_session(c, profile="rfc-v2")
        b = f"{API}/{sid}"
        assert (await c.post(f"{b}/vms", json={})).status_code == 201
        for _ in range(2):
            await c.post(f"{b}/memfds", json={"name": "f", "flags": ["MFD_ALLOW_SEALING"]})
        await c.post(f"{b}/files/4/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
        for fd in (3, 4):
            await c.post(f"{b}/files/{fd}/ftruncate", json={"length": MiB})
        if name == "attributes-on-rfc":
            attrs = {"address": 0, "size": 4096, "attributes": PRIVATE}
            r = await c.post(f"{b}/vms/0/memory_attributes", json=attrs)
        else:
            r = await c.post(f"{b}/vms/0/memory_regions", json=body)
        app.state.registry.get(sid).machine.check()
        assert r.status_code == status, r.text[:500]
        if status >= 400:
            _error_ok(status, r.json())
            if errno:
                assert r.json()["errno"] == errno, r.text
        await c.post(f"{b}/vms/0/vcpus", json={})
        for private in (True, False):  # the guest touches what the slot left: no 500
            for gpa in (0, MiB - 1, U64):
                body = {"gpa": gpa, "private": private, "write": True, "value": 1}
                r = await c.post(f"{b}/vms/0/vcpus/0/access", json=body)
                app.state.registry.get(sid).machine.check()
                assert r.status_code in (200, 409), r.text[:500]
                if r.status_code == 409:
                    _error_ok(409, r.json())


async def test_rfc_fallocate_inside_a_huge_page_makes_all_of_it_private(
    settings: Settings,
) -> None:
    """thp always: fallocate of private pages [56, 149) allocates the 2 MiB page 0..511;
    gfn 38's page (index 3) is private now, its shared mapping gone (the fuzzer found the
    engine keeping it: engine_c/fuzz/corpus/rfc-thp-fallocate-edge.bin)."""
    async with running(settings) as (app, c):
        sid = await new_session(c, profile="rfc-v2", thp="always")
        b = f"{API}/{sid}"
        assert (await c.post(f"{b}/vms", json={})).status_code == 201
        assert (await c.post(f"{b}/vms/0/vcpus", json={})).status_code == 201
        for name in ("shared", "private"):
            await c.post(f"{b}/memfds", json={"name": name, "flags": ["MFD_ALLOW_SEALING"]})
        seal = {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}
        assert (await c.post(f"{b}/files/4/fcntl", json=seal)).is_success
        for fd in (3, 4):
            assert (await c.post(f"{b}/files/{fd}/ftruncate", json={"length": 20480})).is_success
        region = {"slot": 0, "flags": ["KVM_MEM_FD"], "guest_phys_addr": 0x23000,
                  "memory_size": 20480, "fd": 3, "private_fd": 4}  # fmt: skip
        assert (await c.post(f"{b}/vms/0/memory_regions", json=region)).status_code == 200
        access = f"{b}/vms/0/vcpus/0/access"
        r = await c.post(access, json={"gpa": 0x26000, "write": True, "value": 255})
        assert r.json()["fd"] == 3
        body = {"mode": [], "offset": 229376, "len": 379886}
        assert (await c.post(f"{b}/files/4/fallocate", json=body)).status_code == 200
        app.state.registry.get(sid).machine.check()
        assert (await c.get(f"{b}/files/4")).json()["nr_pages"] == 512
        r = await c.post(access, json={"gpa": 0x26000, "private": True})
        assert (r.json()["backing"], r.json()["fd"]) == ("private", 4)
        r = await c.post(access, json={"gpa": 0x26000, "private": False})
        assert r.json()["exit"]["type"] == "KVM_EXIT_MEM_MAP_SHARED"
        app.state.registry.get(sid).machine.check()


async def test_multi_owner_unregister_of_a_vms_shared_fd_is_ebusy(settings: Settings) -> None:
    """A VM's KVM_MEM_FD slot holds a use of its shared fd: unregistering the VM from it
    is EBUSY, and a truncate still zaps the VM's mapping (the fuzzer found the
    registration dropped and a frame freed under the mapping: corpus
    rfc-unregister-shared-fd.bin)."""
    async with running(settings) as (app, c):
        sid = await new_session(c, profile="rfc-v2", variants=["multi_owner"])
        b = f"{API}/{sid}"
        assert (await c.post(f"{b}/vms", json={})).status_code == 201
        assert (await c.post(f"{b}/vms/0/vcpus", json={})).status_code == 201
        assert (await c.post(f"{b}/memfds", json={"name": "shared"})).json()["fd"] == 3
        assert (await c.post(f"{b}/files/3/ftruncate", json={"length": 69632})).is_success
        region = {"slot": 0, "flags": ["KVM_MEM_FD"], "guest_phys_addr": 348160,
                  "memory_size": 69632, "fd": 3, "private_fd": -1}  # fmt: skip
        assert (await c.post(f"{b}/vms/0/memory_regions", json=region)).status_code == 200
        r = await c.post(f"{b}/files/3/unregister_guest", json={"owner_id": "0"})
        assert r.status_code == 409 and r.json()["errno"] == "EBUSY", r.text
        r = await c.post(f"{b}/vms/0/vcpus/0/access", json={"gpa": 380928})
        assert r.status_code == 200 and r.json()["fd"] == 3
        assert (await c.post(f"{b}/files/3/ftruncate", json={"length": 20480})).is_success
        app.state.registry.get(sid).machine.check()
        assert (await c.get(f"{b}/vms/0")).json()["mapped"] == []
