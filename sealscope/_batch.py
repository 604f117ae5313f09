"""Batches for Session and AsyncSession: ops gathered in a `with` block, sent together."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from sealscope._wire import Queue, Slot
from sealscope.models.batch import BatchAnswer

if TYPE_CHECKING:
    from sealscope._async import AsyncSession
    from sealscope.client import Session


class Batch:
    """`with session.batch() as b:` gathers ops (`b.add(op, **args)`, the trace's shape)
    and sends them together on leaving the block (10,000 a request; an exception in the
    block sends nothing). Each `add` gives a Slot whose value() is the op's answer."""

    def __init__(self, session: Session, stop_on_error: bool = False) -> None:
        self.session = session
        self.queue = Queue(stop_on_error)

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.send()

    def add(self, op: str, **args: Any) -> Slot[Any]:
        slot = self.queue.add(op, args)
        if self.queue.full():
            self.send()
        return slot

    def send(self) -> None:
        if not self.queue.ops or self.queue.stopped:
            return
        body, slots = self.queue.take()
        answer = self.session.client.get(BatchAnswer, "POST", f"{self.session.path}/ops", body)
        self.queue.settle(answer, slots)

    @property
    def results(self) -> list[Any]:
        return self.queue.results


class AsyncBatch:
    """`async with session.batch() as b:` gathers ops (`b.add(op, **args)`, the trace's shape)
    and sends them together on leaving the block (10,000 a request; an exception in the
    block sends nothing). Each `add` gives a Slot whose value() is the op's answer."""

    def __init__(self, session: AsyncSession, stop_on_error: bool = False) -> None:
        self.session = session
        self.queue = Queue(stop_on_error)

    async def __aenter__(self) -> AsyncBatch:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            await self.send()

    def add(self, op: str, **args: Any) -> Slot[Any]:
        """Queue an op; a full batch (10,000) is sent on leaving the block, with the rest."""
        return self.queue.add(op, args)

    async def send(self) -> None:
        while self.queue.ops and not self.queue.stopped:
            body, slots = self.queue.take()
            path = f"{self.session.path}/ops"
            answer = await self.session.client.get(BatchAnswer, "POST", path, body)
            self.queue.settle(answer, slots)

    @property
    def results(self) -> list[Any]:
        return self.queue.results
