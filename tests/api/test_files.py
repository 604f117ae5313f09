"""Files: memfd / guest_memfd and the syscall-like operations, with their errors."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.api.helpers import new_session

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


@pytest.fixture
async def sid(client: httpx.AsyncClient) -> str:
    s = await new_session(client)
    r = await client.post(f"{API}/{s}/memfds", json={"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]})
    assert r.status_code == 201
    return s


async def test_memfd_create_answers_the_file(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    r = await client.post(
        f"{API}/{s}/memfds", json={"name": "vm0", "flags": ["MFD_ALLOW_SEALING", "MFD_CLOEXEC"]}
    )
    assert r.status_code == 201
    f = r.json()
    assert {k: f[k] for k in ("fd", "kind", "name", "size", "seals", "owners", "nr_pages")} == {
        "fd": 3,
        "kind": "memfd",
        "name": "vm0",
        "size": 0,
        "seals": [],
        "owners": [],
        "nr_pages": 0,
    }
    assert sorted(f["flags"]) == ["MFD_ALLOW_SEALING", "MFD_CLOEXEC"]
    assert f["mappings"] == 0
    assert (await client.get(f"{API}/{s}/files/3")).json() == f


async def test_memfd_without_sealing_is_sealed(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    r = await client.post(f"{API}/{s}/memfds", json={"name": "x", "flags": []})
    assert r.json()["seals"] == ["F_SEAL_SEAL"]


async def test_memfd_name_too_long_is_einval(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    r = await client.post(f"{API}/{s}/memfds", json={"name": "n" * 250})
    assert r.status_code == 409 and r.json()["errno"] == "EINVAL"


async def test_guest_memfd(client: httpx.AsyncClient) -> None:
    s = await new_session(client, profile="guest-memfd")
    r = await client.post(
        f"{API}/{s}/guest_memfds", json={"size": 2097152, "flags": ["GUEST_MEMFD_FLAG_MMAP"]}
    )
    assert r.status_code == 201
    assert r.json()["kind"] == "guest_memfd" and r.json()["size"] == 2097152
    r = await client.post(f"{API}/{s}/guest_memfds", json={"size": 4095})
    assert r.status_code == 409 and r.json()["errno"] == "EINVAL"
    r = await client.post(f"{API}/{s}/files/3/pread", json={"offset": 0, "count": 1})
    assert r.status_code == 409 and r.json()["errno"] == "ESPIPE"


async def test_the_contract_example_error(client: httpx.AsyncClient, sid: str) -> None:
    await client.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 8192})
    r = await client.post(
        f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}
    )
    assert r.status_code == 409
    body = r.json()
    assert {k: body[k] for k in ("errno", "errno_value", "op", "message")} == {
        "errno": "EBUSY",
        "errno_value": 16,
        "op": "F_ADD_SEALS",
        "message": "F_SEAL_GUEST needs an empty file (size is 8192)",
    }


async def test_fcntl_add_and_get(client: httpx.AsyncClient, sid: str) -> None:
    r = await client.post(
        f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}
    )
    assert r.json() == {"seals": ["F_SEAL_GUEST"], "value": 0x20}
    r = await client.post(f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_GET_SEALS"})
    assert r.json() == {"seals": ["F_SEAL_GUEST"], "value": 0x20}
    r = await client.post(
        f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_EXEC"]}
    )
    assert r.status_code == 422  # no F_SEAL_EXEC in rfc-v2
    r = await client.post(f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_SET_SEALS"})
    assert r.status_code == 422


async def test_ftruncate_and_fallocate(client: httpx.AsyncClient, sid: str) -> None:
    r = await client.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 65536})
    assert r.status_code == 200 and r.json()["size"] == 65536
    r = await client.post(
        f"{API}/{sid}/files/3/fallocate", json={"mode": [], "offset": 0, "len": 16384}
    )
    assert r.status_code == 200
    assert r.json()["nr_pages"] == 4 and r.json()["pending"] is False
    r = await client.post(
        f"{API}/{sid}/files/3/fallocate", json={"mode": PUNCH, "offset": 4096, "len": 4096}
    )
    assert r.json()["nr_pages"] == 3
    r = await client.post(
        f"{API}/{sid}/files/3/fallocate",
        json={"mode": ["FALLOC_FL_PUNCH_HOLE"], "offset": 0, "len": 4096},
    )
    assert r.status_code == 409 and r.json()["op"] == "fallocate"


@pytest.mark.parametrize(
    ("offset", "length", "errno"),
    [(-1, 4096, "EINVAL"), (0, 0, "EINVAL"), (0, -4096, "EINVAL"), (2**63 - 4096, 8192, "EFBIG")],
    ids=["negative-offset", "zero-len", "negative-len", "overflow"],
)
async def test_fallocate_bad_ranges_are_kernel_errors(
    client: httpx.AsyncClient, sid: str, offset: int, length: int, errno: str
) -> None:
    r = await client.post(
        f"{API}/{sid}/files/3/fallocate", json={"mode": [], "offset": offset, "len": length}
    )
    assert r.status_code == 409 and r.json()["errno"] == errno


async def test_pwrite_then_pread(client: httpx.AsyncClient, sid: str) -> None:
    data = base64.b64encode(b"hello, guest").decode()
    r = await client.post(f"{API}/{sid}/files/3/pwrite", json={"offset": 100, "data_b64": data})
    assert r.json() == {"nbytes": 12}
    r = await client.post(f"{API}/{sid}/files/3/pread", json={"offset": 100, "count": 5})
    assert r.json() == {"nbytes": 5, "data_b64": base64.b64encode(b"hello").decode()}
    r = await client.post(f"{API}/{sid}/files/3/pread", json={"offset": 0, "count": 2**40})
    assert r.json()["nbytes"] == 112  # a long read is short, as in the kernel


@pytest.mark.parametrize("data", ["%%%", "aGVsbG8", "aGVs bG8="], ids=["junk", "pad", "space"])
async def test_bad_base64_is_422(client: httpx.AsyncClient, sid: str, data: str) -> None:
    r = await client.post(f"{API}/{sid}/files/3/pwrite", json={"offset": 0, "data_b64": data})
    assert r.status_code == 422 and "base64" in r.json()["message"]


async def test_mmap_and_munmap(client: httpx.AsyncClient, sid: str) -> None:
    await client.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 8192})
    body = {"offset": 0, "length": 8192, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}
    r = await client.post(f"{API}/{sid}/files/3/mmap", json=body)
    assert r.status_code == 201
    m = r.json()
    # the VMM address space: right below 0x7f0000000000, page aligned
    assert m == {"map_id": m["map_id"], "fd": 3, "addr": 0x7F0000000000 - 8192, **body}
    assert (await client.get(f"{API}/{sid}/files/3")).json()["mappings"] == 1
    # a read-only MAP_SHARED mapping still blocks F_SEAL_WRITE
    r = await client.post(
        f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_WRITE"]}
    )
    assert r.status_code == 409 and r.json()["errno"] == "EBUSY"
    r = await client.delete(f"{API}/{sid}/mappings/{m['map_id']}")
    assert r.status_code == 204
    for map_id in (m["map_id"], 999, -1, 2**40):
        r = await client.delete(f"{API}/{sid}/mappings/{map_id}")
        assert r.status_code == 404, map_id


async def test_close(client: httpx.AsyncClient, sid: str) -> None:
    assert (await client.post(f"{API}/{sid}/files/3/close")).status_code == 204
    r = await client.post(f"{API}/{sid}/files/3/close")
    assert r.status_code == 404 and r.json()["errno"] == "EBADF"


@pytest.mark.parametrize("fd", [4, -1, 2**31, 2**32 + 3, -(2**63)])
async def test_unknown_fd_is_404_ebadf(client: httpx.AsyncClient, sid: str, fd: int) -> None:
    r = await client.post(f"{API}/{sid}/files/{fd}/ftruncate", json={"length": 0})
    assert r.status_code == 404 and r.json()["errno"] == "EBADF"
    r = await client.get(f"{API}/{sid}/files/{fd}")
    assert r.status_code == 404 and r.json()["errno"] == "EBADF"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("ftruncate", {"length": 2**63}),
        ("ftruncate", {"length": "12"}),
        ("ftruncate", {"length": 1.5}),
        ("ftruncate", {"length": True}),
        ("ftruncate", {}),
        ("fallocate", {"mode": ["FALLOC_FL_ZERO_RANGE"], "offset": 0, "len": 1}),
        ("fallocate", {"mode": "FALLOC_FL_KEEP_SIZE", "offset": 0, "len": 1}),
        ("fallocate", {"offset": -(2**63) - 1, "len": 1}),
        ("pread", {"offset": 0, "count": -1}),
        ("pwrite", {"offset": 0, "data_b64": 5}),
        ("mmap", {"length": 1, "flags": ["MAP_FIXED"]}),
        ("fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_NOPE"]}),
        ("fcntl", {"seals": []}),
        ("fcntl", []),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_schema_misfits_are_422(
    client: httpx.AsyncClient, sid: str, path: str, body: Any
) -> None:
    r = await client.post(f"{API}/{sid}/files/3/{path}", json=body)
    assert r.status_code == 422
    j = r.json()
    assert j["errno"] == "EINVAL" and j["message"] and isinstance(j["detail"], list)
    assert j["op"] == path


async def test_limits_of_reads_and_file_size(settings: Any) -> None:
    from tests.api.helpers import running, with_

    async with running(with_(settings, max_read_bytes=100, max_file_bytes=1 << 20)) as (_, c):
        s = await new_session(c)
        await c.post(f"{API}/{s}/memfds", json={})
        await c.post(f"{API}/{s}/files/3/ftruncate", json={"length": 4096})
        r = await c.post(f"{API}/{s}/files/3/pread", json={"offset": 0, "count": 101})
        assert r.status_code == 413 and r.json()["limit"] == "max_read_bytes"
        r = await c.post(f"{API}/{s}/files/3/pread", json={"offset": 4000, "count": 1000})
        assert r.status_code == 200 and r.json()["nbytes"] == 96
        for path, body in [
            ("ftruncate", {"length": (1 << 20) + 1}),
            ("fallocate", {"mode": [], "offset": 1 << 20, "len": 1}),
        ]:
            r = await c.post(f"{API}/{s}/files/3/{path}", json=body)
            assert r.status_code == 413 and r.json()["limit"] == "max_file_bytes"
        # past the kernel's own limit the kernel's answer wins
        r = await c.post(
            f"{API}/{s}/files/3/fallocate", json={"mode": [], "offset": 2**63 - 1, "len": 2}
        )
        assert r.status_code == 409
        assert (await c.get(f"{API}/{s}")).json()["seq"] == 4  # limits log nothing
