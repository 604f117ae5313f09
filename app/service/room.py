"""Frames of temporary machines: the replays behind diff, compare, at (previews), why
and rewind build machines of a session's size outside the session registry; while they
live they count against max_total_phys_pages with the sessions' own frames."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import TooMany
from app.registry import Registry


def frames_in_use(reg: Registry) -> int:
    """Frames of every session's machine and of the temporary machines alive now."""
    return sum(s.config.phys_pages for s in reg.sessions.values()) + reg.borrowed


@contextmanager
def machines(reg: Registry, count: int, phys_pages: int, op: str) -> Iterator[None]:
    """Hold room for `count` temporary machines of `phys_pages` frames while the body
    runs; 429 naming max_total_phys_pages when they do not fit. Checked and taken with
    no await in between, so concurrent requests cannot both pass."""
    want = count * phys_pages
    used = frames_in_use(reg)
    limit = reg.settings.max_total_phys_pages
    if used + want > limit:
        raise TooMany(
            f"{op} needs {count} temporary machine(s) of {phys_pages} frames; sessions and "
            f"other replays hold {used}, past the limit max_total_phys_pages={limit}",
            op=op,
            limit="max_total_phys_pages",
        )
    reg.borrowed += want
    try:
        yield
    finally:
        reg.borrowed -= want
