"""One Machine hammered from several threads at once: the hot calls (get_lock_pfn,
put_unlock_pfn, fallocate: the machine's mutex taken in C) mixed with failing calls and
with every other kind of method (views, events, clone, check: the mutex held from
Python), for a bounded time.  Every answer must be the caller's own (the page it locked,
the event its call made), every error its own EngineError, the event log gapless and
the invariant checker content, in the machine and in the clones taken meanwhile."""

from __future__ import annotations

import threading
import time

from app.engine import Config, EngineError, Machine

PAGE = 4096
PAGES = 8
SECONDS = 2.0  # each thread stops at the deadline or after its iterations
ITERATIONS = 20_000
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


def test_threads_mixing_hot_and_other_calls_keep_the_machine_consistent() -> None:
    m = Machine(Config(phys_pages=1 << 14))
    fds = [m.memfd_create(f"t{i}", ["MFD_ALLOW_SEALING"]) for i in range(3)]
    for fd in fds:
        m.ftruncate(fd, PAGES * PAGE)
    before = m.event_count
    deadline = time.monotonic() + SECONDS
    made = [0] * len(fds)  # events each hot thread's calls made
    rounds = [0] * (len(fds) + 1)
    errors: list[BaseException] = []
    start = threading.Barrier(len(fds) + 1)

    def hot(k: int) -> None:
        fd = fds[k]
        try:
            start.wait()
            for i in range(ITERATIONS):
                if time.monotonic() > deadline:
                    break
                rounds[k] += 1
                index = i % PAGES
                r = m.get_lock_pfn(fd, index, True)
                made[k] += 1
                assert not r.pending and r.pfn is not None and r.order == 0
                if i % 16 == 0:  # the answer is this call's: its page, its event
                    (frame,) = m.frame_runs(r.pfn, r.pfn + 1)[0]
                    assert (frame.fd, frame.index) == (fd, index), (k, i, frame)
                    (ev,) = m.events(after=r.seq - 1, limit=1)
                    assert (ev.op, ev.fd, ev.args["index"]) == ("get_lock_pfn", fd, index)
                    assert ev.out["pfn"] == r.pfn
                m.put_unlock_pfn(r.pfn)
                made[k] += 1
                if i % 5 == 0:
                    assert m.fallocate(fd, PUNCH, index * PAGE, PAGE) is False
                    made[k] += 1
                if i % 7 == 0:  # failures: each its own error, type and event
                    try:
                        m.put_unlock_pfn(1 << 40)
                    except EngineError as e:
                        assert e.name == "EINVAL" and e.op == "put_unlock_pfn"
                        (ev,) = m.events(after=(e.seq or 0) - 1, limit=1)
                        assert (ev.op, ev.errno) == ("put_unlock_pfn", "EINVAL")
                    else:
                        raise AssertionError("put_unlock_pfn of no frame succeeded")
                    try:
                        m.get_lock_pfn(fd + 100, index, True)
                    except EngineError as e:
                        assert e.name == "EBADF" and isinstance(e, LookupError)
                        (ev,) = m.events(after=(e.seq or 0) - 1, limit=1)
                        assert (ev.op, ev.fd, ev.errno) == ("get_lock_pfn", fd + 100, "EBADF")
                    else:
                        raise AssertionError("get_lock_pfn of no file succeeded")
                    made[k] += 2
        except BaseException as e:  # reported below
            errors.append(e)

    def other() -> None:
        k = len(fds)
        try:
            start.wait()
            seen = before
            while time.monotonic() < deadline and rounds[k] < ITERATIONS:
                rounds[k] += 1
                n = m.event_count
                assert n >= seen
                seen = n
                assert sorted(f.fd for f in m.files()) == sorted(fds)
                for fd in fds:
                    runs, _ = m.page_runs(fd)
                    assert all(r.end <= PAGES for r in runs)
                p = m.phys()
                assert p.free + p.used == p.total
                if rounds[k] % 10 == 0:
                    m.check()
                    twin = m.clone()  # a consistent snapshot, mid-flight
                    twin.check()
                    assert before <= twin.event_count <= m.event_count
                    assert len(twin.files()) == len(fds)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=hot, args=(k,)) for k in range(len(fds))]
    threads.append(threading.Thread(target=other))
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 30)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (the mutex?)"
    assert errors == [], errors
    assert all(r > 0 for r in rounds), rounds
    assert not m._lock.locked()
    assert m.event_count == before + sum(made)  # no event lost, none made twice
    seqs = [e.seq for e in m.events(after=before, max_items=0)]
    assert seqs == list(range(before + 1, m.event_count + 1))
    assert all(not r.locked for fd in fds for r in m.page_runs(fd)[0])
    m.check()
