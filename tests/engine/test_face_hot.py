"""The Python face's hot path (get_lock_pfn / put_unlock_pfn): its answers read
back from the shared out-buffer and the event counter, its errors, its C-like
int casts, and its lock (held around the engine call, released on every way
out)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import app.engine._machine as machine_module
from app.engine import Config, EngineError, Machine, PfnResult

PAGE = 4096


def sealed_file(m: Machine, pages: int) -> int:
    fd = m.memfd_create("hot", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, pages * PAGE)
    return fd


def test_answers_match_the_page_runs_and_the_event_log() -> None:
    m = Machine(Config(thp="always"))
    fd = sealed_file(m, 1024)
    got = m.get_lock_pfn(fd, 700, True)  # a huge page: order 9, its 189th subpage
    assert type(got) is PfnResult and got.order == 9 and not got.pending
    assert got.seq == m.event_count and m.events(after=got.seq - 1)[0].op == "get_lock_pfn"
    (run,) = [r for r in m.page_runs(fd)[0] if r.start <= 700 < r.end]
    assert run.order == 9 and run.locked
    assert got.pfn is not None
    (frame,) = m.frame_runs(got.pfn, got.pfn + 1)[0]  # the frame knows its page
    assert frame.fd == fd and frame.index == 700 and frame.order == 9
    m.put_unlock_pfn(got.pfn)
    small = Machine()
    fd2 = sealed_file(small, 4)
    r = small.get_lock_pfn(fd2, 3, True)
    assert r.order == 0 and r.pfn is not None and r.seq == small.event_count
    small.put_unlock_pfn(r.pfn)
    small.check()


def test_errors_carry_their_event_and_release_the_lock() -> None:
    m = Machine()
    fd = sealed_file(m, 4)
    with pytest.raises(EngineError) as info:
        m.get_lock_pfn(fd + 7, 0, True)
    assert info.value.name == "EBADF" and info.value.seq == m.event_count
    assert not m._lock.locked()
    with pytest.raises(EngineError) as info:
        m.put_unlock_pfn(10**6)  # past the frames
    assert info.value.name == "EINVAL" and info.value.seq == m.event_count
    assert not m._lock.locked()
    with pytest.raises(TypeError):
        m.get_lock_pfn("3", 0, True)  # type: ignore[arg-type]
    assert not m._lock.locked()
    r = m.get_lock_pfn(2**32 + fd, 2**64 + 1, True)  # (int) and (uint64_t) casts, as C
    present = [(p.start, p.end, p.locked) for p in m.page_runs(fd)[0] if p.state == "present"]
    assert r.pfn is not None and present == [(1, 2, True)]
    m.put_unlock_pfn(r.pfn + 2**64)
    assert not m._lock.locked()
    m.check()


def test_the_hot_path_holds_the_lock_around_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Machine()
    fd = sealed_file(m, 4)
    seen: list[bool] = []

    def held(real: Any) -> Any:
        def call(*args: Any) -> Any:
            seen.append(m._lock.locked())
            return real(*args)

        return call

    monkeypatch.setattr(machine_module, "_get_lock_pfn", held(machine_module._get_lock_pfn))
    monkeypatch.setattr(machine_module, "_put_unlock_pfn", held(machine_module._put_unlock_pfn))
    r = m.get_lock_pfn(fd, 0, True)
    m.put_unlock_pfn(r.pfn)
    assert seen == [True, True] and not m._lock.locked()


def test_threads_lock_and_unlock_pages_of_one_machine() -> None:
    m = Machine()
    fds = [sealed_file(m, 8) for _ in range(4)]
    before = m.event_count
    errors: list[BaseException] = []

    def work(fd: int) -> None:
        try:
            for i in range(300):
                r = m.get_lock_pfn(fd, i % 8, True)
                assert not r.pending and r.pfn is not None
                m.put_unlock_pfn(r.pfn)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(fd,)) for fd in fds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert m.event_count == before + 4 * 600
    assert [e.seq for e in m.events(after=before)] == list(range(before + 1, m.event_count + 1))
    m.check()
