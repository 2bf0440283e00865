"""Whether this host reaches a local engine's bridge addresses.

On Linux with the engine beside emu it does. Docker Desktop (macOS, Windows), colima and rootless
Docker keep the bridge inside a VM or a namespace of their own, where the host has no route to it;
a firewall can block it too. emu then serves such an engine as it serves a remote one: each
instance publishes its ports on loopback, and the front and the Workers runtime dial those.

The probe: a listener on the bridge's gateway address (the host's side of the bridge) and a
connection to it. Where the host has no such address, the listen fails; where traffic to the
bridge's addresses is dropped, the connection times out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import in_container

if TYPE_CHECKING:
    from .choice import Engine
    from .docker_backend import DockerBackend

PROBE_TIMEOUT = 1.0


def gateway(ipam: list[dict[str, str]]) -> str | None:
    """The gateway of a network's IPAM config; the default bridge lists only its subnet, whose
    first address the engine gives the host's side."""
    for config in ipam:
        if config.get("Gateway"):
            return config["Gateway"]
    for config in ipam:
        with contextlib.suppress(ValueError, KeyError, StopIteration):
            net = ipaddress.ip_network(config["Subnet"])
            if net.version == 4:
                return str(next(net.hosts()))
    return None


async def bridge_unreachable(gateway: str | None) -> str | None:
    """None when the host reaches `gateway` (the bridge network's gateway), else why not."""
    if not gateway:
        return "the engine's bridge network has no gateway address"
    try:
        server = await asyncio.start_server(lambda r, w: w.close(), host=gateway, port=0)
    except OSError as exc:
        return f"{gateway} is not an address of this host ({exc.strerror or exc})"
    try:
        port = server.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(gateway, port), PROBE_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            return f"a connection to {gateway} failed ({type(exc).__name__}: {exc})"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def reachable_engine(
    engine: Engine, docker: DockerBackend, out: Callable[[str, str], None]
) -> Engine:
    """`engine`, or, for a local one whose bridge this host cannot reach (Docker Desktop,
    colima, rootless, a firewall), the same engine with its ports published on loopback."""
    from .choice import LOOPBACK, EngineKind

    if engine.kind is not EngineKind.LOCAL or engine.publish_address is not None:
        return engine
    if in_container.in_container():  # on the engine's networks itself
        return engine
    why = await bridge_unreachable(gateway(await docker.network_ipam("bridge")))
    if why is None:
        return engine
    out(
        "emu",
        f"this host cannot reach the engine's bridge addresses ({why}): each instance "
        f"publishes its ports on {LOOPBACK} instead",
    )
    return dataclasses.replace(engine, publish_address=LOOPBACK)
