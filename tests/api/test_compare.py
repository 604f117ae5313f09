"""POST /api/v1/sessions/{sid}/compare: a session's log against this machine's kernel.

On the guest-memfd profile (today's kernel) engine and kernel must agree op by op,
random logs included; on rfc-v2 the differences are intended and say why. Skipped,
with the reason, where this machine has no memfd (or no /dev/kvm)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import oracle
from app.service.scenarios import SCENARIOS
from app.settings import Settings
from tests.api.helpers import Server, new_session, running, with_
from tests.budget import DERANDOMIZE, examples

MEMFD_OK, MEMFD_WHY = oracle.available()
KVM_OK, KVM_WHY = oracle.kvm_available()
needs_memfd = pytest.mark.skipif(not MEMFD_OK, reason=f"no memfd here: {MEMFD_WHY}")
needs_kvm = pytest.mark.skipif(not KVM_OK, reason=f"no KVM guest_memfd here: {KVM_WHY}")
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


def op(opname: str, /, **args: Any) -> dict[str, Any]:
    return {"op": opname, "args": args}


async def compare(c: httpx.AsyncClient, ops: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
    profile = body.pop("profile", "guest-memfd")
    r = await c.post(API, json={"trace": {"profile": profile, "phys_pages": 16384, "ops": ops}})
    assert r.status_code == 201, r.text
    r = await c.post(f"{API}/{r.json()['id']}/compare", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


@needs_memfd
@needs_kvm
@pytest.mark.anyio
async def test_the_guest_memfd_profile_agrees_with_the_kernel(client: httpx.AsyncClient) -> None:
    ops = [
        op("memfd_create", name="a", flags=["MFD_ALLOW_SEALING", "MFD_NOEXEC_SEAL"]),
        op("fcntl", fd=3, cmd="F_GET_SEALS"),
        op("ftruncate", fd=3, length=8192),
        op("pwrite", fd=3, offset=100, data_b64=base64.b64encode(b"hello").decode()),
        op("pread", fd=3, offset=98, count=10),
        op("mmap", fd=3, offset=0, length=4096, prot=["PROT_READ"], flags=["MAP_SHARED"]),
        op("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_WRITE"]),
        op("munmap", map_id=1),
        op("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_WRITE"]),
        op("fallocate", fd=3, mode=PUNCH, offset=0, len=4096),
        op("guest_memfd_create", size=65536, flags=["GUEST_MEMFD_FLAG_MMAP"]),
        op("fallocate", fd=4, mode=["FALLOC_FL_KEEP_SIZE"], offset=0, len=8192),
        op("pread", fd=4, offset=0, count=1),
        op("ftruncate", fd=4, length=0),
        op("close", fd=3),
        op("memfd_create", name="b"),
    ]
    out = await compare(client, ops)
    assert out["available"] and out["kvm_available"]
    assert out["unexpected"] == 0, [r for r in out["rows"] if r["status"] == "diverge"]
    assert [r["status"] for r in out["rows"]] == ["agree"] * len(ops)
    assert out["rows"][0]["engine"]["value"] == {"fd": 3, "size": 0}
    assert out["rows"][4]["kernel"]["value"]["nbytes"] == 10
    assert out["rows"][6]["engine"]["errno"] == "EBUSY" == out["rows"][6]["kernel"]["errno"]
    assert out["rows"][-1]["kernel"]["value"]["fd"] == 3  # the lowest free number again
    assert out["used_bytes"] == 5 + 8192


@needs_memfd
@pytest.mark.anyio
async def test_rfc_differences_are_intended_with_the_reason(client: httpx.AsyncClient) -> None:
    ops = [
        op("memfd_create", name="vm0", flags=["MFD_ALLOW_SEALING"]),
        op("fcntl", fd=3, cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"]),
        op("ftruncate", fd=3, length=8192),
        op("pread", fd=3, offset=0, count=8),
        op("owner_create", name="kvm0", kind="kvm"),
        op("register_guest", fd=3, owner_id="0"),
        op("get_lock_pfn", fd=3, index=0, alloc=True),
        op("memfd_create", name="x", flags=["MFD_EXEC"]),
        op("memfd_create", name="y"),
        op("ftruncate", fd=4, length=4096),
    ]
    errnos = {3: "EPERM", 7: "EINVAL"}
    for i, e in errnos.items():
        ops[i]["errno"] = e
    out = await compare(client, ops, profile="rfc-v2")
    rows = out["rows"]
    assert out["unexpected"] == 0, rows
    st_ = [r["status"] for r in rows]
    assert st_ == ["agree", "intended", "agree", *["intended"] * 5, "agree", "agree"]
    assert rows[1]["kernel"] is None and "F_SEAL_EXEC" in rows[1]["reason"]
    assert rows[3]["kernel"]["ok"] and "F_SEAL_GUEST (op #2)" in rows[3]["reason"]
    assert "no userspace twin" in rows[4]["reason"] and not rows[4]["diverges"]
    assert "MFD_NOEXEC_SEAL / MFD_EXEC" in rows[7]["reason"] and rows[7]["diverges"]
    # the kernel's extra file was closed again: both call the next one fd 4
    assert rows[8]["engine"]["value"]["fd"] == rows[8]["kernel"]["value"]["fd"] == 4


@needs_memfd
@pytest.mark.anyio
async def test_the_byte_budget_skips_and_says_so(settings: Settings) -> None:
    async with running(with_(settings, compare_bytes=1 << 20)) as (_, c):
        ops = [
            op("memfd_create", name="big"),
            op("fallocate", fd=3, mode=[], offset=0, len=2 << 20),
            op("pread", fd=3, offset=0, count=4),
            op("fallocate", fd=3, mode=[], offset=0, len=4096),
        ]
        out = await compare(c, ops)
    rows = out["rows"]
    assert [r["status"] for r in rows] == ["agree", "skipped", "follows", "follows"]
    assert rows[1]["kernel"] is None and "budget is 1048576" in rows[1]["reason"]
    assert "after op #2" in rows[2]["reason"]
    assert out["budget_bytes"] == 1 << 20 and out["used_bytes"] == 4096
    assert out["unexpected"] == 0


@pytest.mark.anyio
async def test_turned_off_says_so_plainly(settings: Settings) -> None:
    async with running(with_(settings, compare_kernel=False)) as (_, c):
        sid = await new_session(c)
        r = await c.post(f"{API}/{sid}/compare")
        assert r.status_code == 200
        out = r.json()
        assert out["available"] is False and "SEALSCOPE_COMPARE_KERNEL" in out["reason"]
        assert out["rows"] == []
        assert (await c.post(f"{API}/nope/compare")).status_code == 404


@needs_memfd
@pytest.mark.anyio
async def test_window_and_only_diverging(client: httpx.AsyncClient) -> None:
    ops = [op("memfd_create", name=f"f{i}") for i in range(6)]
    out = await compare(client, ops, first=3, limit=2)
    assert [r["n"] for r in out["rows"]] == [3, 4] and out["next"] == 5
    out = await compare(client, ops, only_diverging=True)
    assert out["rows"] == [] and out["counts"] == {"agree": 6}


# ---- random logs through the service: the guest-memfd profile must agree op by op ----
FDS = st.sampled_from([3, 4, 5, 9])
LENGTHS = st.sampled_from([-1, 0, 1, 4095, 4096, 8192, 12288, 65536])
OFFSETS = st.sampled_from([-4096, 0, 1, 4096, 8192, 65536, 2 << 20])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


OPS = st.one_of(
    st.builds(
        lambda f: op("memfd_create", name="m", flags=f),
        st.lists(
            st.sampled_from(
                ["MFD_ALLOW_SEALING", "MFD_CLOEXEC", "MFD_NOEXEC_SEAL", "MFD_EXEC", "MFD_HUGETLB"]
            ),
            max_size=2,
            unique=True,
        ),
    ),
    st.builds(
        lambda s, f: op("guest_memfd_create", size=s, flags=f),
        st.sampled_from([0, 4095, 4096, 65536]),
        st.lists(st.sampled_from(["GUEST_MEMFD_FLAG_MMAP"]), max_size=1),
    ),
    st.builds(lambda fd, n: op("ftruncate", fd=fd, length=n), FDS, LENGTHS),
    st.builds(
        lambda fd, s: op("fcntl", fd=fd, cmd="F_ADD_SEALS", seals=s),
        FDS,
        st.lists(
            st.sampled_from(
                [
                    "F_SEAL_SEAL",
                    "F_SEAL_SHRINK",
                    "F_SEAL_GROW",
                    "F_SEAL_WRITE",
                    "F_SEAL_FUTURE_WRITE",
                    "F_SEAL_EXEC",
                ]
            ),
            max_size=2,
            unique=True,
        ),
    ),
    st.builds(lambda fd: op("fcntl", fd=fd, cmd="F_GET_SEALS"), FDS),
    st.builds(
        lambda fd, m, o, n: op("fallocate", fd=fd, mode=m, offset=o, len=n),
        FDS,
        st.sampled_from([[], ["FALLOC_FL_KEEP_SIZE"], PUNCH, ["FALLOC_FL_PUNCH_HOLE"]]),
        OFFSETS,
        LENGTHS,
    ),
    st.builds(
        lambda fd, o, n: op("pread", fd=fd, offset=o, count=n), FDS, OFFSETS, st.integers(0, 64)
    ),
    st.builds(
        lambda fd, o, d: op("pwrite", fd=fd, offset=o, data_b64=_b64(d)),
        FDS,
        OFFSETS,
        st.binary(max_size=16),
    ),
    st.builds(
        lambda fd, o, n, p, f: op("mmap", fd=fd, offset=o, length=n, prot=p, flags=f),
        FDS,
        st.sampled_from([0, 4096, 1]),
        st.sampled_from([0, 4096, 8192]),
        st.sampled_from([["PROT_READ"], ["PROT_READ", "PROT_WRITE"]]),
        st.sampled_from([["MAP_SHARED"], ["MAP_PRIVATE"]]),
    ),
    st.builds(lambda m: op("munmap", map_id=m), st.integers(0, 4)),
    st.builds(lambda fd: op("close", fd=fd), FDS),
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = Server(tmp_path_factory.mktemp("compare") / "data").start()
    yield s
    s.kill()


@needs_memfd
@needs_kvm
@settings(
    max_examples=examples(40),
    derandomize=DERANDOMIZE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPS, min_size=1, max_size=20))
def test_random_logs_agree_op_by_op(live: Server, ops: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as c:
        trace = {"profile": "guest-memfd", "phys_pages": 4096, "ops": ops}
        r = c.post(API, json={"trace": trace})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        out = c.post(f"{API}/{sid}/compare", json={"limit": 100}).json()
        c.delete(f"{API}/{sid}")
    bad = [
        (row["n"], row["op"], row["args"], row["engine"], row["kernel"], row["status"])
        for row in out["rows"]
        if row["status"] != "agree"
    ]
    assert not bad, bad


@needs_memfd
@pytest.mark.anyio
async def test_hugetlb_mmap_at_an_unaligned_offset(client: httpx.AsyncClient) -> None:
    """Linux checks a hugetlbfs mapping's offset against the huge page size (EINVAL)
    before it tries to reserve huge pages (ENOMEM). Found by the random logs below: the
    engine answered ENOMEM."""
    ops = [
        op("memfd_create", name="m", flags=["MFD_HUGETLB"]),
        op("mmap", fd=3, offset=4096, length=4096, prot=["PROT_READ"], flags=["MAP_SHARED"]),
    ]
    out = await compare(client, ops)
    assert out["unexpected"] == 0, out["rows"][1]


@needs_memfd
@needs_kvm
@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.anyio
async def test_no_walkthrough_diverges_without_a_reason(
    client: httpx.AsyncClient, name: str
) -> None:
    r = await client.post(f"/api/v1/scenarios/{name}/sessions", json={"steps": None})
    sid = r.json()["id"]
    out = (await client.post(f"{API}/{sid}/compare")).json()
    assert out["compared"] == len(SCENARIOS[name].steps)
    assert out["unexpected"] == 0, [r for r in out["rows"] if r["status"] == "diverge"]
    assert all((row["status"] == "agree") == (row["reason"] is None) for row in out["rows"])


@needs_memfd
@pytest.mark.anyio
async def test_the_engines_open_file_limit_is_intended(client: httpx.AsyncClient) -> None:
    ops = [op("memfd_create", name=f"f{i}") for i in range(1022)]
    out = await compare(client, ops, first=1020, limit=3)
    assert [r["status"] for r in out["rows"]] == ["agree", "agree", "intended"]
    assert out["rows"][2]["engine"]["errno"] == "EMFILE" and "1024" in out["rows"][2]["reason"]
