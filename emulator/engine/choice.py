"""Where instances run: the local engine, a remote one, or a Docker Swarm.

- local: containers on a bridge network of emu's own, reached on their bridge addresses.
- remote (`DOCKER_HOST=tcp://...` or `ssh://...`): the bridge is on another machine, so each
  instance publishes its ports on ephemeral host ports bound to the address the engine is
  reached by, and the front proxies there.
- swarm: each instance is a 1-replica service (emulator/engine/swarm.py). From the host, it
  publishes its ports in `mode=host`, reached like a remote engine's; emu in a container
  (EMU_IN_CONTAINER, the stack of compose.swarm.yaml) joins the instances' overlay and
  reaches each task on its overlay address instead, as a production front would.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import in_container
from .docker_backend import DockerBackend
from .swarm import INTERNAL_FROM_HOST


class EngineKind(enum.StrEnum):
    LOCAL = "local"
    REMOTE = "remote"
    SWARM = "swarm"


class EngineError(Exception):
    """A bad --engine or DOCKER_HOST: the message is the line to print."""


LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Engine:
    kind: EngineKind
    # Where published ports are reached (the engine's host); None for local: bridge addresses.
    publish_address: str | None = None

    @classmethod
    def detect(cls, forced: str | None = None, docker_host: str | None = None) -> Engine:
        """From --engine when given, else from DOCKER_HOST: tcp:// and ssh:// are remote."""
        host = os.environ.get("DOCKER_HOST", "") if docker_host is None else docker_host
        scheme = host.partition("://")[0] if "://" in host else ""
        kind = EngineKind(forced) if forced else EngineKind.LOCAL
        if not forced and scheme in ("tcp", "ssh", "http", "https"):
            kind = EngineKind.REMOTE
        if kind is EngineKind.LOCAL:
            return cls(kind)
        if kind is EngineKind.SWARM and in_container.in_container():
            return cls(kind)  # on the overlay: no published ports, the tasks' own addresses
        return cls(kind, engine_address(host))

    def refusal(self, internal_classes: list[str]) -> str | None:
        """Why this engine cannot serve classes with `enableInternet = false`, or None."""
        on_host = self.kind is EngineKind.SWARM and self.publish_address is not None
        if not on_host or not internal_classes:
            return None
        return f"{', '.join(internal_classes)}: {INTERNAL_FROM_HOST}"

    def backend(self, *, start_timeout: float, stop_grace: float) -> DockerBackend:
        if self.kind is EngineKind.SWARM:
            from .swarm import SwarmBackend

            return SwarmBackend(
                publish_address=self.publish_address,
                start_timeout=start_timeout,
                stop_grace=stop_grace,
            )
        return DockerBackend()


def engine_address(docker_host: str) -> str:
    """The IP address the engine is reached by: DOCKER_HOST's host, resolved; loopback for a
    unix socket (a local engine forced into remote mode)."""
    if "://" not in docker_host or docker_host.startswith(("unix://", "npipe://")):
        return LOOPBACK
    name = urlsplit(docker_host).hostname
    if not name:
        raise EngineError(f"DOCKER_HOST={docker_host!r} names no host")
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    try:  # Docker binds published ports to an address, not a name
        return str(socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)[0][4][0])
    except OSError as exc:
        raise EngineError(f"cannot resolve the engine's host {name!r}: {exc}") from exc
