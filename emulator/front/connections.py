"""Client connections of the front: how many may be open at once, and how long one may take to
send a request's headers or sit idle between requests.

aiohttp closes a connection idle for `keepalive_timeout` (counted from its start or from the
end of its last response, so also one that trickles header lines), but it has no header-read
timeout and no bound on connections. `Listener` is the protocol factory that adds both;
`BoundedSite` listens with it. Nothing here runs per request except one check per read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

RequestHandlerFn = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Limits:
    header_timeout: float  # from a request's first bytes to the end of its headers
    keepalive_timeout: float  # idle, before the first request or between two
    max_connections: int  # open client connections; one more is answered 503 and closed


def _refusal(max_connections: int) -> bytes:
    body = json.dumps(
        {
            "error": f"emu has {max_connections} client connections open (--max-connections); "
            "try again",
            "status": 503,
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Listener:
    """The protocol factory of the front's socket. `handler`, when given, answers the requests
    instead of the server's own (the app's router): see `front.listen`."""

    def __init__(
        self,
        server: web.Server,
        limits: Limits,
        handler_args: Mapping[str, Any],
        handler: RequestHandlerFn | None = None,
    ) -> None:
        self.server = server
        self.limits = limits
        self.handler = handler
        self.open = 0  # handlers made and not lost yet
        self._args = {**handler_args, "keepalive_timeout": limits.keepalive_timeout}
        self._refusal = _refusal(limits.max_connections)

    def __call__(self) -> asyncio.Protocol:
        # Counted here, not in connection_made: asyncio makes the protocols of a burst of
        # accepts before it connects any of them.
        if self.open >= self.limits.max_connections:
            return _Refuse(self._refusal)
        self.open += 1
        return _Handler(self, loop=asyncio.get_running_loop(), **self._args)


class _Handler(RequestHandler):
    """aiohttp's handler, plus the count of open connections and the header-read timeout.
    It reads `_waiter`, which aiohttp's handler keeps pending while it waits for a request."""

    __slots__ = ("_header_timer", "_listener")

    def __init__(self, listener: Listener, **kwargs: Any) -> None:
        super().__init__(listener.server, **kwargs)
        if listener.handler is not None:
            self._request_handler = listener.handler
        self._listener = listener
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._listener.open -= 1
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiting = self._waiter is not None and not self._waiter.done()
        if waiting and self._header_timer is None:  # a request's first bytes, headers to come
            self._header_timer = self._loop.call_later(
                self._listener.limits.header_timeout, self._headers_late
            )
        elif not waiting and self._header_timer is not None:  # the headers are complete
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._waiter is not None and not self._waiter.done():
            self.force_close()


class _Refuse(asyncio.Protocol):
    """One connection too many: a 503 and the close, without reading the request."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._answer)
        transport.close()


class BoundedSite(web.TCPSite):
    """aiohttp's TCP site, listening with a `Listener` instead of the runner's own factory."""

    __slots__ = ("_listener",)

    def __init__(self, runner: web.BaseRunner, host: str, port: int, listener: Listener) -> None:
        super().__init__(runner, host, port)
        self._listener = listener

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        self._server = await asyncio.get_running_loop().create_server(
            self._listener, self._host, self._port, backlog=self._backlog
        )
