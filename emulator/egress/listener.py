"""emu's side of the gateway's port 80 and 443: each connection, once the gateway has named its
client (`EMU <client> <port>`), is served as HTTP (TLS first for 443, with a certificate for the
name the client asked for), and each request goes to the Worker's `/_emu/egress`, where the
shim hands it to the fetcher that the client's Durable Object registered. The answer streams
back as the Worker gives it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from functools import partial

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict, MultiMapping

from ..front.proxy import without_hop_by_hop
from .resolver import Route

EGRESS_PREFIX = "x-emu-egress-"
TOKEN = "x-emu-egress-token"
CLASS = "x-emu-egress-class"
OBJECT = "x-emu-egress-id"
URL = "x-emu-egress-url"
HEADER_LIMIT = 256
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10)


def _headers(src: MultiMapping[str]) -> CIMultiDict[str]:
    """What passes between the container and the Worker: the front's hop-by-hop filter (also
    what the Connection header names), less the Host (the URL carries it) and emu's own
    `x-emu-egress-*` headers."""
    out = without_hop_by_hop(src)
    out.popall(hdrs.HOST, None)
    for key in [key for key in out if key.lower().startswith(EGRESS_PREFIX)]:
        out.popall(key, None)
    return out


Record = Callable[[Route, str, str, int, float], None]  # route, method, url, status, seconds


class Listener:
    def __init__(
        self,
        lookup: Callable[[str], Route | None],
        worker_url: Callable[[], str | None],
        token: str,
        tls: Callable[[], ssl.SSLContext | None],
        record: Record,
    ) -> None:
        self._lookup = lookup
        self._worker_url = worker_url
        self._token = token
        self._tls = tls
        self._record = record
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            timeout=UPSTREAM_TIMEOUT, auto_decompress=False, trust_env=False
        )
        self._server = await loop.create_server(lambda: _Intake(self), host, 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def accept(self, transport: asyncio.Transport, client: str, port: int) -> bool:
        route = self._lookup(client)
        if route is None:
            return False
        task = asyncio.ensure_future(self._hand_over(transport, route, port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _hand_over(self, transport: asyncio.Transport, route: Route, port: int) -> None:
        scheme = "https" if port == 443 else "http"
        handler = web.Server(partial(self._serve, route, scheme))()
        if scheme == "http":
            transport.set_protocol(handler)
            handler.connection_made(transport)
            transport.write(b"OK\n")
            return
        context = self._tls()
        if context is None:  # HTTPS that the Worker does not intercept: no way through
            transport.close()
            return
        transport.write(b"OK\n")
        loop = asyncio.get_running_loop()
        try:
            secure = await loop.start_tls(transport, handler, context, server_side=True)
        except (OSError, ssl.SSLError):
            transport.close()
            return
        if secure is not None:
            handler.connection_made(secure)

    async def _serve(
        self, route: Route, scheme: str, request: web.BaseRequest
    ) -> web.StreamResponse:
        began = time.monotonic()
        url = f"{scheme}://{request.host}{request.rel_url}"
        worker = self._worker_url()
        assert self._session is not None
        if worker is None:
            return web.Response(status=503, text="emu: the Worker is not running\n")
        headers = _headers(request.headers)
        headers[TOKEN] = self._token
        headers[CLASS] = route.class_name
        headers[OBJECT] = route.durable_object_id
        headers[URL] = url
        body = request.content if request.body_exists else None
        try:
            async with self._session.request(
                request.method,
                f"{worker}/_emu/egress",
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                response.headers.extend(_headers(upstream.headers))
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                self._record(route, request.method, url, upstream.status, time.monotonic() - began)
                return response
        except aiohttp.ClientError as exc:
            self._record(route, request.method, url, 502, time.monotonic() - began)
            return web.Response(status=502, text=f"emu: the Worker did not answer: {exc}\n")


class _Intake(asyncio.Protocol):
    """Reads the gateway's one line, then hands the connection over."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._buffer += data
        if b"\n" not in self._buffer:
            if len(self._buffer) > HEADER_LIMIT:
                transport.close()
            return
        line = self._buffer.partition(b"\n")[0].decode(errors="replace").split()
        ok = len(line) == 3 and line[0] == "EMU" and line[2].isdigit()
        with contextlib.suppress(ValueError):
            if ok and self._listener.accept(transport, line[1], int(line[2])):
                return
        transport.close()
