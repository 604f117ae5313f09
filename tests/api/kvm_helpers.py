"""Helpers of the KVM-side API tests: every call checks the engine's invariants after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from app.settings import Settings
from tests.api.helpers import running

API = "/api/v1/sessions"
MiB = 1 << 20
PAGE = 4096
GM = ["KVM_MEM_GUEST_MEMFD"]


class Kvm:
    """One session driven over REST, with ss_check after every request."""

    def __init__(self, app: FastAPI, c: httpx.AsyncClient, sid: str) -> None:
        self.app, self.c, self.sid = app, c, sid
        self.b = f"{API}/{sid}"

    def check(self) -> None:
        self.app.state.registry.get(self.sid).machine.check()

    async def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        r = await self.c.request(method, self.b + path, json=body)
        self.check()
        assert r.status_code == status, f"{method} {path} {body}: {r.status_code} {r.text}"
        return r.json()

    async def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        return await self.call("POST", path, {} if body is None else body, status)

    async def close(self, fd: int) -> None:
        assert (await self.c.post(f"{self.b}/files/{fd}/close")).status_code == 204
        self.check()

    async def get(self, path: str) -> Any:
        return await self.call("GET", path)

    async def errno(self, path: str, body: Any, status: int = 409) -> dict[str, Any]:
        out: dict[str, Any] = await self.post(path, body, status)
        return out

    async def vm(self, type: str = "KVM_X86_SW_PROTECTED_VM", vcpu: bool = True) -> str:
        vm = await self.post("/vms", {"name": "vm", "type": type}, 201)
        if vcpu:
            await self.post(f"/vms/{vm['vm_id']}/vcpus", {}, 201)
        return str(vm["vm_id"])

    async def gmem(self, vm: str, size: int = 2 * MiB, flags: list[str] | None = None) -> int:
        f = await self.post(f"/vms/{vm}/guest_memfd", {"size": size, "flags": flags or []}, 201)
        return int(f["fd"])

    async def shared(self, size: int = 2 * MiB) -> tuple[int, int, int]:
        """A memfd of `size` bytes the VMM maps: fd, map id, address."""
        fd = (await self.post("/memfds", {"name": "shared"}, 201))["fd"]
        await self.post(f"/files/{fd}/ftruncate", {"length": size})
        mp = await self.post(
            f"/files/{fd}/mmap",
            {
                "offset": 0,
                "length": size,
                "prot": ["PROT_READ", "PROT_WRITE"],
                "flags": ["MAP_SHARED"],
            },
            201,
        )
        return int(fd), int(mp["map_id"]), int(mp["addr"])

    async def region(self, vm: str, status: int = 200, **body: Any) -> dict[str, Any]:
        out: dict[str, Any] = await self.post(f"/vms/{vm}/memory_regions", body, status)
        return out

    async def access(self, vm: str, gpa: int, **body: Any) -> dict[str, Any]:
        out: dict[str, Any] = await self.post(f"/vms/{vm}/vcpus/0/access", {"gpa": gpa, **body})
        return out


async def kvm_session(tmp_path: Path, **body: Any) -> AsyncIterator[Kvm]:
    """A running app with one session made from `body`."""
    settings = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    async with running(settings) as (app, c):
        r = await c.post(API, json=body)
        assert r.status_code == 201, r.text
        yield Kvm(app, c, r.json()["id"])


async def mmapped_gmem_vm(k: Kvm) -> tuple[str, int, int]:
    """A VM with a 4-page guest_memfd (MMAP, INIT_SHARED) the VMM maps and slot 0
    binds at gpa 0: (vm_id, fd, map_id)."""
    vm = await k.vm()
    g = await k.gmem(vm, 4 * PAGE, ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"])
    mp = await k.post(
        f"/files/{g}/mmap",
        {
            "offset": 0,
            "length": 4 * PAGE,
            "prot": ["PROT_READ", "PROT_WRITE"],
            "flags": ["MAP_SHARED"],
        },
        201,
    )
    await k.region(
        vm, slot=0, flags=GM, memory_size=4 * PAGE, userspace_addr=mp["addr"], guest_memfd=g
    )
    return vm, g, int(mp["map_id"])
