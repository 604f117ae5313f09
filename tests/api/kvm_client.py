"""A thin client of the KVM side of the REST contract (API.md, "The KVM side"), for the
tests that mirror the kernel's KVM selftests. Every call checks the status code the
contract gives; a kernel errno (409) is raised as Errno so a test can name it."""

from __future__ import annotations

from typing import Any

import httpx

API = "/api/v1/sessions"
P = 4096
MMAP, INIT_SHARED = "GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"
GMEM = "KVM_MEM_GUEST_MEMFD"
PRIVATE = "KVM_MEMORY_ATTRIBUTE_PRIVATE"
KEEP, PUNCH = "FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"
RW, SHARED = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]
DEFAULT_VM, SW_VM = "KVM_X86_DEFAULT_VM", "KVM_X86_SW_PROTECTED_VM"
CREATED = ("/vms", "/guest_memfd", "/mmap", "/vcpus", "/memfds")  # 201 answers
VM_TYPES = [DEFAULT_VM, SW_VM, "KVM_X86_SNP_VM", "KVM_X86_TDX_VM"]


class Errno(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.name = body.get("errno")
        self.body = body


class Kvm:
    """One session of profile guest-memfd (or rfc-v2)."""

    def __init__(self, c: httpx.AsyncClient, sid: str) -> None:
        self.c = c
        self.base = f"{API}/{sid}"

    @classmethod
    async def open(cls, c: httpx.AsyncClient, profile: str = "guest-memfd") -> Kvm:
        r = await c.post(API, json={"profile": profile})
        assert r.status_code == 201, r.text
        return cls(c, str(r.json()["id"]))

    async def call(self, method: str, path: str, body: Any = None, ok: int = 200) -> Any:
        r = await self.c.request(method, self.base + path, json=body)
        if r.status_code == ok:
            return r.json() if r.content else None
        assert r.status_code in (404, 409), f"{method} {path} {body}: {r.status_code} {r.text}"
        assert r.status_code != 500
        raise Errno(r.status_code, r.json())

    async def errno(self, method: str, path: str, body: Any = None) -> str | None:
        """The errno name the call answers (None: it succeeded)."""
        try:
            await self.call(method, path, body, ok=201 if path.endswith(CREATED) else 200)
        except Errno as e:
            return e.name
        return None

    # ---- VMs and files ----
    async def vm(self, type: str = DEFAULT_VM, name: str = "vm") -> str:
        return str((await self.call("POST", "/vms", {"name": name, "type": type}, ok=201))["vm_id"])

    async def caps(self, vm: str) -> dict[str, int]:
        return dict(await self.call("GET", f"/vms/{vm}/capabilities"))

    async def gmem(self, vm: str, size: int, flags: list[str] | None = None) -> int:
        body = {"size": size, "flags": flags or []}
        return int((await self.call("POST", f"/vms/{vm}/guest_memfd", body, ok=201))["fd"])

    async def memfd(self, size: int) -> int:
        fd = int((await self.call("POST", "/memfds", {"name": "ram", "flags": []}, ok=201))["fd"])
        await self.call("POST", f"/files/{fd}/ftruncate", {"length": size})
        return fd

    async def file(self, fd: int) -> dict[str, Any]:
        return dict(await self.call("GET", f"/files/{fd}"))

    async def mmap(
        self, fd: int, length: int, flags: list[str] | None = None, offset: int = 0
    ) -> tuple[int, int]:
        body = {"offset": offset, "length": length, "prot": RW, "flags": flags or SHARED}
        m = await self.call("POST", f"/files/{fd}/mmap", body, ok=201)
        return int(m["map_id"]), int(m["addr"])

    async def munmap(self, map_id: int) -> None:
        await self.call("DELETE", f"/mappings/{map_id}", ok=204)

    async def fallocate(self, fd: int, offset: int, length: int, punch: bool = False) -> None:
        mode = [KEEP, PUNCH] if punch else [KEEP]
        await self.call(
            "POST", f"/files/{fd}/fallocate", {"mode": mode, "offset": offset, "len": length}
        )

    async def close(self, fd: int) -> None:
        await self.call("POST", f"/files/{fd}/close", ok=204)

    # ---- memslots, attributes ----
    async def region(
        self,
        vm: str,
        slot: int,
        gpa: int,
        size: int,
        uaddr: int = 0,
        gmem: int | None = None,
        offset: int = 0,
        flags: list[str] | None = None,
    ) -> Any:
        body = {
            "slot": slot,
            "flags": flags if flags is not None else ([GMEM] if gmem is not None else []),
            "guest_phys_addr": gpa,
            "memory_size": size,
            "userspace_addr": uaddr,
            "guest_memfd_offset": offset,
            "guest_memfd": gmem if gmem is not None else 0,
        }
        return await self.call("POST", f"/vms/{vm}/memory_regions", body)

    async def attrs(self, vm: str, gpa: int, size: int, private: bool) -> None:
        body = {
            "address": gpa,
            "size": size,
            "attributes": [PRIVATE] if private else [],
            "flags": 0,
        }
        await self.call("POST", f"/vms/{vm}/memory_attributes", body)

    # ---- vCPUs and host access ----
    async def vcpu(self, vm: str) -> int:
        return int((await self.call("POST", f"/vms/{vm}/vcpus", {}, ok=201))["vcpu_id"])

    async def access(
        self,
        vm: str,
        cpu: int,
        gpa: int,
        write: bool = False,
        value: int = 0,
        private: bool | None = None,
    ) -> dict[str, Any]:
        body = {"gpa": gpa, "write": write, "private": private, "value": value}
        return dict(await self.call("POST", f"/vms/{vm}/vcpus/{cpu}/access", body))

    async def guest_read(self, vm: str, cpu: int, gpa: int) -> int:
        a = await self.access(vm, cpu, gpa)
        assert a["exit"] is None, a
        return int(a["value"])

    async def guest_write(self, vm: str, cpu: int, gpa: int, value: int) -> None:
        a = await self.access(vm, cpu, gpa, True, value)
        assert a["exit"] is None, a

    async def host(
        self, map_id: int, offset: int, write: bool = False, value: int = 0
    ) -> dict[str, Any]:
        """The contract's answer: {"signal", "value"} (further fields left out)."""
        body = {"offset": offset, "write": write, "value": value}
        a = await self.call("POST", f"/mappings/{map_id}/access", body)
        return {"signal": a["signal"], "value": a["value"]}

    async def host_read(self, map_id: int, offset: int) -> int:
        a = await self.host(map_id, offset)
        assert a["signal"] is None, a
        return int(a["value"])

    async def host_write(self, map_id: int, offset: int, value: int) -> None:
        a = await self.host(map_id, offset, True, value)
        assert a["signal"] is None, a


async def has_kvm_side(c: httpx.AsyncClient) -> bool:
    """Whether this build's service has the KVM side (POST /vms is routed)."""
    k = await Kvm.open(c)
    r = await c.post(f"{k.base}/vms", json={"name": "probe", "type": DEFAULT_VM})
    return r.status_code != 404 or r.json().get("errno") not in (None, "ENOENT")
