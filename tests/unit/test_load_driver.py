"""The load generator against a fake server on loopback: an open loop counts each latency from
the request's planned start, so a server that falls behind shows it (no coordinated omission);
a closed loop keeps its clients busy and counts from each send."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestServer

from emulator.load.driver import Driver
from emulator.load.profile import Profile, RequestSpec

GET = (RequestSpec("GET", "/slow"),)
SERVICE_S = 0.1


async def serial_server(aiohttp_server: object) -> TestServer:
    """`/slow` answers in 100 ms, one at a time. `/stall`: the fifth request blocks the whole
    loop, which the generator shares, for half a second (a server stall, as a GC pause or a
    cold start is to a client): the generator cannot send meanwhile, the case where counting
    from the sends would hide the stall."""
    lock = asyncio.Lock()
    count = 0

    async def slow(request: web.Request) -> web.Response:
        async with lock:
            await asyncio.sleep(SERVICE_S)
        return web.Response(text="ok")

    async def stall(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        if count == 5:
            time.sleep(0.5)  # noqa: ASYNC251 -- blocking the loop is the point (above)
        return web.Response(text="ok")

    async def down(request: web.Request) -> web.Response:
        return web.Response(
            status=503, text="There is no Container instance available at this time."
        )

    app = web.Application()
    app.add_routes([web.get("/slow", slow), web.get("/stall", stall), web.get("/down", down)])
    server: TestServer = await aiohttp_server(app)  # type: ignore[operator]
    return server


async def test_open_loop_latency_counts_from_the_planned_start(aiohttp_server: object) -> None:
    server = await serial_server(aiohttp_server)
    stall = (RequestSpec("GET", "/stall"),)
    driver = Driver(str(server.make_url("")), Profile("rps", 1.0, stall, rps=50), seed=1)
    result = await driver.run()
    assert result["sent"] == 50 and result["status"] == [200] * 50
    # About 25 requests were due during the stall and sent after it, then answered at once:
    # counted from their sends they took a millisecond; from their planned starts, up to 500.
    ordered = sorted(result["lat_ms"])
    assert ordered[int(0.75 * len(ordered))] > 150, ordered
    assert result["late_ms"] > 300  # the sender fell behind its plan, and says so


async def test_closed_loop_counts_from_each_send(aiohttp_server: object) -> None:
    server = await serial_server(aiohttp_server)
    driver = Driver(str(server.make_url("")), Profile("concurrency", 1.0, GET, concurrency=1), None)
    result = await driver.run()
    assert 7 <= len(result["status"]) <= 11  # one client, 100 ms each
    assert max(result["lat_ms"]) < 400, result["lat_ms"]  # from each send: 100 ms or so
    assert result["cpu_s"] >= 0 and result["late_ms"] == 0


async def test_error_reasons_are_kept(aiohttp_server: object) -> None:
    server = await serial_server(aiohttp_server)
    down = (RequestSpec("GET", "/down"),)
    driver = Driver(str(server.make_url("")), Profile("rps", 0.5, down, rps=10), None)
    result = await driver.run()
    assert result["reasons"] == [[503, "There is no Container instance available at this time.", 5]]
