"""The Python face's hot path (get_lock_pfn / put_unlock_pfn / fallocate): its answers
read back from the thread's out-buffer, its errors, its C-like int casts, and the
machine's mutex its C wrappers take (held around the engine call, released on every way
out)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

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


def test_the_hot_calls_wait_for_the_machines_lock() -> None:
    """The hot calls take the machine's mutex in C: a thread holding it (as every other
    method does for its body) keeps them out until it lets go."""
    m = Machine()
    fd = sealed_file(m, 4)
    before = m.event_count
    done = threading.Event()

    def hot() -> None:
        r = m.get_lock_pfn(fd, 0, True)
        assert r.pfn is not None
        m.put_unlock_pfn(r.pfn)
        m.fallocate(fd, ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], 0, PAGE)
        done.set()

    t = threading.Thread(target=hot)
    with m._lock:
        t.start()
        assert not done.wait(0.2)  # blocked on the mutex, the GIL released
        assert int(m._out_seq[0]) == before  # it has not entered the engine
    t.join(5)
    assert done.is_set() and m.event_count == before + 3 and not m._lock.locked()
    m.check()


def test_a_failed_hot_call_explains_itself_under_the_lock() -> None:
    """A wrapper that fails returns with the mutex held: the words read the file as the
    call left it, and the mutex is dropped before the error leaves."""
    m = Machine()
    fd = sealed_file(m, 4)
    seen: list[bool] = []
    real = m._raise

    def spy(*args: Any) -> Any:
        seen.append(m._lock.locked())
        return real(*args)

    m._raise = spy  # type: ignore[method-assign]
    with pytest.raises(EngineError) as info:
        m.fallocate(fd, [], -PAGE, PAGE)
    assert info.value.name == "EINVAL" and info.value.seq == m.event_count
    with pytest.raises(EngineError):
        m.get_lock_pfn(fd + 9, 0, False)
    with pytest.raises(EngineError):
        m.put_unlock_pfn(1 << 40)
    assert seen == [True, True, True] and not m._lock.locked()
    ev = m.events(after=m.event_count - 1)[0]
    assert ev.op == "put_unlock_pfn" and ev.errno == "EINVAL"


def test_alloc_is_a_bool_whatever_its_type() -> None:
    m = Machine()
    fd = sealed_file(m, 4)
    for alloc, want in ((2, 1), (-1, 1), (2**70, 1), (1.5, 1), (0.0, 0), ("", 0), (None, 0)):
        if want:
            r = m.get_lock_pfn(fd, 1, alloc)  # type: ignore[arg-type]
            assert r.pfn is not None
            m.put_unlock_pfn(r.pfn)
            seq = r.seq
        else:
            with pytest.raises(EngineError) as info:  # no page at 2 and no alloc
                m.get_lock_pfn(fd, 2, alloc)  # type: ignore[arg-type]
            seq = info.value.seq or 0
        (ev,) = m.events(after=seq - 1, limit=1)
        assert ev.op == "get_lock_pfn" and ev.args["alloc"] == want, (alloc, ev.args)
    m.check()


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


def test_has_owner_agrees_with_owners() -> None:
    m = Machine(Config(variants=frozenset({"multi_owner"})))
    ids = [m.owner_create("kvm", "a"), m.owner_create("recorder", "b")]
    for owner in (-1, 0, 1, 2, 7, 8, 2**40):
        assert m.has_owner(owner) == (owner in [o.id for o in m.owners()]) == (owner in ids)
    with pytest.raises(TypeError):
        m.has_owner(True)
