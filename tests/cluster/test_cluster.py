"""The cluster for real: HAProxy, workers, one PostgreSQL op log (docs/deploy.md).
Several clients on many sessions through the balancer; a worker SIGKILLed mid-burst
(every acknowledged op kept, every session answering again within seconds); two workers
racing for one session (never both writing). Loopback only, each bounded in time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from app.cluster.launch import Cluster
from app.engine import Config
from app.session import Session
from app.settings import Settings
from app.store_pg import PgStore, holders

API = "/api/v1/sessions"
PAGE = 4096
Op = tuple[int, int]  # (offset, len) of a fallocate: unique within a session's burst


def new_session(c: httpx.Client) -> str:
    r = c.post(API, json={})
    assert r.status_code == 201, r.text
    sid = str(r.json()["id"])
    assert c.post(f"{API}/{sid}/memfds", json={"name": "vm0"}).status_code == 201
    r = c.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 8192 * PAGE})
    assert r.status_code == 200, r.text
    return sid


def fallocate(c: httpx.Client, sid: str, op: Op) -> httpx.Response:
    body = {"mode": [], "offset": op[0], "len": op[1]}
    return c.post(f"{API}/{sid}/files/3/fallocate", json=body)


def stored_ops(url: str, sid: str) -> list[Op]:
    """The session's fallocates as the op log holds them (after its two set-up ops)."""
    s = PgStore(url).load_one(sid)
    assert s is not None
    assert [o.seq for o in s.ops] == list(range(1, len(s.ops) + 1))  # no gap, no dup
    return [(o.args_dict()["offset"], o.args_dict()["len"]) for o in s.ops[2:]]


def replays_clean(url: str, sid: str) -> int:
    """The stored log replays to a sound machine, as it was recorded; its length."""
    s = PgStore(url).load_one(sid)
    assert s is not None
    session = Session(sid, Config(), Settings(), 0.0)
    assert session.load(s.ops) == [] and session.damage is None
    session.machine.check()
    return len(s.ops)


def is_subsequence(small: list[Op], big: list[Op]) -> bool:
    it = iter(big)
    return all(x in it for x in small)


def test_many_clients_on_many_sessions(cluster: Callable[[int], Cluster]) -> None:
    c = cluster(3)
    errors: list[str] = []
    sids: list[list[str]] = [[] for _ in range(6)]

    def client(k: int) -> None:
        with httpx.Client(base_url=c.url, timeout=10) as h:
            mine = [new_session(h) for _ in range(3)]
            sids[k] = mine
            for i in range(30):
                r = fallocate(h, mine[i % 3], (i * PAGE, PAGE))
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    every = [s for mine in sids for s in mine]
    assert len(set(every)) == 18
    with httpx.Client(base_url=c.url, timeout=10) as h:
        for sid in every:
            assert h.get(f"{API}/{sid}").json()["seq"] == 12  # 2 set-up ops + 10
    for mine in sids:
        for j, sid in enumerate(mine):
            assert stored_ops(c.pg_url, sid) == [(i * PAGE, PAGE) for i in range(j, 30, 3)]
    # each session is held by one worker, and the balancer spread them over several
    held = holders(c.pg_url)
    assert set(every) <= set(held)
    assert set(held.values()) <= {w.pid for w in c.workers}
    assert len({held[s] for s in every}) >= 2


def _burst(url: str, sid: str, acked: list[Op], after: list[float], stop: threading.Event) -> None:
    """Drive one session until told to stop; keep every acknowledged op, and the times
    of the answers."""
    with httpx.Client(base_url=url, timeout=5) as h:
        i = 0
        while not stop.is_set() and i < 8000:
            op = (i * PAGE, PAGE)
            i += 1
            try:
                r = fallocate(h, sid, op)
            except httpx.HTTPError:
                time.sleep(0.01)
                continue
            if r.status_code == 200:
                acked.append(op)
                after.append(time.monotonic())
            else:  # the balancer's 502/503 while its worker dies: not acknowledged
                assert r.status_code in (502, 503), r.text
                time.sleep(0.01)


