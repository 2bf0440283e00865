"""Every `/_emu` route of the cockpit, registered in one place (`install`): `/_emu/status`,
`/_emu/events` (and its stream, the dashboard's), `/_emu/metrics`, and, to loopback clients
only, the control API and the instances' output, `/_emu/requests`, the dashboard and `/_emu/load`.

The session adds them to the front's app (the front hands every `/_emu*` path to that app);
worker mode's runtime API (`/_emu/runtime/*`) is not the cockpit's: `worker/api.py` has it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..instances.errors import EmuHTTPError
from ..instances.events import EventKind, LifecycleEvent
from ..instances.instance import KEPT_LOG_LINES, Instance
from . import dashboard, sse
from .control import Cockpit
from .load_feed import routes as load_routes
from .usage import add_usage

LOG_QUEUE = 10_000  # lines waiting for a slow `logs?follow=1` reader before some are dropped
N = TypeVar("N", int, float)


def install(app: web.Application, cockpit: Cockpit) -> None:
    """The cockpit's routes (before the front's catch-all); open streams end when the app
    shuts down, so that they do not hold up emu's stop. `/_emu/status`, `/_emu/events` (not
    its stream) and `/_emu/metrics` only read, and answer any client; the rest loopback
    clients only."""
    stream = local_only(lambda request: sse.event_stream(request, cockpit))

    async def status(request: web.Request) -> web.Response:
        body = cockpit.status()
        if _flag(request, "usage"):
            await add_usage(cockpit.docker, body)
        return web.json_response(body)

    async def events(request: web.Request) -> web.StreamResponse:
        if _flag(request, "stream"):
            return await stream(request)  # Server-Sent Events, for the dashboard
        return web.json_response(list(cockpit.events))

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(cockpit.metrics), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def action(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        sig = request.query.get("sig")
        snapshot = await cockpit.act(info["cls"], info["name"], info["action"], sig)
        return web.json_response(snapshot, status=200 if info["action"] == "start" else 202)

    async def requests(request: web.Request) -> web.StreamResponse:
        return web.json_response(cockpit.feed.records() if cockpit.feed is not None else [])

    async def logs(request: web.Request) -> web.StreamResponse:
        return await _logs(cockpit, request)

    app.add_routes(
        [
            web.get("/_emu/status", status),
            web.get("/_emu/events", events),
            web.get("/_emu/metrics", metrics),
            web.post("/_emu/instances/{cls}/{name}/{action}", local_only(action)),
            web.get("/_emu/instances/{cls}/{name}/logs", local_only(logs)),
            web.get("/_emu/requests", local_only(requests)),
            web.get("/_emu", local_only(dashboard.redirect)),
            web.get("/_emu/", local_only(dashboard.index)),
            web.get("/_emu/ui/{file}", local_only(dashboard.asset)),
            *load_routes(cockpit.load, local_only),
        ]
    )

    async def end_streams(app: web.Application) -> None:
        cockpit.close_streams()

    app.on_shutdown.append(end_streams)


async def _logs(cockpit: Cockpit, request: web.Request) -> web.StreamResponse:
    follow = _flag(request, "follow")
    # Following a name that has not run yet waits for its first container.
    inst = cockpit.find(request.match_info["cls"], request.match_info["name"], create=follow)
    tail = _number(request, "tail", int)
    since = _number(request, "since", float)
    stamps = _flag(request, "timestamps")
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await resp.prepare(request)
    if not follow:
        lines = await cockpit.logs(inst, KEPT_LOG_LINES if tail is None else tail, since)
        await resp.write("".join(_line(t, s, stamps) for t, s in lines).encode())
    else:
        await _follow(cockpit, inst, resp, tail, since, stamps)
    await resp.write_eof()
    return resp


async def _follow(
    cockpit: Cockpit,
    inst: Instance,
    resp: web.StreamResponse,
    tail: int | None,
    since: float | None,
    stamps: bool,
) -> None:
    """Write the instance's output as it comes, across its containers (a restart goes on in the
    same stream), until the client goes or emu stops."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(LOG_QUEUE)
    followed: list[str | None] = [None]  # the container being followed
    cancels: list[Callable[[], None]] = []

    def on_line(text: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a reader that does not keep up
            queue.put_nowait(_line(time.time(), text, stamps))

    def follow(cid: str, tail: int | None) -> None:
        if followed[0] != cid:
            followed[0] = cid
            cancels.append(cockpit.docker.stream_logs(cid, on_line, tail=tail))

    def on_event(entry: LifecycleEvent) -> None:
        who = (entry.get("class"), entry.get("instance"))
        mine = who == (inst.pool.config.class_name, inst.name)
        if mine and entry["event"] is EventKind.RUNNING and inst.container_id is not None:
            follow(inst.container_id, None)  # a new container: all of it

    unsubscribe = cockpit.subscribe(on_event)
    unregister = cockpit.open_stream(lambda: queue.put_nowait(None))
    try:
        # What there is so far, then what comes. A live container's stream starts with its own
        # tail, so that no line falls between the two.
        if inst.container_id is None or since is not None:
            lines = await cockpit.logs(inst, KEPT_LOG_LINES if tail is None else tail, since)
            await resp.write("".join(_line(t, s, stamps) for t, s in lines).encode())
        if inst.container_id is not None:
            follow(inst.container_id, 0 if since is not None else tail or KEPT_LOG_LINES)
        text: str | None = ""
        while text is not None:
            batch = []  # what is there now, written at once
            text = await queue.get()
            while text is not None:
                batch.append(text)
                if queue.empty():
                    break
                text = queue.get_nowait()
            if batch:
                await resp.write("".join(batch).encode())
    finally:
        unsubscribe()
        unregister()
        for cancel in cancels:
            cancel()


def _line(when: float, text: str, stamps: bool) -> str:
    if not stamps:
        return text + "\n"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    return f"{stamp}.{int(when % 1 * 1e6):06d}Z {text}\n"


def is_loopback(request: web.Request) -> bool:
    """Did the request come in on a loopback address of this machine? Decided by the socket's
    own (local) address, so that with --host 0.0.0.0 a request to the LAN address is refused
    whatever the client claims in its headers."""
    transport = request.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(local, tuple) or not local:
        return False
    try:
        address = ipaddress.ip_address(str(local[0]).partition("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def local_only(handler: Handler) -> Handler:
    """The handler, for loopback clients; 403 JSON for others. EmuHTTPError becomes JSON."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not is_loopback(request):
            return web.json_response(
                {"error": "emu's control endpoints answer on loopback only", "status": 403},
                status=403,
            )
        try:
            return await handler(request)
        except EmuHTTPError as exc:
            return web.json_response(exc.body(), status=exc.status)

    return guarded


def _flag(request: web.Request, key: str) -> bool:
    return request.query.get(key, "0") not in ("0", "false", "")


def _number(request: web.Request, key: str, kind: type[N]) -> N | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise EmuHTTPError(400, f"invalid {key}={raw!r}: a number") from None
    if value < 0:
        raise EmuHTTPError(400, f"invalid {key}={raw!r}: not negative")
    return value
