"""The page layer's pure parts: URL state, sizes, windows, run fetching and layout."""

from __future__ import annotations

import pytest

from app.engine import Config, FrameRun, Machine, PageRun
from app.pages.maps import (
    BUDGET,
    DASH,
    PROBE,
    frame_track,
    page_map,
    page_track,
    wide_runs,
)
from app.pages.render import human_bytes
from app.pages.state import ViewState, parse_size, to_int, window, zooms
from app.pages.timeline import event_row


def present(a: int, b: int, pfn: int = 0, **kw: object) -> PageRun:
    base = {"order": 0, "locked": False, "refcount": 1, "dirty": False, "mapped_by": []}
    return PageRun(a, b, "present", pfn, **(base | kw), waiters=0)  # type: ignore[arg-type]


def hole(a: int, b: int) -> PageRun:
    return PageRun(a, b, "hole", None, None, False, 0, False, [], 0)


@pytest.mark.parametrize(
    ("raw", "size"),
    [("4096", 4096), ("64K", 65536), ("64KiB", 65536), ("2M", 2**21), ("1T", 2**40),
     ("16p", 65536), (" 3 pages ", 12288), ("-1", -1), ("0x10", 16), ("lots", None),
     ("1.5M", 3 << 19), ("9E", 9 << 60), ("1,048,576", 2**20), ("2MB", 2**21), ("1e3", None)],
)  # fmt: skip
def test_parse_size(raw: str, size: int | None) -> None:
    if size is None:
        with pytest.raises(ValueError, match="is not a size"):
            parse_size(raw)
    else:
        assert parse_size(raw) == size


def test_to_int_bounds() -> None:
    assert to_int("0x1f") == 31 and to_int("12") == 12
    assert to_int("-1") is None and to_int("1e3") is None and to_int(None) is None
    assert to_int(str(2**64)) is None
    assert to_int("4K") == 4096 and to_int("1,024") == 1024 and to_int("1.5") is None


def test_view_state_round_trips_through_its_url() -> None:
    st = ViewState("abc", fd=3, start=10, end=20, page=12, at=4, walk="kvm-fault-and-zap")
    url = st.url()
    assert url == "/s/abc?fd=3&start=10&end=20&page=12&at=4&walk=kvm-fault-and-zap"
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert ViewState.from_query("abc", query) == st
    assert st.url(at=None, page=None) == "/s/abc?fd=3&start=10&end=20&walk=kvm-fault-and-zap"
    assert ViewState.from_query("abc", {"walk": "<x>"}).walk is None


def test_windows_and_zooms() -> None:
    assert window(None, None, 100) == (0, 100, True)
    assert window(98, 99, 100) == (92, 100, False)  # at least 8 wide
    assert window(500, None, 100) == (92, 100, False)
    assert window(None, None, 0) == (0, 0, True)
    z = zooms(0, 1024, 1024)
    assert z["in"] == (256, 768) and z["out"] is None and z["left"] is None
    assert zooms(256, 768, 1024)["right"] == (512, 1024)


def test_bytes() -> None:
    assert [human_bytes(n) for n in (0, 4096, 6144, 2**40, 5000)] == [
        "0 B", "4 KiB", "6 KiB", "1 TiB", "4.9 KiB",
    ]  # fmt: skip


def test_few_runs_are_all_drawn_each_page_in_cells() -> None:
    runs = [present(0, 1, 7), hole(1, 3), present(3, 4, 9, locked=True, mapped_by=[0])]
    t = page_track(runs, 0, 4, 4, {0: "kvm0"})
    assert t.cells and [b.cls for b in t.bars] == ["present", "hole", "present locked mapped"]
    assert t.bars[2].title == (
        "page 3: present, pfn 9, order 0, refcount 1, locked, mapped by kvm0"
    )
    assert (t.bars[1].left, t.bars[1].width) == ("25", "50")


def test_a_wide_window_draws_only_runs_a_column_wide() -> None:
    """Narrower runs are the density's (Machine.page_density); holes are background."""
    total = 2**28
    runs = [r for i in range(5000) for r in (present(i * 50000, i * 50000 + 1, i),
                                             hole(i * 50000 + 1, (i + 1) * 50000))]  # fmt: skip
    runs.append(present(total - 2**20, total, 9000))
    t = page_track(runs, 0, total, total, {})
    assert not t.cells and [(b.start, b.cls) for b in t.bars] == [(total - 2**20, "present")]


