"""The baseline of bench/front.py: a minimal aiohttp pass-through proxy, in a process of its own.

    python -m bench.passthrough UPSTREAM [--port 0] [--loop asyncio|uvloop]

One catch-all route, one `ClientSession`, the request passed on as it came (method, path,
headers, body), the response read whole and returned with its status and headers (less those
aiohttp sets itself: Content-Length, Transfer-Encoding, Connection). No routing, no header
filtering, no bookkeeping. It runs with what emu's front runs with: the same event loop, the
same server settings (header limits, no access log, handler cancellation) and the same client
session settings (no connection limit, 4 s keep-alive, no decompression, no automatic headers).
It prints "listening on PORT" once it serves, and serves until SIGINT or SIGTERM.

UPSTREAM is the bridge address of the container emu started (http://172.17.x.y:80): both
proxies forward to the same nginx.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

# emu's own settings (emulator/front.py), so that only the per-request work differs.
HANDLER_ARGS = {"max_field_size": 16384, "max_line_size": 16384}
SET_BY_AIOHTTP = ("Content-Length", "Transfer-Encoding", "Connection")


async def serve(upstream: str, port: int) -> None:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
    )

    async def handle(request: web.Request) -> web.Response:
        async with session.request(
            request.method,
            upstream + request.raw_path,
            headers=request.headers,
            data=request.content if request.body_exists else None,
            allow_redirects=False,
        ) as up:
            body = await up.read()
            headers = up.headers.copy()
            for name in SET_BY_AIOHTTP:
                headers.popall(name, None)
            return web.Response(status=up.status, reason=up.reason, headers=headers, body=body)

    app = web.Application(handler_args=HANDLER_ARGS)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await session.close()


def main(argv: list[str]) -> None:
    args = list(argv)
    port, loop = 0, "asyncio"
    if "--port" in args:
        i = args.index("--port")
        port = int(args[i + 1])
        del args[i : i + 2]
    if "--loop" in args:
        i = args.index("--loop")
        loop = args[i + 1]
        del args[i : i + 2]
    if len(args) != 1 or urlsplit(args[0]).scheme != "http":
        sys.exit("usage: passthrough.py http://HOST:PORT [--port N] [--loop asyncio|uvloop]")
    if loop == "uvloop":
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        uvloop.run(serve(args[0].rstrip("/"), port))
    else:
        asyncio.run(serve(args[0].rstrip("/"), port))


if __name__ == "__main__":
    main(sys.argv[1:])
