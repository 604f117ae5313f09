"""Machine.page_density / frame_density: per column, what a wide window holds."""

from __future__ import annotations

import pytest

from app.engine import DENS_FLAGS, DENS_MANY, DENS_NONE, BadFdError, Config, Machine

TIB = 2**40


def machine() -> tuple[Machine, int]:
    m = Machine(Config("rfc-v2", 65536, "never", frozenset()))
    fd = m.memfd_create("big", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, TIB)
    return m, fd


def test_every_present_page_counts_in_its_column() -> None:
    m, fd = machine()
    pages = [i * (2**28 // 23) for i in range(23)]
    for p in pages:
        m.fallocate(fd, [], p * 4096, 4096)
    m.fallocate(fd, [], 2**39, 64 << 20)  # 16,384 pages from page 2^27
    present, flags = m.page_density(fd, 0, 2**28, 1000)
    assert sum(present) == 23 + 16384
    for p in pages:
        assert present[p * 1000 // 2**28] >= 1
    assert present[500] == 16384 + (1 if 2**27 in pages else 0)
    assert set(flags) == {0}
    m.check()
    # cheap: a window of 2^28 pages costs what its runs cost, not its width
    assert m.page_density(fd, 5, 6, 1) == ([0], [0])


def test_flags_say_what_the_pages_are() -> None:
    m, fd = machine()
    m.fallocate(fd, [], 0, 8192)
    got = m.get_lock_pfn(fd, 1, False)
    _, flags = m.page_density(fd, 0, 4, 4)
    assert flags[1] == DENS_FLAGS["locked"] and flags[0] == 0
    m.put_unlock_pfn(got.pfn)


def test_frames_name_their_one_file() -> None:
    m, fd = machine()
    other = m.memfd_create("b", [])
    m.ftruncate(other, 1 << 20)
    m.fallocate(fd, [], 0, 4096 * 4)
    m.fallocate(other, [], 0, 4096 * 4)
    used, fds = m.frame_density(0, 16, 4)
    assert used == [4, 4, 0, 0] and fds == [fd, other, DENS_NONE, DENS_NONE]
    used, fds = m.frame_density(0, 16, 1)
    assert used == [8] and fds == [DENS_MANY]


@pytest.mark.parametrize(("start", "end", "cols"), [(5, 5, 4), (0, 8, 0), (0, 8, 5000), (9, 3, 1)])
def test_bad_windows(start: int, end: int, cols: int) -> None:
    m, fd = machine()
    with pytest.raises(ValueError):
        m.page_density(fd, start, end, cols)


def test_bad_fd() -> None:
    m, _ = machine()
    with pytest.raises(BadFdError):
        m.page_density(99, 0, 8, 4)
