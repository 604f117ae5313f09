"""Temporary machines (diff, compare, at, why, rewind) count against
max_total_phys_pages while they live: 429 naming the limit past it, released after."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

import app.pages.session as session_page
from app.settings import Settings
from tests.api.helpers import new_session, running, with_

P = 4096  # frames of the test sessions


def _trace(nops: int) -> dict[str, Any]:
    ops: list[dict[str, Any]] = [{"op": "memfd_create", "args": {"name": "a", "flags": []}}]
    ops += [{"op": "fcntl", "args": {"fd": 3, "cmd": "F_GET_SEALS"}}] * (nops - 1)
    return {"profile": "rfc-v2", "phys_pages": P, "thp": "never", "ops": ops}


@pytest.mark.anyio
async def test_concurrent_diffs_are_counted_and_released(settings: Settings) -> None:
    async with running(with_(settings, max_total_phys_pages=4 * P)) as (app, c):
        r = await c.post("/api/v1/sessions", json={"trace": _trace(3000)})
        assert r.status_code == 201, r.text
        url = f"/api/v1/sessions/{r.json()['id']}/diff"
        body = {"variant": "guest-memfd", "limit": 5000, "only_diverging": True}
        answers = await asyncio.gather(*(c.post(url, json=body) for _ in range(3)))
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and codes[-1] == 429, codes  # 1 session + 2 machines fit once
        refused = next(a for a in answers if a.status_code == 429).json()
        assert refused["limit"] == "max_total_phys_pages" and refused["errno"] == "EAGAIN"
        assert app.state.registry.borrowed == 0
        assert (await c.post(url, json=body)).status_code == 200  # released when done


@pytest.mark.anyio
async def test_previews_why_and_rewind_need_room(settings: Settings) -> None:
    async with running(with_(settings, max_total_phys_pages=P + P // 2)) as (app, c):
        sid = await new_session(c, phys_pages=P)
        b = f"/api/v1/sessions/{sid}"
        assert (await c.post(f"{b}/memfds", json={"name": "x"})).status_code == 201
        assert (await c.post(f"{b}/memfds", json={"name": "y"})).status_code == 201
        for r in (
            await c.get(f"{b}/at/1"),
            await c.post(f"{b}/rewind", json={"seq": 1}),
            await c.post(f"{b}/diff", json={"variant": "guest-memfd"}),
            await c.get(f"/s/{sid}/why/2"),
            await c.get(f"/s/{sid}", params={"at": 1}),
        ):
            assert r.status_code == 429, (r.request.url, r.text)
            assert r.json()["limit"] == "max_total_phys_pages"
        assert app.state.registry.borrowed == 0
        assert (await c.get(b)).json()["seq"] == 2  # the rewind did not happen


@pytest.mark.anyio
async def test_why_reruns_the_op_off_the_event_loop(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = session_page.apply

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(session_page, "apply", spy)
    sid = await new_session(client, phys_pages=P)
    b = f"/api/v1/sessions/{sid}"
    await client.post(f"{b}/memfds", json={"name": "x"})
    r = await client.post(f"{b}/files/9/ftruncate", json={"length": 4096})
    assert r.status_code == 404
    page = await client.get(f"/s/{sid}/why/2")
    assert page.status_code == 200 and "EBADF" in page.text
    assert threads and all(t is not threading.main_thread() for t in threads)
