"""Endpoints that make the container misbehave on purpose, for testing whatever runs it.

Mounted under /diag/ only when EXECUTOR_DIAGNOSTICS=1.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import mmap
import os
import sys
import time

from aiohttp import WSMsgType, web

from .errors import int_param
from .keys import CONTROL, HELD_MEMORY, WEBSOCKETS

routes = web.RouteTableDef()

MAX_MS = 3_600_000
MAX_ALLOC_MIB = 1024 * 1024
MAX_CHUNKS = 1_000_000

# Burns CPU in a child process until argv[1] ms of wall time have passed, then prints what it
# measured. A process rather than a thread: several burns run in parallel on several cores (a
# thread would share the worker's GIL), and the event loop never competes with the burn.
_BURN = (
    "import json, sys, time\n"
    "end = time.perf_counter() + int(sys.argv[1]) / 1000\n"
    "w0, c0 = time.perf_counter(), time.process_time()\n"
    "while time.perf_counter() < end:\n"
    "    sum(range(1000))\n"
    "wall, cpu = time.perf_counter() - w0, time.process_time() - c0\n"
    "print(json.dumps({'wall_ms': wall * 1000, 'cpu_ms': cpu * 1000}))\n"
)


@routes.route("*", "/diag/echo")
async def echo(request: web.Request) -> web.Response:
    """What arrived: for checking what a proxy in front passed on. The body is hashed as it
    streams in, so a large upload costs no memory."""
    size = 0
    digest = hashlib.sha256()
    async for chunk in request.content.iter_any():
        size += len(chunk)
        digest.update(chunk)
    return web.json_response(
        {
            "method": request.method,
            "path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_bytes": size,
            "body_sha256": digest.hexdigest(),
            "pid": os.getpid(),
        }
    )


@routes.get("/diag/pid")
async def pid(request: web.Request) -> web.Response:
    return web.json_response({"pid": os.getpid()})


@routes.get("/diag/cpu")
async def cpu(request: web.Request) -> web.Response:
    ms = int_param(request, "ms", lo=0, hi=MAX_MS)
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "-c", _BURN, str(ms), stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:  # cancelled: don't leave the burner running
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise web.HTTPInternalServerError(text=f"burner exited with {proc.returncode}")
    measured = json.loads(out)
    wall_ms, cpu_ms = float(measured["wall_ms"]), float(measured["cpu_ms"])
    return web.json_response(
        {
            "ms": ms,
            "wall_ms": round(wall_ms, 1),
            "cpu_ms": round(cpu_ms, 1),
            "cpu_share": round(cpu_ms / wall_ms, 3) if wall_ms > 0 else None,
            "total_ms": round((time.monotonic() - started) * 1000, 1),
            "burner_pid": proc.pid,
            "pid": os.getpid(),
        }
    )


@routes.get("/diag/alloc")
async def alloc(request: web.Request) -> web.Response:
    mib = int_param(request, "mib", lo=0, hi=MAX_ALLOC_MIB)
    held = request.app[HELD_MEMORY]
    if mib:
        # Touching gigabytes takes a while; do it off the loop.
        held.append(await asyncio.to_thread(_resident_block, mib * 1024 * 1024))
    return web.json_response(
        {
            "allocated_mib": mib,
            "held_mib": sum(len(b) for b in held) // (1024 * 1024),
            "pid": os.getpid(),
        }
    )


def _resident_block(size: int) -> bytearray:
    """`size` bytes that are really in RAM: a fresh block is zero pages the kernel has not
    backed yet, so write one byte in every page."""
    block = bytearray(size)
    pages = range(0, size, mmap.PAGESIZE)
    block[:: mmap.PAGESIZE] = b"\x01" * len(pages)
    return block


@routes.get("/diag/sleep")
async def sleep(request: web.Request) -> web.Response:
    ms = int_param(request, "ms", lo=0, hi=MAX_MS)
    await asyncio.sleep(ms / 1000)
    return web.json_response({"slept_ms": ms, "pid": os.getpid()})


@routes.get("/diag/stream")
async def stream(request: web.Request) -> web.StreamResponse:
    chunks = int_param(request, "chunks", lo=0, hi=MAX_CHUNKS)
    interval_ms = int_param(request, "interval_ms", lo=0, hi=MAX_MS)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(chunks):
        if i:
            await asyncio.sleep(interval_ms / 1000)
        await response.write(f"chunk {i}\n".encode())
    await response.write_eof()
    return response


@routes.get("/diag/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


@routes.post("/diag/exit")
async def exit_container(request: web.Request) -> web.StreamResponse:
    code = int_param(request, "code", lo=0, hi=255)
    # Send the answer first; the supervisor kills this process right after it hears the request.
    response = web.json_response({"exiting": code, "pid": os.getpid()})
    await response.prepare(request)
    await response.write_eof()
    request.app[CONTROL].request_exit(code)
    return response


@routes.post("/diag/ignore-sigterm")
async def ignore_sigterm(request: web.Request) -> web.Response:
    request.app[CONTROL].ignore_sigterm()
    return web.json_response({"ignoring_sigterm": True, "pid": os.getpid()})
