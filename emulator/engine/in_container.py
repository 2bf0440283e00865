"""emu running in a container itself (compose.yaml): it joins the networks it makes for its
instances, so that it reaches them on their bridge addresses as it does from the host.

Asked for with EMU_IN_CONTAINER=1 (compose.yaml sets it): emu's container is the one whose id
starts with this container's hostname, which is what Docker makes it by default (a Swarm
task's too: emu in a stack, compose.swarm.yaml)."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

from .docker_backend import DockerBackend
from .docker_types import DockerError

VARIABLE = "EMU_IN_CONTAINER"


def in_container() -> bool:
    return os.environ.get(VARIABLE, "") not in ("", "0")


async def join(
    docker: DockerBackend, stack: AsyncExitStack, networks: list[str], labels: Mapping[str, str]
) -> None:
    """Attach this container to `networks`, and detach it again when `stack` closes (before
    the networks are removed: a network with an endpoint cannot be)."""
    me = socket.gethostname()
    for network in networks:
        try:
            await docker.call(_connect(me, network))
        except DockerError as exc:
            if "not found" not in str(exc).lower():
                raise
            # A Swarm task (emu in a stack) is connected only to an overlay its node has
            # already; a plain container on the overlay makes the node attach it. It stays
            # until emu has left: removed before, it leaves the node a copy of the overlay
            # that no one can remove.
            anchor = await docker.call(_anchor(me, network, labels))
            stack.push_async_callback(_remove, docker, anchor)
            await docker.call(_connect(me, network))
        stack.push_async_callback(_leave, docker, me, network)


def _connect(me: str, network: str) -> Callable[[Any], None]:
    return lambda client: client.api.connect_container_to_network(me, network)


def _anchor(me: str, network: str, labels: Mapping[str, str]) -> Callable[[Any], str]:
    """Run a container of emu's own image, asleep, on `network`; its id."""

    def run(client: Any) -> str:
        image = client.api.inspect_container(me)["Config"]["Image"]
        asleep = ["sleep", "infinity"]
        anchor = client.containers.run(
            image, entrypoint=asleep, network=network, labels=dict(labels), detach=True
        )
        return str(anchor.id)

    return run


async def _remove(docker: DockerBackend, container: str) -> None:
    with contextlib.suppress(DockerError):
        await docker.call(lambda client: client.api.remove_container(container, force=True))


async def _leave(docker: DockerBackend, me: str, network: str) -> None:
    with contextlib.suppress(DockerError):
        await docker.call(
            lambda client: client.api.disconnect_container_from_network(me, network, force=True)
        )