def test_wide_runs_reads_where_the_density_shows_full_columns() -> None:
    calls: list[tuple[int, int, int]] = []
    # 100,000 alternating single pages, then one run of 20,000 pages
    runs = [present(i, i + 1, i) if i % 2 == 0 else hole(i, i + 1) for i in range(100000)]
    runs.append(present(100000, 120000, 100000))

    def fetch(a: int, b: int, n: int) -> tuple[list[PageRun], int]:
        calls.append((a, b, n))
        got = [r._replace(start=max(r.start, a)) for r in runs if r.end > a and r.start < b][:n]
        return got, (got[-1].end if len(got) == n else b)

    counts = [600] * 1000 + [1200] * 200  # 1,200 columns of 100 pages
    counts = [c // 12 for c in counts]  # half of the first 1,000 columns, all of the rest
    out, complete = wide_runs(fetch, 0, 120000, counts)
    assert not complete and len(out) <= BUDGET
    assert any(r.start <= 100000 and r.end == 120000 for r in out)
    assert len(calls) == 2 and calls[0] == (0, 120000, PROBE)
    t = page_track(out, 0, 120000, 120000, {})
    assert [b.cls for b in t.bars] == ["present"] and float(t.bars[0].width) > 16


def test_page_map_reads_the_density_of_a_1_tib_file() -> None:
    m = Machine(Config("rfc-v2", 524288, "never", frozenset()))
    fd = m.memfd_create("big", [])
    m.ftruncate(fd, 2**40)
    for i in range(1000):
        m.fallocate(fd, [], i * 2**30, 4096)
    m.fallocate(fd, [], 2**39 + 4096, 2**30)  # 262,144 pages: more than a column
    t, runs = page_map(m, fd, 0, 2**28, 2**28, {})
    assert t.cols == 1200 and t.sampled and len(runs) <= BUDGET
    counts = [int(c or 0) for c in t.density.split(",")]
    # island 513 (page 2^27 + 2^18) is inside the run; every island has its column
    assert sum(counts) == 1000 + 2**18 - 1 and sum(1 for c in counts if c) >= 1000
    assert t.bars and t.bars[0].start == 2**27 + 1  # the run, a bar of its own


def test_frame_track_names_the_file() -> None:
    runs = [FrameRun(0, 4, "cache", 3, 8, 0), FrameRun(4, 1024, "free", None, None, 2)]
    t = frame_track(runs, 0, 1024, 1024, {3: "vm0 (fd 3)"})
    assert t.bars[0].cls == "used fd3"
    assert t.bars[0].title == f"frame 0{DASH}3: vm0 (fd 3), page 8{DASH}11, order 0"


def test_frame_track_shows_a_private_mappings_copy() -> None:
    runs = [FrameRun(0, 1, "cow", 3, 7, 0, map_id=2), FrameRun(1, 1024, "free", None, None, 0)]
    t = frame_track(runs, 0, 1024, 1024, {3: "ram (fd 3)"})
    assert t.bars[0].cls == "cow" and "mapping 2's copy of page 7" in t.bars[0].title


def test_frame_track_shows_a_hwpoisoned_frame() -> None:
    runs = [FrameRun(0, 1, "hwpoison", None, None, 0), FrameRun(1, 1024, "free", None, None, 0)]
    t = frame_track(runs, 0, 1024, 1024, {})
    assert t.bars[0].cls == "hwpoison" and "off the free lists" in t.bars[0].title


def test_a_wake_that_sleeps_again_says_both() -> None:
    """A punch asleep past its file's close wakes, then sleeps in the final truncate."""
    m = Machine(Config(phys_pages=1024))
    fd = m.memfd_create("m", ["MFD_ALLOW_SEALING"])
    m.ftruncate(fd, 4 * 4096)
    m.fallocate(fd, [], 0, 4 * 4096)
    p0 = m.get_lock_pfn(fd, 0, False).pfn
    m.get_lock_pfn(fd, 3, False)
    assert m.fallocate(fd, ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], 0, 8192)
    punch = m.event_count
    m.close(fd)
    assert p0 is not None
    m.put_unlock_pfn(p0)
    row = event_row(m.events()[-1], {}, {})
    assert row.result == f"wakes #{punch} fallocate, which sleeps again on a page lock"
    assert row.pending and "wait page 3" in " ".join(row.touches)
