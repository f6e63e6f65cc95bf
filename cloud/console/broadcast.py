"""An in-process Server-Sent Events broadcaster: one encode per event, one queue per console.

Producers (request handlers, the live-feed thread) call `publish()` from any thread; the event
is encoded once and handed to every subscriber's bounded queue on the server's event loop. A
console that cannot keep up (queue full) is disconnected rather than allowed to grow memory:
its EventSource reconnects by itself and re-reads the snapshot (WHATWG HTML §9.2, "reconnection
time").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

QUEUE_EVENTS = 512
HEARTBEAT_S = 15.0
_CLOSE = b""


def encode(event: str, data: Any, event_id: int | None = None) -> bytes:
    body = orjson.dumps(data)
    head = f"id: {event_id}\n" if event_id is not None else ""
    # orjson never emits a raw newline, so one `data:` line always suffices (§9.2.6).
    return f"{head}event: {event}\n".encode() + b"data: " + body + b"\n\n"


@dataclass(eq=False, slots=True)
class Subscriber:
    org: str
    username: str
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_EVENTS))
    dropped: bool = False


class Broadcaster:
    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self.published = 0
        self.disconnected_slow = 0

    def subscribe(self, org: str, username: str) -> Subscriber:
        self._loop = asyncio.get_running_loop()
        sub = Subscriber(org, username)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def connected(self) -> int:
        with self._lock:
            return len(self._subs)

    def watching_orgs(self) -> set[str]:
        with self._lock:
            return {s.org for s in self._subs}

    def publish(self, event: str, data: Any, *, view: Callable[[str], Any] | None = None) -> None:
        """Send `event` to every console; safe from any thread; a no-op before anyone listens.
        With `view`, each organisation's consoles get `view(org)` instead of `data` (what the
        data policy lets it see), encoded once per organisation."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        event_id = next(self._ids)
        frames: bytes | dict[str, bytes] = (
            encode(event, data, event_id)
            if view is None
            else {org: encode(event, view(org), event_id) for org in self.watching_orgs()}
        )
        self.published += 1
        try:
            loop.call_soon_threadsafe(self._fan_out, frames)
        except RuntimeError:  # the loop closed between the check and the call (shutdown)
            return

    def close_all(self) -> None:
        """End every open stream (before the server stops: it waits for open responses)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(self._fan_out, _CLOSE)

    def _fan_out(self, frames: bytes | dict[str, bytes]) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            frame = frames if isinstance(frames, bytes) else frames.get(sub.org)
            if sub.dropped or frame is None:
                continue  # None: it subscribed since; its snapshot is newer than this event
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:
                sub.dropped = True
                self.disconnected_slow += 1
                self.unsubscribe(sub)
                sub.queue.get_nowait()
                sub.queue.put_nowait(_CLOSE)

    async def stream(self, sub: Subscriber, hello: bytes) -> AsyncIterator[bytes]:
        """The SSE body for one console: `hello` first, then events, with heartbeats."""
        try:
            yield b"retry: 2000\n" + hello
            while True:
                try:
                    frame = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"  # proxies close idle connections; a comment is ignored
                    continue
                if frame == _CLOSE:
                    return
                yield frame
        finally:
            self.unsubscribe(sub)
