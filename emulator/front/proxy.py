"""Forwarding one request (or WebSocket) to a healthy instance.

This is the hot path: keep it lean."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from multidict import CIMultiDict, MultiMapping, istr
from yarl import URL

from ..engine.docker_types import DockerError
from ..instances.errors import (
    DISCONNECTED,
    NO_PORT,
    PROXY_ERROR,
    EmuHTTPError,
    EngineUnavailable,
    PlatformError,
)
from ..instances.events import EventKind
from ..instances.instance import Instance

# istr: their case-folded form is made once, not at every lookup.
HOP_BY_HOP = tuple(
    istr(name)
    for name in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
    )
)
CONNECTION = HOP_BY_HOP[0]
TARGET_PORT = istr("cf-container-target-port")  # switchPort(); the platform does not strip it
INSTANCE_HEADER = istr("x-emu-instance")
BUFFER_LIMIT = 256 * 1024  # responses up to this size are read whole, larger ones streamed
NO_BODY_STATUS = frozenset({204, 304})
# After a lost connection, how long to wait for the engine to report the container's exit; and
# once it has reported an out-of-memory kill, how long the exit itself may take (a throttled
# container can take a second or more to die).
EXIT_NOTICE = 1.0
OOM_EXIT_WAIT = 5.0
REAP_WAIT = 2.0
WS_HANDSHAKE = tuple(
    istr(name)
    for name in (
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Accept",
    )
)


class PassThroughRequest(aiohttp.ClientRequest):
    """aiohttp's client request, adding none of its automatic headers (Accept, Accept-Encoding,
    User-Agent, a Content-Type for a body): what the client sent is what the container gets.
    The session's `skip_auto_headers` does the same, but builds a multidict of the names to
    skip, and a copy of the request's headers, for every request; this is made once."""

    _SKIP: CIMultiDict[None] = CIMultiDict(
        (name, None) for name in ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
    )

    def update_auto_headers(self, skip_auto_headers: object) -> None:
        self._skip_auto_headers = self._SKIP


def without_hop_by_hop(
    src: MultiMapping[str], drop: tuple[str, ...] = HOP_BY_HOP
) -> CIMultiDict[str]:
    """A copy without the hop-by-hop headers, and without those the Connection header names."""
    out = CIMultiDict(src)  # case-insensitive: popall("Connection") also takes "connection"
    connection = out.get(CONNECTION)
    if connection:
        for token in connection.split(","):
            out.popall(token.strip(), None)
    for name in drop:
        if name in out:  # a test is half the cost of popall(name, None) on a missing name
            out.popall(name)
    return out


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    headers = without_hop_by_hop(request.headers)
    peer = request.remote or ""
    prior = headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    return headers


def target_port(request: web.Request, inst: Instance) -> int:
    raw = request.headers.get(TARGET_PORT)
    if raw is not None:
        if raw.isdigit() and 0 < int(raw) < 65536:
            return int(raw)
        raise EmuHTTPError(400, f"invalid {TARGET_PORT} header: {raw!r}")
    port = inst.pool.config.default_port
    if port is None:
        raise PlatformError(500, NO_PORT)
    return port


async def forward(
    request: web.Request,
    inst: Instance,
    session: aiohttp.ClientSession,
    path: str,
    port: int,
    *,
    header: bool = True,  # x-emu-instance, an emu extra (off with --no-debug-headers)
) -> web.StreamResponse:
    url = URL(f"http://{inst.ip}:{inst.host_ports.get(port, port)}{path}", encoded=True)
    if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
        return await _websocket(request, inst, session, url, port, header)
    data = request.content if request.body_exists else None
    try:
        async with session.request(
            request.method,
            url,
            headers=upstream_headers(request),
            data=data,
            allow_redirects=False,
            auto_decompress=False,
        ) as up:
            headers = without_hop_by_hop(up.headers)
            if header:
                headers[INSTANCE_HEADER] = inst.name
            length = up.content_length
            if request.method == "HEAD" or up.status in NO_BODY_STATUS:
                resp = web.StreamResponse(status=up.status, reason=up.reason, headers=headers)
                await resp.prepare(request)
                await resp.write_eof()
                return resp
            if length is not None and length <= BUFFER_LIMIT:
                body = await up.read()
                headers.popall(hdrs.CONTENT_LENGTH, None)  # aiohttp sets it for the body
                return web.Response(status=up.status, reason=up.reason, headers=headers, body=body)
            resp = web.StreamResponse(status=up.status, reason=up.reason, headers=headers)
            await resp.prepare(request)
            try:
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
            except ConnectionResetError:
                return resp  # the client went away; aiohttp ends the connection
            except aiohttp.ClientError as exc:
                _cut(request, inst, exc)
                return resp
            await resp.write_eof()
            return resp
    except aiohttp.ClientConnectorError as exc:
        if _closed_port(exc, inst, port):
            raise _refused(inst, port, exc) from exc
        raise await _disconnected(inst, exc) from exc
    except (
        aiohttp.ServerDisconnectedError,
        aiohttp.ServerTimeoutError,  # connecting to a container that is gone can time out
        aiohttp.ClientOSError,
        aiohttp.ClientPayloadError,
    ) as exc:
        raise await _disconnected(inst, exc) from exc
    except aiohttp.ClientError as exc:
        raise PlatformError(500, PROXY_ERROR + str(exc), instance=inst.name) from exc


