"""Live event streams: how many may be open (per session and in all), and the fair
turn they take to read the log, so a crowd of history replays (after=0) cannot starve
other requests.

A stream reads at most CHUNK events at a time (BIG_CHUNK, in a worker thread, when
they may be huge), holding one of REPLAYING turns while it reads: the rest of the
crowd waits, not runnable, and the event loop goes on serving others in between.
Messages are sent after the turn is given back, so a slow reader holds only its own
stream. Chunks start at multiples of their size, and whole ones are kept encoded (up to
CACHE_BYTES, the oldest going first), keyed by the session's rewind count: a crowd
replaying one history reads each chunk from the engine once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from app.errors import TooMany
from app.settings import Settings

CHUNK = 32  # events read in one turn (small ones, inline)
CACHE_BYTES = 16 << 20  # encoded chunks kept for other replays of the same history
SEND_CHUNKS = 8  # kept chunks sent in one write
BIG_CHUNK = 4  # events read in one turn when they may carry thousands of callbacks
REPLAYING = 4  # streams reading at the same time


@dataclass
class Slot:
    """One open stream; release() is idempotent."""

    streams: Streams
    sid: str
    held: bool = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.streams.give(self.sid)


@dataclass
class Streams:
    settings: Settings
    open: dict[str, int] = field(default_factory=dict)  # session id -> open streams
    total: int = 0
    _turns: asyncio.Semaphore | None = None
    # (sid, rewinds seen, after, count) -> (last seq, the encoded messages)
    _chunks: OrderedDict[tuple[str, int, int, int], tuple[int, bytes]] = field(
        default_factory=OrderedDict
    )
    _chunk_bytes: int = 0

    def take(self, sid: str) -> Slot:
        """A slot for one more stream of session sid, or 429 naming the limit."""
        st = self.settings
        if self.total >= st.max_streams:
            raise TooMany(
                f"{self.total} event streams are open, the limit max_streams={st.max_streams}",
                op="events_stream",
                limit="max_streams",
            )
        mine = self.open.get(sid, 0)
        if mine >= st.max_session_streams:
            raise TooMany(
                f"the session has {mine} event streams open, the limit "
                f"max_session_streams={st.max_session_streams}",
                op="events_stream",
                limit="max_session_streams",
            )
        self.open[sid] = mine + 1
        self.total += 1
        return Slot(self, sid)

    def give(self, sid: str) -> None:
        left = self.open.get(sid, 1) - 1
        if left > 0:
            self.open[sid] = left
        else:
            self.open.pop(sid, None)
        self.total -= 1

    def turns(self) -> asyncio.Semaphore:
        """The turns to read the log (made on first use, on the running loop)."""
        if self._turns is None:
            self._turns = asyncio.Semaphore(REPLAYING)
        return self._turns

    def cached(self, key: tuple[str, int, int, int], count: int) -> tuple[int, bytes] | None:
        """The chunk at key and up to SEND_CHUNKS - 1 kept ones after it (not past event
        `count`), joined: one write for several."""
        sid, gen, after, n = key
        parts: list[bytes] = []
        last = after
        while len(parts) < SEND_CHUNKS and last + n <= count:
            got = self._chunks.get((sid, gen, last, n))
            if got is None:
                break
            self._chunks.move_to_end((sid, gen, last, n))
            last = got[0]
            parts.append(got[1])
        return (last, b"".join(parts)) if parts else None

    def keep(self, key: tuple[str, int, int, int], chunk: tuple[int, bytes]) -> None:
        if key in self._chunks or len(chunk[1]) > CACHE_BYTES // 4:
            return
        self._chunks[key] = chunk
        self._chunk_bytes += len(chunk[1])
        while self._chunk_bytes > CACHE_BYTES:
            _, (_, old) = self._chunks.popitem(last=False)
            self._chunk_bytes -= len(old)

    def forget(self, sid: str) -> None:
        """Drop a deleted session's chunks."""
        for key in [k for k in self._chunks if k[0] == sid]:
            self._chunk_bytes -= len(self._chunks.pop(key)[1])
