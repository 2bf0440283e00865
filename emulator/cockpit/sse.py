"""`GET /_emu/events?stream=1`: the dashboard's one Server-Sent-Events stream.

It carries, as SSE events:
- `hello`: on connect, the status, the last lifecycle events and the last request records;
- `lifecycle`: each lifecycle event, as it happens;
- `requests`: the request records added since the last one, a few times a second, in one
  message (at most FEED_BATCH; `skipped` counts the rest), so that a busy proxy costs the
  stream one JSON encoding per tick, not one per request;
- `status`: the status every second, with memory and CPU throttling every few seconds.

The proxy knows nothing of it: the stream reads the request ring by its running count."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from ..engine.docker_backend import DockerBackend
from ..front.requests_log import RequestLog
from ..instances.events import LifecycleEvent
from ..instances.status import Status
from .usage import add_usage

TICK = 0.25  # how often new request records go out
STATUS_EVERY = 1.0
USAGE_EVERY = 3.0  # a Docker stats call per running instance: not every second
KEEPALIVE = 15.0  # a comment line, so that proxies and browsers keep the stream open
FEED_BATCH = 200  # the dashboard shows the last 200 requests
HELLO_EVENTS = 200


class Cockpit(Protocol):
    """What a stream reads of the cockpit (control.py's `Cockpit`): said here, so that this
    module does not import control.py, which imports it."""

    docker: DockerBackend
    events: collections.deque[LifecycleEvent]
    status: Callable[[], Status]
    feed: RequestLog | None
    usage: UsageCache
    event_count: int

    def subscribe(self, listener: Callable[[LifecycleEvent], None]) -> Callable[[], None]: ...
    def open_stream(self, end: Callable[[], None]) -> Callable[[], None]: ...
    def events_since(self, seen: int) -> list[LifecycleEvent]: ...


def message(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class UsageCache:
    """The last memory and CPU readings, shared by every open stream."""

    def __init__(self) -> None:
        self.at = -USAGE_EVERY
        self.by_container: dict[str, tuple[Any, Any]] = {}
        self._lock = asyncio.Lock()

    async def add(self, cockpit: Cockpit, status: Status) -> None:
        async with self._lock:
            if time.monotonic() - self.at >= USAGE_EVERY:
                self.at = time.monotonic()
                await add_usage(cockpit.docker, status)
                self.by_container = {
                    i["container_id"]: (i["memory_bytes"], i["cpu_throttled_s"])
                    for cls in status["classes"]
                    for i in cls["instances"]
                    if i["container_id"]
                }
                return
        for cls in status["classes"]:
            for inst in cls["instances"]:
                known = self.by_container.get(inst["container_id"] or "", (None, None))
                inst["memory_bytes"], inst["cpu_throttled_s"] = known


async def event_stream(request: web.Request, cockpit: Cockpit) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    wake = asyncio.Event()
    ended: list[bool] = []

    def end() -> None:
        ended.append(True)
        wake.set()

    unsubscribe = cockpit.subscribe(lambda entry: wake.set())
    unregister = cockpit.open_stream(end)
    try:
        stream = _Stream(cockpit)
        await resp.write(await stream.hello())
        while not ended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), TICK)
            wake.clear()
            out = await stream.news()
            if out:
                await resp.write(out)
    except ConnectionResetError:
        pass  # the page went away
    finally:
        unsubscribe()
        unregister()
    with contextlib.suppress(ConnectionResetError):
        await resp.write_eof()
    return resp


class _Stream:
    """What one open stream has sent so far."""

    def __init__(self, cockpit: Cockpit) -> None:
        self.cockpit = cockpit
        self.seen_events = self.seen_requests = 0
        loop = asyncio.get_running_loop()
        self.time = loop.time
        self.next_status = self.last_write = loop.time()

    async def hello(self) -> bytes:
        cockpit = self.cockpit
        status = cockpit.status()
        await cockpit.usage.add(cockpit, status)
        # No await from here to the write: what hello carries and where the stream goes on
        # from must be the same moment.
        self.seen_events = cockpit.event_count
        self.seen_requests = cockpit.feed.count if cockpit.feed is not None else 0
        hello = {
            "status": status,
            "events": list(cockpit.events)[-HELLO_EVENTS:],
            "requests": cockpit.feed.records(FEED_BATCH) if cockpit.feed is not None else [],
            "feed": cockpit.feed is not None,
        }
        return message("hello", hello)

    async def news(self) -> bytes:
        """New lifecycle events and request records; the status when it is time."""
        cockpit, feed = self.cockpit, self.cockpit.feed
        out = [message("lifecycle", e) for e in cockpit.events_since(self.seen_events)]
        self.seen_events = cockpit.event_count
        if feed is not None and feed.count != self.seen_requests:
            records, skipped = feed.since(self.seen_requests, FEED_BATCH)
            self.seen_requests = feed.count
            out.append(message("requests", {"records": records, "skipped": skipped}))
        if self.time() >= self.next_status:
            self.next_status = self.time() + STATUS_EVERY
            status = cockpit.status()
            await cockpit.usage.add(cockpit, status)
            # The events and records above are older than this status: still in order.
            out.append(message("status", status))
        if not out and self.time() - self.last_write >= KEEPALIVE:
            out.append(b": keepalive\n\n")
        if out:
            self.last_write = self.time()
        return b"".join(out)
