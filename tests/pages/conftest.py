"""Fixtures of the page tests: a fresh app per test (lifespan running) over a tmp data
dir, an httpx client talking to it in-process, and helpers to set sessions up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings

HX = {"HX-Request": "true"}
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data=tmp_path / "data", log_requests=False, rate=0, sync="normal"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def api(c: httpx.AsyncClient, method: str, path: str, **body: Any) -> Any:
    """A call of the JSON API that must succeed; its answer (None for 204)."""
    r = await c.request(method, f"/api/v1{path}", json=body if method != "GET" else None)
    assert r.status_code < 300, r.text
    return r.json() if r.content else None


async def session(c: httpx.AsyncClient, **config: Any) -> str:
    return str((await api(c, "POST", "/sessions", **config))["id"])


async def guest_file(c: httpx.AsyncClient, sid: str, size: int = 65536) -> None:
    """fd 3: an F_SEAL_GUEST memfd of `size` bytes, registered with kvm owner "0"."""
    s = f"/sessions/{sid}"
    await api(c, "POST", f"{s}/memfds", name="vm0", flags=["MFD_ALLOW_SEALING"])
    await api(c, "POST", f"{s}/files/3/fcntl", cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"])
    await api(c, "POST", f"{s}/files/3/ftruncate", length=size)
    await api(c, "POST", f"{s}/owners", name="kvm0", kind="kvm")
    await api(c, "POST", f"{s}/files/3/register_guest", owner_id="0")


async def act(c: httpx.AsyncClient, sid: str, op: str, **form: Any) -> httpx.Response:
    """An action form posted as htmx does (urlencoded, HX-Request), fd 3 selected."""
    data = {"fd": "3", **form}
    return await c.post(f"/s/{sid}/do/{op}", data=data, headers=HX)


async def private_copy(client: httpx.AsyncClient, offset: int) -> tuple[str, int]:
    """A guest-memfd session whose memfd "ram" (fd 3, 8 KiB) is mapped MAP_PRIVATE (map 1)
    and written through it at offset: (the session id, the frame of the copy)."""
    sid = await session(client, profile="guest-memfd")
    s = f"/sessions/{sid}"
    await api(client, "POST", f"{s}/memfds", name="ram")
    await api(client, "POST", f"{s}/files/3/ftruncate", length=8192)
    body = {"offset": 0, "length": 8192, "prot": ["PROT_READ", "PROT_WRITE"]}
    await api(client, "POST", f"{s}/files/3/mmap", **body, flags=["MAP_PRIVATE"])
    await api(client, "POST", f"{s}/mappings/1/access", offset=offset, write=True, value=1)
    cow = [e for e in (await api(client, "GET", f"{s}/phys"))["extents"] if e["state"] == "cow"]
    return sid, int(cow[0]["start"])
