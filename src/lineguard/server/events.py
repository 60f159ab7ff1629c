"""Station events to the live pages: one bounded queue per connected client.

The station calls :meth:`EventHub.publish` on the thread that judged the part, so it
only appends to each client's queue and wakes that client's task; a client that reads
slowly (a tablet on poor Wi-Fi) fills its own queue, and further events for it are
dropped and counted, never waited for. The page hears of the drop (an ``event:
dropped``) and reloads its counters from the summary endpoint. A stream asks again
every few seconds whether its caller's key or sign-in still holds, and ends (``event:
ended``) once it does not.
"""
from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

KEEPALIVE_S = 15.0     # a comment line this often keeps proxies and the browser from timing out
QUEUE_MAX = 256        # events held for one slow client before dropping
# how often an open stream asks again whether its key or sign-in still holds: a revoked
# key or ended session stops the records within seconds; a cached key costs no database read
RECHECK_S = 2.0


class Subscription:
    """One live client: its queue, filled from any thread, read by its own asyncio task."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxlen: int):
        self._loop = loop
        self._maxlen = maxlen
        self._items: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self.dropped = 0          # events this client missed, all told
        self._unsent_drops = 0    # ...not yet reported to it
        self.closed = False

    def push(self, event: str, payload: dict[str, Any]) -> bool:
        """Queue an event; False when the queue is full and it was dropped."""
        with self._lock:
            if self.closed:
                return True
            if len(self._items) >= self._maxlen:
                self.dropped += 1
                self._unsent_drops += 1
                return False
            self._items.append((event, payload))
        self._poke()
        return True

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._poke()

    def _poke(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:   # its loop is closed: the server is gone, nobody to wake
            pass

    def _take(self) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            drops, self._unsent_drops = self._unsent_drops, 0
            return items, drops

    async def messages(self, keepalive_s: float = KEEPALIVE_S,
                       recheck: Optional[Callable[[], Awaitable[Optional[str]]]] = None,
                       recheck_s: float = RECHECK_S) -> AsyncIterator[str]:
        """Server-sent-event text, until closed; a comment line when idle for ``keepalive_s``.

        ``recheck`` (the caller's credential, asked again every ``recheck_s``, events
        flowing or not) answers None while the client may go on reading, or why it may
        not: then an ``event: ended`` says so and the stream ends. A stream outlives the
        check made when it opened by hours; a revoked key or an ended sign-in must stop
        it, not the client's leaving.
        """
        yield "retry: 3000\n\n"   # the browser reconnects after 3 s if the stream breaks
        now = time.monotonic()
        next_check = now + recheck_s
        next_keepalive = now + keepalive_s
        while True:
            if recheck is not None and time.monotonic() >= next_check:
                why = await recheck()
                if why is not None:
                    yield f"event: ended\ndata: {json.dumps({'reason': why})}\n\n"
                    return
                next_check = time.monotonic() + recheck_s
            # cleared before taking: an event pushed after the take sets it again
            self._wake.clear()
            items, drops = self._take()
            if drops:
                yield f"event: dropped\ndata: {json.dumps({'dropped': drops})}\n\n"
            for event, payload in items:
                yield f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"
            if self.closed:
                return
            now = time.monotonic()
            if items or drops:
                next_keepalive = now + keepalive_s
                continue
            # idle: wake for an event, the next check or the keep-alive, whichever is first
            wait = next_keepalive - now
            if recheck is not None:
                wait = min(wait, next_check - now)
            try:
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.0))
            except asyncio.TimeoutError:
                if time.monotonic() >= next_keepalive:
                    yield ": keep-alive\n\n"
                    next_keepalive = time.monotonic() + keepalive_s


class EventHub:
    """Fans station events out to the subscribed live clients."""

    def __init__(self, maxlen: int = QUEUE_MAX):
        self.maxlen = maxlen
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self.closed = False
        self.dropped = 0   # over all clients, for the summary's health block

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        """The station listener: never blocks, whatever the clients do."""
        for sub in self._subs:
            if not sub.push(event, payload):
                self.dropped += 1

    def subscribe(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> Optional[Subscription]:
        """A new client's queue; None once the hub is closed (the server is stopping)."""
        sub = Subscription(loop or asyncio.get_running_loop(), self.maxlen)
        with self._lock:
            if self.closed:
                return None
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)
        sub.close()

    @property
    def clients(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        """End every open stream (server shutdown: uvicorn waits for open responses)."""
        with self._lock:
            self.closed = True
            subs, self._subs = self._subs, ()
        for sub in subs:
            sub.close()
