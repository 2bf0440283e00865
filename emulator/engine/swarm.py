"""Docker Swarm: each instance is a 1-replica service, the scheduler places it.

The instance code (emulator/instances/) is the same as on one engine: this backend answers
the container calls for services. An instance's id is its service's id; its task's container
is what emits the engine's events, and they are mapped back to the service here.

- Resources: Limits = the instance type, Reservations = the limits, so a node takes an
  instance only where it fits; restart policy none; emu's labels on the service and its task.
- Networks: an attachable overlay network of the project's.
- Reaching a task from emu on the host: its ports are published in `mode=host` on an
  ephemeral port of the node it runs on, and the front proxies to node:port (the node emu
  talks to is reached by the engine's address). An overlay address is only reachable from a
  container on that overlay: emu in the stack (publish_address None) joins the overlay and
  proxies to the task's address there, published nothing; so it alone serves tasks of an
  internal overlay (enableInternet = false), which have no published ports.
- A task left `pending` (no node has the CPU or memory) past --start-timeout: the service is
  removed and the start answers 503 with the scheduler's reason.
- A task its node rejects (an image that node lacks and cannot pull: the manager cannot ship
  one built here) fails the start with the node's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from .docker_backend import DockerBackend
from .docker_types import (
    ContainerInfo,
    ContainerSpec,
    DockerError,
    EngineInfo,
    Event,
    NameInUse,
    Unschedulable,
    docker_filter,
)

SERVICE_LABEL = "com.docker.swarm.service.id"  # Docker's own, on a task's container
POLL = 0.05  # how often a start asks for its task's state
RUNNING = "running"
REJECTED = "rejected"  # the node's agent refused the task: its container never existed
# Task states before `running` (the task may yet run) and after it (it will not).
EARLY = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready"})
EARLY |= {"starting"}
REMOVE_WAIT = 20.0  # an overlay network is busy until its tasks' endpoints are gone


# A task on an internal overlay has no published port (those go through Docker's gateway
# bridge, which is the way out an internal network denies), so only a container on that
# overlay reaches it.
INTERNAL_FROM_HOST = (
    "enableInternet = false needs emu on the instances' overlay under --engine swarm: emu on "
    "the host cannot reach a task of an internal overlay. Run emu in the stack (docker stack "
    "deploy -c compose.yaml -c compose.swarm.yaml emu), or use --engine local"
)


class SwarmBackend(DockerBackend):
    def __init__(
        self, *, publish_address: str | None, start_timeout: float, stop_grace: float
    ) -> None:
        super().__init__()
        # How the node emu talks to is reached; None: emu is on the overlay, tasks' addresses.
        self._address = publish_address
        self._internal: set[str] = set()  # the internal overlays' names
        self._start_timeout = start_timeout
        self._stop_grace = stop_grace
        self._self_node = ""
        self._task_container: dict[str, str] = {}  # service id -> its task's container id

    async def connect(self) -> EngineInfo:
        info = await super().connect()

        def swarm(client: Any) -> dict[str, Any]:
            return dict(client.info().get("Swarm") or {})

        state = await self.call(swarm)
        if not state.get("ControlAvailable"):
            raise DockerError(
                "--engine swarm needs a Swarm manager; this engine is not one "
                "(docker swarm init, or point DOCKER_HOST at a manager)"
            )
        self._self_node = str(state.get("NodeID", ""))
        return info

    # -- networks: overlay, attachable ------------------------------------------------------

    async def create_network(self, name: str, labels: Mapping[str, str], internal: bool) -> str:
        def create(client: Any) -> str:
            net = client.networks.create(
                name,
                driver="overlay",
                attachable=True,
                labels=dict(labels),
                internal=internal,
                check_duplicate=True,
            )
            return str(net.id)

        found = await self.call(create)
        if internal:
            self._internal.add(name)
        return found

    async def remove_network(self, id_or_name: str) -> None:
        """Retried while the network still has endpoints of tasks being removed; returns once
        the engine no longer lists it (a Swarm removes it asynchronously)."""
        deadline = asyncio.get_running_loop().time() + REMOVE_WAIT
        removed = False
        while True:
            try:
                if not removed:
                    await self.call(lambda c: c.api.remove_network(id_or_name))
                    removed = True
                await self.call(lambda c: c.api.inspect_network(id_or_name))
            except DockerError as exc:
                if _missing(exc):
                    return
                if "active endpoints" not in str(exc) and "in use" not in str(exc):
                    raise
            if asyncio.get_running_loop().time() > deadline:
                raise DockerError(f"network {id_or_name} still there after {REMOVE_WAIT:g} s")
            await asyncio.sleep(0.1)  # polling the engine: it has no event for this

    # -- instances as services ---------------------------------------------------------------

    async def run_container(self, spec: ContainerSpec) -> ContainerInfo:
        """Create the service and wait for its task to run (or fail, or stay pending past
        --start-timeout)."""
        if self._address is not None and spec.network in self._internal:
            raise DockerError(INTERNAL_FROM_HOST)
        try:
            arguments = _service(spec, self._stop_grace)
            created = await self.call(lambda c: c.api.create_service(**arguments))
        except DockerError as exc:
            if "already exists" in str(exc) or "conflicts with" in str(exc):
                raise NameInUse(str(exc)) from exc
            raise
        sid = str(created["ID"])
        try:
            return await self._wait_task(sid, spec)
        except BaseException:
            with contextlib.suppress(DockerError, asyncio.CancelledError):
                await self.remove_container(sid)
            raise

    async def _wait_task(self, sid: str, spec: ContainerSpec) -> ContainerInfo:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while True:
            task = await self._task(sid)
            status = (task or {}).get("Status") or {}
            state = str(status.get("State", "new"))
            if state == REJECTED and task is not None:
                node = await self._node_name(str(task.get("NodeID", "")))
                raise DockerError(_rejection(node or "?", str(status.get("Err", ""))))
            if state == RUNNING or (task and state not in EARLY):
                assert task is not None
                return await self._info(sid, spec.name, spec.labels, task)
            if loop.time() > deadline:
                reason = str(status.get("Err") or status.get("Message") or state)
                raise Unschedulable(
                    f"the task stayed {state} for {self._start_timeout:g} s (--start-timeout): "
                    f"{reason}"
                )
            await asyncio.sleep(POLL)  # the scheduler has no event for "placed"

    async def _task(self, sid: str) -> dict[str, Any] | None:
        tasks = await self.call(lambda c: c.api.tasks(filters={"service": sid}))
        tasks = sorted(tasks, key=lambda t: str(t.get("CreatedAt", "")))
        return dict(tasks[-1]) if tasks else None

    async def _info(
        self, sid: str, name: str, labels: Mapping[str, str], task: Mapping[str, Any]
    ) -> ContainerInfo:
        status = task.get("Status") or {}
        state = str(status.get("State", ""))
        container = status.get("ContainerStatus") or {}
        cid = str(container.get("ContainerID") or "")
        if cid:
            self._task_container[sid] = cid
        ports = (status.get("PortStatus") or {}).get("Ports") or []
        node = str(task.get("NodeID", ""))
        code = container.get("ExitCode")
        return ContainerInfo(
            id=sid,
            name=name,
            status="running" if state in EARLY or state == RUNNING else "exited",
            labels=dict(labels),
            exit_code=int(code) if code is not None and state not in EARLY | {RUNNING} else None,
            ip=await self._node_address(node) if self._address else _overlay_address(task),
            host_ports=_published(ports),
            node=await self._node_name(node),
        )

    async def _node_address(self, node: str) -> str | None:
        if not node or node == self._self_node:
            return self._address
        found = await self.call(lambda c: c.api.inspect_node(node))
        return str((found.get("Status") or {}).get("Addr") or self._address)

    async def _node_name(self, node: str) -> str | None:
        if not node:
            return None
        with contextlib.suppress(DockerError):
            found = await self.call(lambda c: c.api.inspect_node(node))
            return str((found.get("Description") or {}).get("Hostname") or node[:12])
        return node[:12]

    async def inspect(self, container_id: str, network: str | None = None) -> ContainerInfo | None:
        """The service's task; with its container's own record (exit code, out of memory)
        when that container is on this engine."""
        try:
            service = await self.call(lambda c: c.api.inspect_service(container_id))
        except DockerError as exc:
            if not _missing(exc):
                raise
            return await super().inspect(container_id, network)
        task = await self._task(container_id)
        if task is None:
            return None
        spec_labels = (service.get("Spec") or {}).get("Labels") or {}
        info = await self._info(container_id, service["Spec"]["Name"], spec_labels, task)
        cid = self._task_container.get(container_id)
        local = await super().inspect(cid) if cid else None
        if local is not None and not local.alive:
            return ContainerInfo(
                id=info.id,
                name=info.name,
                status=local.status,
                labels=info.labels,
                exit_code=local.exit_code,
                oom_killed=local.oom_killed,
                ip=info.ip,
                host_ports=info.host_ports,
                node=info.node,
            )
        return info

    async def signal(self, container_id: str, sig: str) -> None:
        """To the task's container when it is on this engine; else (another node) a SIGTERM
        removes the service, which stops its task with SIGTERM and the stop grace."""
        cid = self._task_container.get(container_id)
        if cid is not None and await super().inspect(cid) is not None:
            await super().signal(cid, sig)
        elif sig == "SIGTERM":
            await self._remove_service(container_id)

    async def remove_container(self, container_id: str) -> None:
        """A service (by id or name): removed, and its task's container with it at once when
        it is on this engine. A plain container: removed."""
        cid = self._task_container.pop(container_id, None)
        if not await self._remove_service(service_name(container_id)):
            await super().remove_container(container_id)
        if cid is not None:
            await super().remove_container(cid)

    async def _remove_service(self, sid: str) -> bool:
        try:
            await self.call(lambda c: c.api.remove_service(sid))
        except DockerError as exc:
            if not _missing(exc):
                raise
            return False
        return True

    async def logs_tail(self, container_id: str, lines: int = 20) -> list[str]:
        return await super().logs_tail(self._task_container.get(container_id, container_id), lines)

    async def usage(self, container_id: str) -> Any:
        return await super().usage(self._task_container.get(container_id, container_id))

    async def logs(self, container_id: str, tail: int | None = None) -> list[tuple[float, str]]:
        return await super().logs(self._task_container.get(container_id, container_id), tail)

    def stream_logs(
        self, container_id: str, on_line: Callable[[str], None], *, tail: int | None = None
    ) -> Callable[[], None]:
        task = self._task_container.get(container_id, container_id)
        return super().stream_logs(task, on_line, tail=tail)

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """The services carrying `labels` (with their task's state and node), and the plain
        containers; a task's own container is its service's, not listed twice."""
        wanted = {"label": docker_filter(labels)}
        services = await self.call(lambda c: c.api.services(filters=wanted))
        found = [c for c in await super().list_containers(labels) if SERVICE_LABEL not in c.labels]
        for service in services:
            sid = str(service["ID"])
            spec = service.get("Spec") or {}
            task = await self._task(sid)
            if task is None:
                found.append(ContainerInfo(sid, spec.get("Name", sid), "pending", spec["Labels"]))
            else:
                found.append(await self._info(sid, spec.get("Name", sid), spec["Labels"], task))
        return found

    def watch_events(
        self,
        labels: Mapping[str, str],
        on_event: Callable[[Event], None],
        on_connection: Callable[[bool], None],
    ) -> None:
        """A task container's events, as its service's (the instance's id)."""

        def mapped(event: Event) -> None:
            sid = event.labels.get(SERVICE_LABEL)
            if sid:
                self._task_container.setdefault(sid, event.container_id)
                event = Event(event.action, sid, event.labels, event.exit_code)
            on_event(event)

        super().watch_events(labels, mapped, on_connection)


def service_name(name: str) -> str:
    """A container name made a service name: a DNS label of at most 63 characters. The
    container name ends with the instance's own hash, kept."""
    name = name.replace(".", "-").replace("_", "-")
    return name if len(name) <= 63 else name[:56] + name[-7:]


def _service(spec: ContainerSpec, stop_grace: float) -> dict[str, Any]:
    """The create_service arguments of an instance."""
    limits: dict[str, int] = {}
    if spec.nano_cpus is not None:
        limits["NanoCPUs"] = spec.nano_cpus
    if spec.memory_bytes is not None:
        limits["MemoryBytes"] = spec.memory_bytes
    container: dict[str, Any] = {
        "Image": spec.image,
        "Labels": dict(spec.labels),
        "Env": [f"{k}={v}" for k, v in spec.environment.items()],
        "Hostname": spec.hostname or "",
        "StopGracePeriod": int(stop_grace * 1e9),
    }
    if spec.entrypoint is not None:
        container["Command"] = list(spec.entrypoint)
    return {
        "name": service_name(spec.name),
        "labels": dict(spec.labels),
        "task_template": {
            "ContainerSpec": container,
            "Resources": {"Limits": limits, "Reservations": dict(limits)},
            "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
            "Networks": [{"Target": spec.network}],
        },
        "endpoint_spec": {
            "Ports": [
                {"Protocol": "tcp", "TargetPort": p, "PublishMode": "host"}
                for p in spec.publish_ports
            ]
        },
    }


def _published(ports: list[dict[str, Any]]) -> dict[int, int]:
    """Target port -> published port. Docker 20.10 binds a task's port twice, on 0.0.0.0 and
    on [::], first the IPv4 one, and may give the two different ephemeral ports: the first is
    the one emu's IPv4 address reaches."""
    found: dict[int, int] = {}
    for p in ports:
        found.setdefault(int(p["TargetPort"]), int(p["PublishedPort"]))
    return found


def _rejection(node: str, err: str) -> str:
    """Why a node refused a task; for an image it lacks, what to do (a node pulls what it
    lacks: the manager cannot hand it an image built here)."""
    text = f"node {node} rejected the task: {err}"
    if "no such image" in err.lower():
        text += "; on several nodes, push the image to a registry they all reach and set "
        text += "`image` to that reference"
    return text


def _overlay_address(task: Mapping[str, Any]) -> str | None:
    """The task's address on its overlay (an instance has one network; `ingress` is the
    routing mesh's, not one of emu's)."""
    for attached in task.get("NetworksAttachments") or []:
        if (attached.get("Network") or {}).get("Spec", {}).get("Ingress"):
            continue
        for address in attached.get("Addresses") or []:
            return str(address).partition("/")[0]
    return None


def _missing(exc: DockerError) -> bool:
    """The engine's 404: "service x not found", "No such container: x"."""
    text = str(exc).lower()
    return "not found" in text or "no such" in text
