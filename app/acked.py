"""How many ops of each session were acknowledged, kept in a small file beside the
database (`sealscope.acked`), outside SQLite and its WAL.

SQLite cannot tell a torn WAL (garbage after a SIGKILL, media corruption) from its end:
it replays the frames up to the first bad checksum and silently drops the commits after
it. This file lets the start say so: a session whose stored log is shorter than the
count acknowledged here lost acknowledged ops. It is rewritten (a temporary file, then
rename: it is whole or the previous one) at most every `every` seconds and at close, so
its counts trail the truth by up to that long: a lower bound, never a false alarm.
Rewinds and deletes lower a count *before* their commit, for the same reason.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("sealscope.store")


class Acked:
    def __init__(self, path: Path, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self.counts: dict[str, int] = {}
        self._written = 0.0
        self._dirty = False

    def read(self) -> dict[str, int]:
        """The counts the previous run left ({} when there is no file or it is garbage)."""
        try:
            raw = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s): acknowledged counts not checked", self.path, exc)
            return {}
        if not isinstance(raw, dict):
            return {}
        return {k: v for k, v in raw.items() if isinstance(k, str) and type(v) is int}

    def start(self, counts: dict[str, int]) -> None:
        """Begin from the stored logs' lengths."""
        self.counts = dict(counts)
        self.write()

    def ack(self, sid: str, n: int) -> None:
        """Op n of session sid is committed (written out within `every` seconds)."""
        self.counts[sid] = n
        self._dirty = True
        if time.monotonic() - self._written >= self.every:
            self.write()

    def lower(self, sid: str, n: int | None) -> None:
        """Before a rewind to n (or, None, a delete) commits: written out at once."""
        if n is None:
            self.counts.pop(sid, None)
        else:
            self.counts[sid] = min(n, self.counts.get(sid, n))
        self.write()

    def flush(self) -> None:
        if self._dirty:
            self.write()

    def write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.counts, separators=(",", ":")), "utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk: the check is lost, not the service
            log.warning("%s could not be written: %s", self.path, exc)
            return
        self._written = time.monotonic()
        self._dirty = False
