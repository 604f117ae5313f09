"""Driving a streaming ASGI response in-process (httpx's ASGITransport waits for the
whole body, which an SSE stream never ends): the status, the messages as they come,
and a disconnect on demand."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message


@dataclass
class Stream:
    status: int = 0
    body: bytearray = field(default_factory=bytearray)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    messages: int = 0  # SSE messages with an id (events) received so far

    def take(self, chunk: bytes) -> None:
        self.messages += chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
        self.body += chunk

    async def close(self) -> None:
        self.gone.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


async def open_stream(app: ASGIApp, path: str, query: str = "", client: int = 1) -> Stream:
    """Start GET path?query on app; returns once the response has started."""
    s = Stream()

    async def receive() -> Message:
        await s.gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            s.status = message["status"]
            s.started.set()
        elif message["type"] == "http.response.body":
            s.take(message.get("body", b""))

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", client),
        "server": ("test", 80),
    }
    s.task = asyncio.create_task(app(scope, receive, send))
    await asyncio.wait_for(s.started.wait(), 10)
    return s
