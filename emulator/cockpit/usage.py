"""Each running instance's memory and CPU, asked of Docker: for `/_emu/status?usage=1` and the
dashboard's stream (`sse.py`)."""

from __future__ import annotations

import asyncio

from ..engine.docker_backend import DockerBackend
from ..instances.instance import State
from ..instances.status import Status


async def add_usage(docker: DockerBackend, body: Status) -> None:
    """Each running instance's memory in use and CPU throttling: asked of Docker, so only
    when the caller asks (`?usage=1`); None where there is no running container."""
    instances = [i for cls in body["classes"] for i in cls["instances"]]
    serving = (State.RUNNING, State.HEALTHY)
    live = [(i, cid) for i in instances if (cid := i["container_id"]) and i["state"] in serving]
    usages = await asyncio.gather(*(docker.usage(cid) for _, cid in live))
    for inst in instances:
        inst["memory_bytes"] = inst["cpu_throttled_s"] = None
    for (inst, _), usage in zip(live, usages, strict=True):
        if usage is not None:
            inst["memory_bytes"] = usage.memory_bytes
            inst["cpu_throttled_s"] = round(usage.cpu_throttled_s, 3)
            inst["cpu_s"] = round(usage.cpu_s, 3)  # for emu load: CPU used, periods throttled
            inst["cpu_periods"] = usage.cpu_periods
            inst["cpu_throttled_periods"] = usage.cpu_throttled_periods
