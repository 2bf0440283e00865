"""The aiohttp application, and serving it on an already-bound socket until told to stop."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import weakref
from collections.abc import AsyncIterator, Awaitable

from aiohttp import WSCloseCode, web

from . import api, diagnostics
from .config import Settings
from .control import Control
from .errors import Handler, error_middleware
from .inflight import InFlight
from .keys import CONTROL, HELD_MEMORY, IN_FLIGHT, SANDBOX, SETTINGS, STARTED, WEBSOCKETS
from .sandbox import Sandbox

# aiohttp's own per-connection shutdown wait, which only runs once our drain has ended every
# request. Small, because aiohttp spends it twice (graceful wait, then cancel and wait).
_AIOHTTP_SHUTDOWN_TIMEOUT_S = 0.5


@web.middleware
async def _track_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    in_flight = request.app[IN_FLIGHT]
    # The task of the connection that carries this request; cancelling it ends the request.
    task = asyncio.current_task()
    assert task is not None
    in_flight.enter(task)
    try:
        return await handler(request)
    finally:
        in_flight.leave(task)


def create_app(
    settings: Settings, control: Control, started: float | None = None
) -> web.Application:
    """The application; `started` is the time.monotonic() that /info counts uptime from."""
    app = web.Application(middlewares=[_track_in_flight, error_middleware])
    app[SETTINGS] = settings
    app[CONTROL] = control
    app[STARTED] = time.monotonic() if started is None else started
    app[HELD_MEMORY] = []
    app[WEBSOCKETS] = weakref.WeakSet()
    app[IN_FLIGHT] = InFlight()
    app.cleanup_ctx.append(_sandbox)
    app.on_shutdown.append(_drain)
    app.add_routes(api.routes)
    if settings.diagnostics:
        app.add_routes(diagnostics.routes)
    return app


async def _sandbox(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    sandbox = Sandbox(
        memory_bytes=settings.exec_memory_bytes,
        max_concurrency=settings.exec_max_concurrency,
        output_limit=settings.exec_output_limit_bytes,
    )
    app[SANDBOX] = sandbox
    yield
    # Executions still running past the shutdown grace must not outlive the worker.
    sandbox.kill_all()


async def _drain(app: web.Application) -> None:
    """Runs once the site has stopped accepting: let in-flight requests finish, within grace."""
    # An open WebSocket is an in-flight request that never ends by itself; close them first so
    # shutdown does not wait the whole grace period for them.
    open_sockets = app[WEBSOCKETS]
    for ws in list(open_sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
    await app[IN_FLIGHT].drain(app[SETTINGS].shutdown_grace_s)


async def serve(
    app: web.Application,
    sock: socket.socket,
    settings: Settings,
    shutdown_trigger: Awaitable[object],
) -> None:
    """Serve `app` on the listening `sock` until `shutdown_trigger` completes; then stop accepting,
    let in-flight requests finish for up to settings.shutdown_grace_s, and clean up."""
    runner = web.AppRunner(
        app,
        shutdown_timeout=_AIOHTTP_SHUTDOWN_TIMEOUT_S,
        access_log=logging.getLogger("aiohttp.access") if settings.access_log else None,
        handle_signals=False,
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await shutdown_trigger
    finally:
        await runner.cleanup()
