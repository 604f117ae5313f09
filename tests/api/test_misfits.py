"""Odd inputs the hostile-client run found answered wrongly (issue 10, items 5 and 11):
bodies that are not JSON, strict booleans, a page of a closed file migrating, the Allow
header, the words of an overflowing pread, a seal the profile's kernel does not have."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.api.helpers import new_session, running

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        b'{"seq": "\xff\xfe"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"seq": ' + b"1" * 5001 + b"}",
    ],
    ids=["invalid-utf8", "nested-100000", "5001-digits"],
)
async def test_a_body_that_is_not_json_is_422_einval(
    client: httpx.AsyncClient, body: bytes
) -> None:
    sid = await new_session(client)
    for path in (f"{API}/{sid}/rewind", API, f"{API}/{sid}/memfds"):
        r = await client.post(path, content=body, headers=JSON)
        assert r.status_code == 422, (path, r.text)
        err = r.json()
        assert (err["errno"], err["errno_value"]) == ("EINVAL", 22)
        assert "JSON" in err["message"], err["message"]


async def test_import_of_a_deeply_nested_trace_is_a_clear_refusal(
    client: httpx.AsyncClient,
) -> None:
    # raise_app_exceptions stays on: an exception reaching the server fails the test
    r = await client.post("/import", data={"trace": "[" * 100_000})
    assert r.status_code == 422
    assert "not JSON" in r.text


async def test_migrating_a_page_of_a_closed_file(client: httpx.AsyncClient) -> None:
    sid = await new_session(client, phys_pages=4096)
    b = f"{API}/{sid}"
    assert (await client.post(f"{b}/memfds", json={"name": "m"})).json()["fd"] == 3
    data = base64.b64encode(b"hi").decode()
    assert (
        await client.post(f"{b}/files/3/pwrite", json={"offset": 0, "data_b64": data})
    ).is_success
    body = {"offset": 0, "length": 4096, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}
    assert (await client.post(f"{b}/files/3/mmap", json=body)).status_code in (200, 201)
    pfn = (await client.get(f"{b}/files/3/pages")).json()["extents"][0]["pfn"]
    assert (await client.post(f"{b}/files/3/close")).is_success  # the mapping keeps it
    r = await client.post(f"{b}/migrate_page", json={"pfn": pfn})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["from_pfn"] == pfn and moved["pfn"] != pfn
    assert moved["fd"] is None and moved["index"] == 0
    r = await client.post(f"{b}/migrate_page", json={"pfn": moved["pfn"]})
    assert r.status_code == 200, r.text  # and again, from where it went


async def test_an_unexpected_error_keeps_the_connection(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.service import ops

    def boom(m: object, a: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(ops.OPS, "close", ops.OPS["close"].__class__("close", ops.FdArgs, boom))
    async with running(settings) as (_, c):  # ASGITransport raises what reaches the server
        sid = await new_session(c)
        r = await c.post(f"{API}/{sid}/files/3/close")
        assert r.status_code == 409 and r.json()["errno"] == "EIO"


@pytest.mark.parametrize("value", [False, True, 0.0])
async def test_steps_must_be_an_integer(client: httpx.AsyncClient, value: object) -> None:
    r = await client.post("/api/v1/scenarios/rfc-lifecycle/sessions", json={"steps": value})
    assert r.status_code == 422 and r.json()["errno"] == "EINVAL", r.text


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
async def test_only_diverging_must_be_a_boolean(client: httpx.AsyncClient, value: object) -> None:
    sid = await new_session(client)
    for path, body in (
        ("diff", {"variant": "multi_owner", "only_diverging": value}),
        ("compare", {"only_diverging": value}),
    ):
        r = await client.post(f"{API}/{sid}/{path}", json=body)
        assert r.status_code == 422 and r.json()["errno"] == "EINVAL", (path, r.text)


async def test_seal_exec_under_rfc_v2_is_the_kernels_einval(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    b = f"{API}/{sid}"
    await client.post(f"{b}/memfds", json={"flags": ["MFD_ALLOW_SEALING"]})
    r = await client.post(
        f"{b}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_EXEC"]}
    )
    assert r.status_code == 409, r.text
    err = r.json()
    assert (err["errno"], err["op"]) == ("EINVAL", "F_ADD_SEALS")
    assert "F_SEAL_EXEC" in err["message"]
    seals = (await client.get(f"{b}/files/3")).json()["seals"]
    assert seals == []  # and F_SEAL_GUEST (the same bit in the RFC) was not set
    trace = (await client.get(f"{b}/trace")).json()
    assert trace["ops"][-1]["errno"] == "EINVAL"
    assert (await client.post(API, json={"trace": trace})).status_code == 201
    await client.post(f"{b}/files/3/fcntl", json={"cmd": "F_GET_SEALS"})
    cmp = (await client.post(f"{b}/compare", json={})).json()
    if cmp["available"]:  # the kernel (6.3+) takes F_SEAL_EXEC: a difference on purpose
        assert [r["status"] for r in cmp["rows"]] == ["agree", "intended", "intended"]
        assert cmp["unexpected"] == 0


async def test_allow_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    r = await client.options(f"{API}/{sid}")
    assert r.status_code == 405
    allow = {m.strip() for m in r.headers["allow"].split(",")}
    assert {"GET", "DELETE"} <= allow, allow
    r = await client.put(API)
    assert r.status_code == 405 and "POST" in r.headers["allow"]


async def test_pread_past_the_largest_offset_says_so(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    await client.post(f"{API}/{sid}/memfds", json={})
    r = await client.post(f"{API}/{sid}/files/3/pread", json={"offset": 2**63 - 1, "count": 1})
    assert r.status_code == 409 and r.json()["errno"] == "EINVAL"
    assert "negative" not in r.json()["message"] and "2^63" in r.json()["message"]


def _read_only(path: Path) -> Callable[[], None]:
    """Make directory `path` read-only for this process (root: chattr +i, since root
    writes through the mode bits); returns the undo."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return lambda: path.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("root, and this filesystem has no immutable attribute (chattr +i)")
    return lambda: subprocess.run([chattr, "-i", str(path)], check=True)


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-db"])
async def test_a_read_only_data_directory_is_named_at_start(
    settings: Settings, existing: bool
) -> None:
    settings.data.mkdir(parents=True)
    if existing:
        async with running(settings) as (_, c):
            await new_session(c)
    undo = _read_only(settings.data)
    try:
        with pytest.raises(RuntimeError) as info:
            async with running(settings):
                pass
    finally:
        undo()
    text = str(info.value)
    assert str(settings.data) in text and "writ" in text, text
    assert "disk I/O error" not in text
