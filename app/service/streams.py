"""Live event streams: how many may be open (per session and in all), and the fair
turn they take to read the log, so a crowd of history replays (after=0) cannot starve
other requests.

A stream reads at most CHUNK events at a time (BIG_CHUNK, in a worker thread, when
they may be huge), holding one of REPLAYING turns while it reads: the rest of the
crowd waits, not runnable, and the event loop goes on serving others in between.
Messages are sent after the turn is given back, so a slow reader holds only its own
stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.errors import TooMany
from app.settings import Settings

CHUNK = 32  # events read in one turn (small ones, inline)
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