def _closed_port(exc: aiohttp.ClientConnectorError, inst: Instance, port: int) -> bool:
    """A port the start did not wait for, refused: the container answers on its address, so it
    runs, and nothing listens there. That is the library's proxy error at once, and the
    instance stays up. A refusal on a port that answered the start means the app went away:
    that is a disconnect, whose cause is waited for (aiohttp retries a GET whose pooled
    connection broke, so a crash mid-request can end in a refusal too)."""
    return isinstance(exc.os_error, ConnectionRefusedError) and port not in inst.probed_ports


def _refused(inst: Instance, port: int, exc: aiohttp.ClientConnectorError) -> PlatformError:
    reason = f"connection refused: nothing listens on port {port} of the container"
    return PlatformError(500, PROXY_ERROR + reason, instance=inst.name, port=port, detail=str(exc))


def _cut(request: web.Request, inst: Instance, exc: BaseException) -> None:
    """The container broke off a response whose status line is already out. The client can only
    learn of it by the body ending early: close the connection without the final chunk (a second
    response written into the body would read as garbage)."""
    inst.pool.emit(EventKind.RESPONSE_CUT, inst, reason=str(exc) or type(exc).__name__)
    if request.transport is not None:
        request.transport.close()


async def _disconnected(inst: Instance, exc: BaseException) -> EmuHTTPError:
    """The answer for a connection to the container that failed or broke before the response
    started. Not the hot path: it waits (bounded) for the engine to tell why."""
    reason = str(exc) or type(exc).__name__
    if inst.pool.runtime.state.engine_up:
        await inst.wait_exit(EXIT_NOTICE)
        if inst.exit_code is None and inst.oom_killed:
            await inst.wait_exit(OOM_EXIT_WAIT)  # being killed for memory; the exit follows
        if inst.exit_code is None:
            with contextlib.suppress(DockerError):
                await inst.verify()  # in case its "die" was missed
        await inst.wait_reaped(REAP_WAIT)
    if not inst.pool.runtime.state.engine_up:
        return EngineUnavailable(reason)
    details: dict[str, object] = {"instance": inst.name, "reason": reason}
    if inst.exit_code is not None:
        details["exit_code"] = inst.exit_code
        details["oom_killed"] = inst.oom_killed
        if inst.oom_killed:
            details["reason"] = "the container ran out of memory and was killed"
    return PlatformError(500, DISCONNECTED, **details)


async def _websocket(
    request: web.Request,
    inst: Instance,
    session: aiohttp.ClientSession,
    url: URL,
    port: int,
    header: bool,
) -> web.StreamResponse:
    protocols = [
        p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
    ]
    headers = without_hop_by_hop(request.headers, HOP_BY_HOP + WS_HANDSHAKE)
    try:
        up = await session.ws_connect(url, headers=headers, protocols=protocols, autoping=False)
    except aiohttp.WSServerHandshakeError as exc:
        raise PlatformError(exc.status or 502, PROXY_ERROR + str(exc), instance=inst.name) from exc
    except aiohttp.ClientConnectorError as exc:
        if _closed_port(exc, inst, port):
            raise _refused(inst, port, exc) from exc
        raise await _disconnected(inst, exc) from exc
    except aiohttp.ClientError as exc:
        raise await _disconnected(inst, exc) from exc
    # The subprotocol is the one the container chose.
    down = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else (), autoping=False)
    if header:
        down.headers[INSTANCE_HEADER] = inst.name
    try:
        await down.prepare(request)

        async def pipe(
            src: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
            dst: aiohttp.ClientWebSocketResponse | web.WebSocketResponse,
        ) -> None:
            async for msg in src:
                inst.renew()
                if msg.type is WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await dst.send_bytes(msg.data)
                elif msg.type is WSMsgType.PING:
                    await dst.ping(msg.data)
                elif msg.type is WSMsgType.PONG:
                    await dst.pong(msg.data)
                else:
                    break
            await dst.close(code=src.close_code or WSCloseCode.OK)  # pass on why it closed

        tasks = [asyncio.ensure_future(pipe(down, up)), asyncio.ensure_future(pipe(up, down))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
    finally:
        await up.close()
    return down
