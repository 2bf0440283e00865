"""emu's helper containers for egress, on the engine: the gateway (relay.py, one per session,
on every network that has intercepted instances) and the seal (seal.py, run once in the
network namespace of each container with `enableInternet = false`).

Both run HELPER_IMAGE with a stdlib script passed on the command line, so no image is built."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..engine import in_container
from ..engine.docker_backend import DockerBackend
from ..engine.docker_types import DockerError
from ..runs.labels import ROLE

HELPER_IMAGE = "python:3.11-slim"
HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0
SEAL_TIMEOUT = 30.0


class EgressError(Exception):
    """The gateway or a seal could not be had; the message is one line."""


def _script(name: str) -> str:
    return (HERE / name).read_text()


async def ensure_image(docker: DockerBackend, notice: Callable[[str], None]) -> None:
    if await docker.image_exists(HELPER_IMAGE):
        return
    notice(f"pulling {HELPER_IMAGE} for emu's egress helpers (once)")
    await docker.pull(HELPER_IMAGE, 600.0, notice)


async def emu_address(docker: DockerBackend, network: str) -> str:
    """Where the gateway reaches emu on a bridge network: the host's address on it, or emu's
    own container's (compose.yaml, which joins emu to its networks)."""

    def get(client: Any) -> str:
        if in_container.in_container():
            me = client.api.inspect_container(socket.gethostname())
            return str(me["NetworkSettings"]["Networks"][network]["IPAddress"])
        config = client.api.inspect_network(network)["IPAM"]["Config"]
        gateways = [c["Gateway"] for c in config if c.get("Gateway") and ":" not in c["Gateway"]]
        if not gateways:
            raise EgressError(f"network {network} has no IPv4 gateway address")
        return str(gateways[0])

    return await docker.call(get)


async def seal(docker: DockerBackend, container_id: str, labels: Mapping[str, str]) -> None:
    """Remove the default route of a container (see seal.py); raises EgressError."""

    def run(client: Any) -> tuple[int, str]:
        api = client.api
        created = api.create_container(
            HELPER_IMAGE,
            command=["python", "-c", _script("seal.py")],
            labels={**labels, ROLE: "seal"},
            host_config=api.create_host_config(
                network_mode=f"container:{container_id}", cap_add=["NET_ADMIN"]
            ),
        )
        cid = created["Id"]
        try:
            api.start(cid)
            code = int(api.wait(cid, timeout=SEAL_TIMEOUT)["StatusCode"])
            return code, api.logs(cid).decode(errors="replace").strip()
        finally:
            api.remove_container(cid, force=True)

    try:
        code, output = await docker.call(run, SEAL_TIMEOUT + 10)
    except DockerError as exc:
        raise EgressError(f"cannot close the container's way out: {exc}") from exc
    if code != 0:
        last = output.splitlines()[-1] if output else f"exit code {code}"
        raise EgressError(f"cannot close the container's way out: {last}")


class Gateway:
    """The session's gateway container, joined to each network that needs it."""

    def __init__(self, docker: DockerBackend, name: str, labels: Mapping[str, str]) -> None:
        self._docker = docker
        self.name = name
        self._labels = dict(labels)
        self._id: str | None = None
        self._lock = asyncio.Lock()
        self._addresses: dict[str, str] = {}  # network -> its address there

    async def address(self, network: str, home: str, emu: tuple[str, int, int]) -> str:
        """Its address on `network`, started on `home` (where it reaches emu at `emu`: host,
        DNS port, TCP port) and joined to `network` when not yet."""
        async with self._lock:
            if self._id is not None and not await self._alive(self._id):
                # Removed or stopped under emu (`docker rm -f`, an engine restart): made again.
                await self._docker.remove_container(self._id)
                self._id = None
                self._addresses.clear()
            if self._id is None:
                self._id = await self._start(home, emu)
            if network not in self._addresses:
                self._addresses[network] = await self._join(network)
            return self._addresses[network]

    async def _alive(self, cid: str) -> bool:
        info = await self._docker.inspect(cid)
        return info is not None and info.status == "running"

    async def _start(self, home: str, emu: tuple[str, int, int]) -> str:
        def run(client: Any) -> str:
            api = client.api
            created = api.create_container(
                HELPER_IMAGE,
                name=self.name,
                command=["python", "-c", _script("relay.py"), *map(str, emu)],
                labels={**self._labels, ROLE: "egress-gateway"},
                host_config=api.create_host_config(network_mode=home),
            )
            api.start(created["Id"])
            return str(created["Id"])

        cid = await self._docker.call(run)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        while loop.time() < deadline:
            logs = await self._docker.logs_tail(cid, 5)
            if any("gateway ready" in line for line in logs):
                return cid
            info = await self._docker.inspect(cid)
            if info is None or info.status not in ("created", "running"):
                raise EgressError(f"emu's egress gateway exited: {' / '.join(logs)}")
            await asyncio.sleep(0.1)
        raise EgressError(f"emu's egress gateway did not start within {READY_TIMEOUT:g} s")

    async def _join(self, network: str) -> str:
        cid = self._id
        assert cid is not None

        def join(client: Any) -> str:
            api = client.api
            attrs = api.inspect_container(cid)
            nets = attrs["NetworkSettings"]["Networks"]
            if network not in nets:
                api.connect_container_to_network(cid, network)
                nets = api.inspect_container(cid)["NetworkSettings"]["Networks"]
            return str(nets[network]["IPAddress"])

        return await self._docker.call(join)

    async def close(self) -> None:
        cid, self._id = self._id, None
        self._addresses.clear()
        if cid is not None:
            await self._docker.remove_container(cid)
