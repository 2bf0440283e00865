"""Egress for one `emu up` in worker mode: what the runtime API calls (service.py is the only
module the rest of emu uses). Started at the first container whose Worker intercepts."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from ..engine.docker_backend import DockerBackend
from ..engine.docker_types import DockerError
from ..instances.errors import StartFailed
from . import gateway as gw
from .ca import CONTAINER_PATH, Authority
from .listener import Listener, Record
from .plan import Plan
from .resolver import Resolver, Route


class Egress:
    def __init__(
        self,
        docker: DockerBackend,
        *,
        home: str,  # the session's network (not internal): where the gateway reaches emu
        name: str,
        labels: Mapping[str, str],
        token: str,
        worker_url: Callable[[], str | None],
        ca_folder: Path,
        notice: Callable[[str], None],
        record: Record,
    ) -> None:
        self._docker = docker
        self._home = home
        self._labels = dict(labels)
        self._notice = notice
        self._ca_folder = ca_folder
        self._ca: Authority | None = None
        self._tls: ssl.SSLContext | None = None
        self._routes: dict[str, Route] = {}  # container address -> its route
        self._addresses: dict[str, str] = {}  # container id -> its address
        self._gateway = gw.Gateway(docker, name, labels)
        self._resolver = Resolver(self._routes.get)
        self._listener = Listener(self._routes.get, worker_url, token, lambda: self._tls, record)
        self._ports: tuple[str, int, int] | None = None
        self._lock = asyncio.Lock()

    async def prepare(self, network: str, tls: bool) -> tuple[str, tuple[str, ...]]:
        """The gateway's address on `network` (the container's DNS server) and the bind
        mounts the container needs (emu's CA, for intercepted HTTPS)."""
        async with self._lock:
            if self._ports is None:
                await gw.ensure_image(self._docker, self._notice)
                host = await gw.emu_address(self._docker, self._home)
                dns = await self._resolver.start(host)
                tcp = await self._listener.start(host)
                self._ports = (host, dns, tcp)
            if tls and self._ca is None:
                self._ca = await asyncio.to_thread(Authority, self._ca_folder)
                self._tls = self._ca.server_context()
        address = await self._gateway.address(network, self._home, self._ports)
        binds = (f"{self._ca.cert_path}:{CONTAINER_PATH}:ro",) if tls and self._ca else ()
        return address, binds

    def register(self, address: str, route: Route, container: str) -> None:
        self._routes[address] = route
        self._addresses[container] = address

    def forget(self, container: str) -> None:
        """The container has exited: its address may go to another one."""
        address = self._addresses.pop(container, None)
        if address is not None:
            self._routes.pop(address, None)

    def update(self, address: str, plan: Plan) -> bool:
        """A plan changed while the container runs; False when it was started without
        interception (its DNS is Docker's: the change applies from its next start)."""
        route = self._routes.get(address)
        if route is None:
            return False
        self._routes[address] = Route(
            route.class_name,
            route.name,
            route.durable_object_id,
            plan,
            route.gateway,
            route.internet,
        )
        return True

    async def close(self) -> None:
        self._resolver.close()
        await self._listener.close()
        await self._gateway.close()


def sealer(
    docker: DockerBackend, labels: Mapping[str, str], notice: Callable[[str], None]
) -> Callable[[str], Awaitable[None]]:
    """Runtime.seal: closes a container's way out, or fails its start (StartFailed). The
    helper image is pulled at the first seal when the engine lacks it."""
    have_image = asyncio.Lock()
    ready = False

    async def seal(container_id: str) -> None:
        nonlocal ready
        try:
            if not ready:
                async with have_image:
                    await gw.ensure_image(docker, notice)
                    ready = True
            await gw.seal(docker, container_id, labels)
        except (gw.EgressError, DockerError) as exc:
            raise StartFailed(f"enableInternet = false: {exc}") from exc

    return seal