def test_sigkill_of_a_worker_mid_burst(cluster: Callable[[int], Cluster]) -> None:
    c = cluster(3)
    with httpx.Client(base_url=c.url, timeout=10) as h:
        sids = [new_session(h) for _ in range(6)]
        for sid in sids:  # each on its owner now
            assert h.get(f"{API}/{sid}").status_code == 200
    held = holders(c.pg_url)
    victim = max(c.workers, key=lambda w: sum(held.get(s) == w.pid for s in sids))
    moved = [s for s in sids if held.get(s) == victim.pid]
    assert moved
    acked: dict[str, list[Op]] = {s: [] for s in sids}
    times: dict[str, list[float]] = {s: [] for s in sids}
    stop = threading.Event()
    threads = [
        threading.Thread(target=_burst, args=(c.url, s, acked[s], times[s], stop)) for s in sids
    ]
    for t in threads:
        t.start()
    time.sleep(1.0)
    killed = time.monotonic()
    victim.kill()  # SIGKILL in the middle of the burst
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert sum(len(v) for v in acked.values()) > 100
    for sid in sids:
        before = [t for t in times[sid] if t < killed]
        again = [t for t in times[sid] if t > killed]
        assert before and again, f"session {sid[:8]}: no answer before or after the kill"
        assert again[0] - killed < 2.5  # answering again within seconds
        logged = stored_ops(c.pg_url, sid)
        assert is_subsequence(acked[sid], logged)  # every acknowledged op is kept
        assert len(logged) <= len(acked[sid]) + 1  # and at most the one in flight more
        n = replays_clean(c.pg_url, sid)
        with httpx.Client(base_url=c.url, timeout=10) as h:
            assert h.get(f"{API}/{sid}").json()["seq"] == n
    assert set(holders(c.pg_url).values()) <= {w.pid for w in c.workers if w is not victim}


def _race(url: str, sid: str, base: int, acked: list[Op], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as h:
        for i in range(4000):
            if stop.is_set():
                return
            op = ((base + i) * PAGE, PAGE)
            r = fallocate(h, sid, op)
            if r.status_code == 200:
                acked.append(op)
            else:  # moved away mid-wait (404) or still held by the other (503)
                assert r.status_code in (404, 503), r.text


def test_two_workers_racing_for_one_session_never_both_write(
    cluster: Callable[[int], Cluster],
) -> None:
    c = cluster(2)
    direct = [f"http://127.0.0.1:{p}" for p in c.ports]
    with httpx.Client(base_url=direct[0], timeout=10) as h:
        sid = new_session(h)
    acked: list[list[Op]] = [[], []]
    stop = threading.Event()
    threads = [
        threading.Thread(target=_race, args=(direct[k], sid, k * 4000, acked[k], stop))
        for k in (0, 1)
    ]
    for t in threads:
        t.start()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert acked[0] and acked[1], "both workers wrote the session in turn"
    logged = stored_ops(c.pg_url, sid)
    # each op acknowledged is stored once, nothing else is: no write went around the lock
    assert sorted(logged) == sorted(acked[0] + acked[1])
    for mine in acked:
        assert is_subsequence(mine, logged)
    n = replays_clean(c.pg_url, sid)
    for url in direct:
        with httpx.Client(base_url=url, timeout=10) as h:
            detail: dict[str, Any] = h.get(f"{API}/{sid}").json()
            assert detail["seq"] == n


def _follow(url: str, after: str, out: list[tuple[str, Any]], done: threading.Event) -> None:
    """Collect (event, data) of an SSE stream until it ends or breaks."""
    event, data = "message", ""
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(20, read=20)) as c,
            c.stream("GET", url, headers={"Last-Event-ID": after}) as r,
        ):
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "":
                    if data:
                        out.append((event, json.loads(data)))
                    event, data = "message", ""
    except httpx.HTTPError:
        pass  # the worker died under it
    finally:
        done.set()


def _seqs(got: list[tuple[str, Any]]) -> list[int]:
    return [int(d["seq"]) for e, d in got if e == "message"]


def _until(cond: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_event_stream_follows_its_session_to_the_new_owner(
    cluster: Callable[[int], Cluster],
) -> None:
    c = cluster(2)
    with httpx.Client(base_url=c.url, timeout=10) as h:
        sid = new_session(h)
        assert fallocate(h, sid, (0, PAGE)).status_code == 200
        last = h.get(f"{API}/{sid}").json()["event_seq"]
        url = f"{c.url}{API}/{sid}/events/stream"
        got: list[tuple[str, Any]] = []
        ended = threading.Event()
        threading.Thread(target=_follow, args=(url, "0", got, ended), daemon=True).start()
        _until(lambda: last in _seqs(got))
        owner = holders(c.pg_url)[sid]
        next(w for w in c.workers if w.pid == owner).kill()
        assert ended.wait(10)  # the stream ends with its worker
        # the browser reconnects with the last id it saw: the balancer sends it to the
        # session's new owner, which goes on from there
        again: list[tuple[str, Any]] = []
        follow = threading.Event()
        args = (url, str(_seqs(got)[-1]), again, follow)
        threading.Thread(target=_follow, args=args, daemon=True).start()
    # a new connection: HAProxy may close the kept-alive ones whose worker died
    with httpx.Client(base_url=c.url, timeout=10) as h:
        assert fallocate(h, sid, (PAGE, PAGE)).status_code == 200
        now = h.get(f"{API}/{sid}").json()["event_seq"]
        _until(lambda: now in _seqs(again))
        assert holders(c.pg_url)[sid] != owner
        assert _seqs(got) + _seqs(again) == list(range(1, now + 1))  # no gap, no repeat
        assert h.delete(f"{API}/{sid}").status_code == 204
        assert follow.wait(10)
