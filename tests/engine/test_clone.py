"""Copy-on-write clones through the Python face: a machine and its clones, mutated in
turn (and from threads), each equal to a full copy given the same ops."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from app.engine import Config, EngineError, Machine

PAGE = 4096
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


def _op(m: Machine, rnd: random.Random) -> None:
    """One random op on file 3 (64 MiB) and file 4 (a few pages)."""
    k = rnd.randrange(6)
    off = rnd.randrange(16384) * PAGE
    try:
        if k == 0:
            m.fallocate(3, [], off, rnd.choice([PAGE, 2 << 20, 16 * PAGE]))
        elif k == 1:
            m.fallocate(3, PUNCH, off, rnd.choice([PAGE, 2 << 20, 64 << 20]))
        elif k == 2:
            m.pwrite(3, off, rnd.randbytes(rnd.randrange(1, 3 * PAGE)))
        elif k == 3:
            m.ftruncate(4, rnd.randrange(8) * PAGE)
        elif k == 4:
            m.pwrite(4, rnd.randrange(4) * PAGE, rnd.randbytes(100))
        else:
            r = m.get_lock_pfn(3, off // PAGE, True)
            m.put_unlock_pfn(r.pfn)
    except EngineError:
        pass  # ENOSPC, ENOMEM: the same on both


def _view(m: Machine) -> Any:
    return (
        m.files(),
        m.page_runs(3, 0, 1 << 20),
        m.frame_runs(0, m.config.phys_pages),
        m.phys(),
        m.pread(3, 0, 1 << 20),
        m.pread(4, 0, 8 * PAGE),
        m.events(),
    )


def _machine() -> Machine:
    m = Machine(Config(phys_pages=1 << 15, thp="always"))  # 8 frame chunks
    m.memfd_create("a", ["MFD_ALLOW_SEALING"])
    m.memfd_create("b")
    m.ftruncate(3, 64 << 20)
    m.ftruncate(4, 4 * PAGE)
    return m


@pytest.mark.parametrize("seed", range(6))
def test_clones_diverge_like_full_copies(seed: int) -> None:
    rnd = random.Random(seed)
    m = _machine()
    for _ in range(60):
        _op(m, rnd)
    sides = [(m, m.clone(full=True))]
    for step in range(300):
        if step % 50 == 0 and len(sides) < 4:
            src, ref = rnd.choice(sides)
            c = src.clone()
            assert c.memory_owned(beside=src) < 64 * 1024  # shares all with its source
            sides.append((c, ref.clone(full=True)))
        side, ref = rnd.choice(sides)
        state = rnd.getstate()
        _op(side, rnd)
        rnd.setstate(state)
        _op(ref, rnd)
        side.check()
    for side, ref in sides:
        assert _view(side) == _view(ref)


def test_a_clone_costs_a_table_until_written() -> None:
    m = Machine(Config(phys_pages=1 << 22, thp="always"))  # 16 GiB: a 128 MiB frame array
    fd = m.memfd_create("big")
    m.fallocate(fd, [], 0, 8 << 30)
    c = m.clone()
    fresh = c.memory_owned(beside=m)
    assert fresh < 64 * 1024
    assert m.clone(full=True).memory_owned(beside=m) > 128 << 20
    c.pwrite(fd, 5 * PAGE, b"hello")
    # a group (2 KiB) and a chunk (2 KiB) of frames, the page, the log's last segments
    assert 8 * 1024 < c.memory_owned(beside=m) - fresh < 128 * 1024
    assert m.pread(fd, 5 * PAGE, 5) == bytes(5) and c.pread(fd, 5 * PAGE, 5) == b"hello"


def test_clones_mutated_from_threads() -> None:
    base = _machine()
    rnd = random.Random(7)
    for _ in range(80):
        _op(base, rnd)
    refs = [base.clone(full=True) for _ in range(3)]
    machines = [base, base.clone(), base.clone()]
    seeds = [11, 12, 13]

    def run(m: Machine, seed: int) -> None:
        r = random.Random(seed)
        for _ in range(400):
            _op(m, r)

    threads = [threading.Thread(target=run, args=a) for a in zip(machines, seeds, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m, ref, seed in zip(machines, refs, seeds, strict=True):
        run(ref, seed)
        m.check()
        assert _view(m) == _view(ref)
