"""emu running in a container itself (compose.yaml): it joins the networks it makes for its
instances, so that it reaches them on their bridge addresses as it does from the host.

Asked for with EMU_IN_CONTAINER=1 (compose.yaml sets it): emu's container is the one whose id
starts with this container's hostname, which is what Docker makes it by default."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from ..docker_backend import DockerBackend
from ..docker_types import DockerError

VARIABLE = "EMU_IN_CONTAINER"


def in_container() -> bool:
    return os.environ.get(VARIABLE, "") not in ("", "0")


async def join(docker: DockerBackend, stack: AsyncExitStack, networks: list[str]) -> None:
    """Attach this container to `networks`, and detach it again when `stack` closes (before
    the networks are removed: a network with an endpoint cannot be)."""
    me = socket.gethostname()
    for network in networks:
        await docker.call(_connect(me, network))
        stack.push_async_callback(_leave, docker, me, network)


def _connect(me: str, network: str) -> Callable[[Any], None]:
    return lambda client: client.api.connect_container_to_network(me, network)


async def _leave(docker: DockerBackend, me: str, network: str) -> None:
    with contextlib.suppress(DockerError):
        await docker.call(
            lambda client: client.api.disconnect_container_from_network(me, network, force=True)
        )
