"""Against a real uvicorn: the live SSE stream, and schemathesis over /openapi.json."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from tests.api.helpers import Server
from tests.budget import examples

API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


def _follow(url: str, headers: dict[str, str], out: list[tuple[str, Any, str | None]]) -> None:
    """Collect (event, data, id) of an SSE stream until it ends."""
    event, data, sse_id = "message", "", None
    with (
        httpx.Client(timeout=httpx.Timeout(30, read=30)) as c,
        c.stream("GET", url, headers=headers) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line.startswith("id:"):
                sse_id = line[3:].strip()
            elif line == "":
                if data:
                    out.append((event, json.loads(data), sse_id))
                event, data, sse_id = "message", "", None


def _drive(c: httpx.Client, sid: str, rounds: int) -> None:
    b = f"{API}/{sid}/files/3"
    for i in range(rounds):
        pfn = c.post(f"{b}/get_lock_pfn", json={"index": i % 8, "alloc": True}).json()["pfn"]
        c.post(f"{b}/fallocate", json={"mode": PUNCH, "offset": (i % 8) * 4096, "len": 4096})
        c.post(f"{API}/{sid}/put_unlock_pfn", json={"pfn": pfn})
        c.post(f"{b}/fallocate", json={"mode": [], "offset": 0, "len": 8192})


def _setup(c: httpx.Client) -> str:
    sid = str(c.post(API, json={}).json()["id"])
    c.post(f"{API}/{sid}/memfds", json={"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]})
    c.post(f"{API}/{sid}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
    c.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 1 << 16})
    owner = c.post(f"{API}/{sid}/owners", json={"kind": "recorder"}).json()["owner_id"]
    c.post(f"{API}/{sid}/files/3/register_guest", json={"owner_id": owner})
    return sid


def test_sse_follower_sees_every_event_in_order(server: Server) -> None:
    with httpx.Client(base_url=server.url) as c:
        sid = _setup(c)
        got: list[tuple[str, Any, str | None]] = []
        follower = threading.Thread(
            target=_follow, args=(f"{server.url}{API}/{sid}/events/stream?after=2", {}, got)
        )
        follower.start()
        _drive(c, sid, 25)
        final = c.get(f"{API}/{sid}/events", params={"limit": 10000}).json()
        assert c.delete(f"{API}/{sid}").status_code == 204
        follower.join(timeout=30)
        assert not follower.is_alive()
    events = [d for e, d, _ in got if e == "message"]
    assert [e["seq"] for e in events] == list(range(3, final["last_seq"] + 1))
    assert events == final["events"][2:]
    assert all(i == str(d["seq"]) for e, d, i in got if e == "message")
    assert got[-1][0] == "end" and got[-1][1] == {"reason": "session deleted"}


def test_sse_resumes_after_last_event_id_and_reports_rewinds(server: Server) -> None:
    with httpx.Client(base_url=server.url) as c:
        sid = _setup(c)
        _drive(c, sid, 2)
        got: list[tuple[str, Any, str | None]] = []
        url = f"{server.url}{API}/{sid}/events/stream"
        follower = threading.Thread(target=_follow, args=(url, {"Last-Event-ID": "7"}, got))
        follower.start()
        last = c.get(f"{API}/{sid}").json()["event_seq"]
        _wait(lambda: any(d.get("seq") == last for _, d, _ in got))
        c.post(f"{API}/{sid}/rewind", json={"seq": 3})
        _wait(lambda: any(e == "rewind" for e, _, _ in got))
        c.post(f"{API}/{sid}/owners", json={"kind": "kvm"})
        _wait(lambda: got[-1][0] == "message" and got[-1][1]["op"] == "owner_create")
        c.delete(f"{API}/{sid}")
        follower.join(timeout=30)
    kinds = [(e, d.get("seq")) for e, d, _ in got]
    assert kinds[0] == ("message", 8)
    rewind = next(d for e, d, _ in got if e == "rewind")
    assert rewind == {"event_seq": 3, "seq": 3}
    after = kinds[kinds.index(("rewind", 3)) + 1]
    assert after == ("message", 4)


def test_sse_unknown_session_is_404(server: Server) -> None:
    r = httpx.get(f"{server.url}{API}/nope/events/stream")
    assert r.status_code == 404 and r.json()["errno"] == "ENOENT"


def _wait(cond: Any, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow
def test_schemathesis(server: Server) -> None:
    """Every operation of the live schema, with generated inputs: no 5xx, no answer that
    breaks the schema. Bounded: 40 examples per operation (well under a minute; more
    under SEALSCOPE_SOAK, see tests/budget.py)."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    with httpx.Client(base_url=server.url) as c:
        sid = _setup(c)
    live = {"fd": 3, "owner_id": "0", "map_id": 1}
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.specs.openapi.checks.status_code_conformance,
        schemathesis.specs.openapi.checks.content_type_conformance,
        schemathesis.specs.openapi.checks.response_schema_conformance,
    ]
    failures: list[str] = []
    codes: dict[int, int] = {}
    ops = [op.ok() for op in schema.get_all_operations() if not op.ok().path.endswith("/stream")]
    assert len(ops) > 25
    for op in ops:

        @settings(
            max_examples=examples(40),
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            params = case.path_parameters or {}
            luck = hash(str(case.body)) % 4
            if "sid" in params and luck:  # most cases hit the live session, its fd, its owner
                params["sid"] = sid
                if luck > 1:
                    params.update({k: v for k, v in live.items() if k in params})
            if case.method.upper() == "DELETE" and case.path.endswith("{sid}"):
                return  # keep the live session
            response = case.call(base_url=server.url, timeout=10)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            for check in checks:
                try:
                    case.validate_response(response, checks=[check])
                except Exception as exc:  # collect, report all at the end
                    failures.append(f"{case.method} {case.formatted_path}: {exc}"[:600])

        run()
    assert {200, 201, 404, 409, 422} <= set(codes), codes  # it reached every outcome
    assert failures == []
