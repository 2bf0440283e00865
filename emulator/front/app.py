"""The front: the aiohttp application that routes each request to an instance.

Its state is typed (`AppKey`s) and its resources (the proxy's client session, the quiet log of
malformed requests) are set up and torn down with the app (`cleanup_ctx`). The per-request path
is `Front.handle`: it reads its own attributes, never the app's dict. A request for the
containers goes to it straight from the connection (`listen`): the app's router and middleware
see only `/_emu/*` (and a request that expects a 100 Continue), whose routes are not the
front's: the session installs them (the cockpit's, `emulator/cockpit/routes.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import cast

import aiohttp
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from ..instances.errors import EmuHTTPError
from ..instances.instance import INSTANCE_NAME, Instance, State
from ..instances.pool import ClassPool
from .connections import BoundedSite, Limits, Listener, RequestHandlerFn
from .proxy import INSTANCE_HEADER, PassThroughRequest, forward, target_port
from .requests_log import CLIENT_GONE, RequestLog

BINDING_HEADER = "x-emu-binding"
HTTP_LOG = logging.getLogger("emu.http")
HANDLER_ARGS = {"max_field_size": 16384, "max_line_size": 16384}
BAD_INSTANCE_NAME = (
    f"invalid {INSTANCE_HEADER} header: 1 to 63 characters of letters, digits, "
    "'.', '_' and '-', starting with a letter or digit"
)
EMU_PATHS = "/_emu"  # the app's own routes all start with it; every other path is proxied


class ListenError(Exception):
    """The front cannot listen (the port is taken, the address is not this machine's)."""


class Front:
    """Routing and the per-request path, with what they count: requests in flight, and why
    requests are refused (503) while emu is not serving."""

    def __init__(
        self,
        pools: Mapping[str, ClassPool],
        out: Callable[[str, str], None],
        feed: RequestLog | None = None,
        debug_headers: bool = True,
    ) -> None:
        self.pools = pools
        self.debug_headers = debug_headers  # x-emu-instance on responses, an emu extra
        self.feed = feed  # what the front answered, for the dashboard; None: not recorded
        self._single = next(iter(pools.values())) if len(pools) == 1 else None
        self._bindings = {p.config.binding.lower(): p for p in pools.values()}
        self._out = out
        # Why requests are refused (emu is shutting down), or None: one check on the hot path.
        # While images are prepared, requests are held by their instance, not refused.
        self.refusing: str | None = None
        self.inflight = 0
        self._drained: asyncio.Future[None] | None = None  # while drain() waits
        self.session: aiohttp.ClientSession | None = None  # the proxy's, while the app runs

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until no request is in flight."""
        if self.inflight:
            self._out("emu", f"draining {self.inflight} request(s)")
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained, timeout)

    def route(self, request: web.Request) -> tuple[ClassPool, str]:
        """The class a request goes to, and the path its instance sees (the request's, minus a
        binding prefix)."""
        path = request.raw_path
        if not path.startswith("/"):  # "GET http://host/x", `OPTIONS *`, `CONNECT host:443`
            if request.method == hdrs.METH_CONNECT:
                raise EmuHTTPError(400, "CONNECT is not supported: emu proxies requests for paths")
            raise EmuHTTPError(400, "the request target must be a path, like /x")
        if self._single is not None:
            return self._single, path
        header = request.headers.get(BINDING_HEADER)
        if header is not None:
            pool = self._bindings.get(header.lower())
            if pool is None:
                raise EmuHTTPError(404, f"no binding {header!r}", bindings=self._binding_names())
            return pool, path
        first, sep, rest = path[1:].partition("/")
        pool = self._bindings.get(first.partition("?")[0].lower())
        if pool is None:
            raise EmuHTTPError(
                404,
                "several Container classes: start the path with a binding name, e.g. "
                f"/{self._binding_names()[0]}/..., or send the header {BINDING_HEADER}",
                bindings=self._binding_names(),
            )
        if not sep and "?" in first:
            return pool, "/?" + first.partition("?")[2]
        return pool, "/" + rest

    def _binding_names(self) -> list[str]:
        return [p.config.binding for p in self.pools.values()]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.inflight += 1
        inst: Instance | None = None
        began = time.perf_counter()
        status, cold, random = CLIENT_GONE, False, False
        try:
            if self.refusing is not None:  # shutting down (a kept-alive client)
                raise EmuHTTPError(503, self.refusing)
            path = request.raw_path
            pool = self._single
            if pool is None or not path.startswith("/"):
                pool, path = self.route(request)
            name = request.headers.get(INSTANCE_HEADER)
            if name is None:
                name, random = pool.pick(), True
            elif not INSTANCE_NAME.match(name):
                raise EmuHTTPError(400, BAD_INSTANCE_NAME)
            inst = pool.get(name)
            inst.begin()
            port = target_port(request, inst)
            if inst.state is not State.HEALTHY:
                cold = True
                if inst.first_need is None:
                    inst.first_need = began
                await inst.ensure_started(port)
            assert self.session is not None  # set up with the app
            resp = await forward(request, inst, self.session, path, port, header=self.debug_headers)
            if inst.first_need is not None:  # the first answer after a start
                inst.waited((time.perf_counter() - inst.first_need) * 1000)
                inst.first_need = None
            status = resp.status
            return resp
        except EmuHTTPError as exc:
            status = exc.status
            return error_response(request, exc, inst, header=self.debug_headers)
        finally:
            if inst is not None:
                inst.end()
            feed = self.feed
            if feed is not None:  # the hot path's only cost of the feed: one append
                now = time.perf_counter()  # the record's time and duration from one reading
                feed.add(
                    (
                        now + feed.wall_offset,
                        request.method,
                        request.raw_path,
                        inst.pool.config.class_name if inst is not None else None,
                        inst.name if inst is not None else None,
                        status,
                        (now - began) * 1000,
                        cold,
                        random,
                        None,
                    )
                )
            self.inflight -= 1
            if not self.inflight and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)

    async def handle_logged(self, request: web.Request) -> web.StreamResponse:
        """`handle`, plus one access line: which instance served what, how, how fast."""
        began = time.perf_counter()
        resp = await self.handle(request)
        took = (time.perf_counter() - began) * 1000
        who = resp.headers.get(INSTANCE_HEADER, "-")
        self._out(
            "access", f"{request.method} {request.raw_path} -> {who} {resp.status} {took:.1f} ms"
        )
        return resp


def error_response(
    request: web.Request, exc: EmuHTTPError, inst: Instance | None = None, *, header: bool = True
) -> web.Response:
    """The library's own text as text/plain where it has one (see `PlatformError`), else, or
    when the client asks for JSON, emu's JSON with the details. `header`: x-emu-instance."""
    headers = {INSTANCE_HEADER: inst.name} if inst is not None and header else None
    if exc.plain and "application/json" not in request.headers.get("Accept", ""):
        return web.Response(text=exc.error, status=exc.status, headers=headers)
    body = exc.body()
    if inst is not None:
        body.setdefault("instance", inst.name)
        body.setdefault("class", inst.pool.config.class_name)
    return web.json_response(body, status=exc.status, headers=headers)


FRONT = web.AppKey("front", Front)
PROXY: web.AppKey[Handler] = web.AppKey("proxy")  # the front's handler, with or without the log


def make_app(
    front: Front,
    *,
    access_log: bool,
    install: Callable[[web.Application], None] | None = None,
) -> web.Application:
    """The front's app; `install` adds the `/_emu` routes (the cockpit's, worker mode's runtime
    API: the session's choice) before the catch-all that proxies."""
    app = web.Application(handler_args=HANDLER_ARGS)
    app[FRONT] = front
    app[PROXY] = front.handle_logged if access_log else front.handle
    app.cleanup_ctx.append(_proxy_session)
    app.cleanup_ctx.append(_quiet_bad_requests)
    if install is not None:
        install(app)
    # For a request that `dispatch` sends through the app (one that expects a 100 Continue).
    app.router.add_route("*", "/{tail:.*}", app[PROXY])
    return app


def dispatcher(runner: web.AppRunner) -> RequestHandlerFn:
    """What answers each request of the front's connections: `/_emu/*` goes through the app
    (its router, its routes), every other request straight to the front's handler. So the
    proxied path costs no route resolution, no match info, no middleware chain; and a target
    that is not a path (`OPTIONS *`, `CONNECT host:443`), which matches no route of the app,
    gets the front's 400 JSON. A request with `Expect` goes through the app, whose route
    answers the 100 Continue before the body is read."""
    assert runner.server is not None  # set up
    through_app = runner.server.request_handler
    proxy = runner.app[PROXY]

    def dispatch(request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        path = request.raw_path
        if path.startswith(EMU_PATHS) or (hdrs.EXPECT in request.headers and path.startswith("/")):
            return through_app(request)
        return proxy(cast(web.Request, request))  # made by the app's request factory

    return dispatch


def make_runner(app: web.Application) -> web.AppRunner:
    return web.AppRunner(app, handler_cancellation=True, access_log=None, logger=HTTP_LOG)


async def listen(
    runner: web.AppRunner, host: str, port: int, limits: Limits
) -> tuple[web.TCPSite, int]:
    """Listen on host:port (0: a free one), with `limits` on client connections; returns the
    site and the port. ListenError when the address cannot be had."""
    assert runner.server is not None  # set up
    args = {**HANDLER_ARGS, "logger": HTTP_LOG, "access_log": None}
    listener = Listener(runner.server, limits, args, dispatcher(runner))
    site = BoundedSite(runner, host, port, listener)
    try:
        await site.start()
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    for address in runner.addresses:
        return site, int(address[1])
    return site, port


async def _proxy_session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(
        # Idle connections are dropped before the usual servers' 5 s (uvicorn, Node) would
        # close them under a request that cannot be retried (a POST).
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        auto_decompress=False,
        request_class=PassThroughRequest,  # no automatic headers
        # A proxy keeps no cookies: the containers' go to the clients, not into a jar.
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        app[FRONT].session = session
        yield
        app[FRONT].session = None


class _BadRequestFilter(logging.Filter):
    """aiohttp logs a malformed request (already answered 400) with a traceback, as an error.
    It is the client's mistake: one debug line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg, record.args = (
            "bad request from %s: %s",
            (peer, exc.message.split("\n")[0][:120]),
        )
        return HTTP_LOG.isEnabledFor(logging.DEBUG)


async def _quiet_bad_requests(app: web.Application) -> AsyncIterator[None]:
    quiet = _BadRequestFilter()
    HTTP_LOG.addFilter(quiet)
    yield
    HTTP_LOG.removeFilter(quiet)
