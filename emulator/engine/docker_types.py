"""What crosses out of the Docker backend: short errors and frozen records, no SDK objects; and
how the records are read from the engine's JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def docker_filter(labels: Mapping[str, str]) -> list[str]:
    """The engine's `label` filter for containers, networks or images carrying all `labels`."""
    return [f"{k}={v}" for k, v in labels.items()]


class DockerError(Exception):
    """A Docker call failed; the message is short enough to show to a user."""


class DockerUnavailable(DockerError):
    """The engine does not answer."""


class NameInUse(DockerError):
    """A container of that name already exists."""


class Unschedulable(DockerError):
    """No node can take the instance (a Swarm task left pending); the message is the
    scheduler's reason."""


class NetworkMissing(DockerError):
    """The network a container was to join is gone (pruned, or removed from outside)."""


class BuildError(DockerError):
    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class EngineInfo:
    version: str
    storage_driver: str
    backing_filesystem: str
    cgroup_version: str
    disk_quota_supported: bool
    cpus: int = 0  # what the engine can give a container; 0: unknown
    memory_bytes: int = 0
    root_dir: str = ""  # DockerRootDir, as the engine's host sees it
    logging_driver: str = ""


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: Mapping[str, str]
    network: str
    environment: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] | None = None
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    disk_bytes: int | None = None  # only passed when the engine can enforce it
    hostname: str | None = None
    # A remote engine or a Swarm: these ports are published on ephemeral host ports bound to
    # `publish_address`, since the engine's bridge addresses cannot be reached from here.
    publish_address: str | None = None
    publish_ports: tuple[int, ...] = ()
    dns: tuple[str, ...] = ()  # the DNS servers (worker mode's egress gateway), else Docker's
    binds: tuple[str, ...] = ()  # "host:container:ro" (worker mode's CA for intercepted HTTPS)

    def host_extras(self) -> dict[str, Any]:
        """DNS servers and bind mounts, as `create_host_config` takes them, when set."""
        extras: dict[str, Any] = {}
        if self.dns:
            extras["dns"] = list(self.dns)
        if self.binds:
            extras["binds"] = list(self.binds)
        return extras

    def host_limits(self) -> dict[str, Any]:
        """The limits (and host_extras()), as the SDK's `create_host_config` takes them."""
        limits: dict[str, Any] = self.host_extras()
        if self.nano_cpus is not None:
            limits["nano_cpus"] = self.nano_cpus
        if self.memory_bytes is not None:
            limits["mem_limit"] = self.memory_bytes
            limits["memswap_limit"] = self.memory_bytes  # swap == memory: no swap
        if self.disk_bytes is not None:
            limits["storage_opt"] = {"size": str(self.disk_bytes)}
        return limits


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # created, running, exited, ...
    labels: Mapping[str, str]
    exit_code: int | None = None
    oom_killed: bool = False
    ip: str | None = None
    host_ports: Mapping[int, int] = field(default_factory=dict)  # container port -> published
    node: str | None = None  # the Swarm node it runs on

    @property
    def alive(self) -> bool:
        return self.status in ("running", "paused", "restarting")


@dataclass(frozen=True)
class Usage:
    """What a running container uses, from one `docker stats` sample."""

    memory_bytes: int  # in use, without the inactive file cache (as `docker stats` counts)
    cpu_throttled_s: float  # time the CPU limit held it back, since it started
    cpu_s: float = 0.0  # CPU time used, since it started
    cpu_periods: int = 0  # CFS periods in which it ran, and those the limit cut short
    cpu_throttled_periods: int = 0


@dataclass(frozen=True)
class Event:
    """A container event: `action` is "start", "die", "oom", "destroy", ..."""

    action: str
    container_id: str
    labels: Mapping[str, str]
    exit_code: int | None


# "network X not found"; on an engine in Swarm mode "Could not attach to network X: rpc error:
# code = NotFound desc = network X not found".
_NETWORK_MISSING = re.compile(r"\bnetwork \S+ not found")


def network_missing(error: str) -> bool:
    """An engine's error saying that the network a container was to join is gone."""
    return _NETWORK_MISSING.search(error) is not None


def engine_info(data: Mapping[str, Any]) -> EngineInfo:
    """From `docker info`."""
    status = dict(data.get("DriverStatus") or [])
    driver = str(data.get("Driver", ""))
    backing = str(status.get("Backing Filesystem", ""))
    # overlay2 enforces `size` only on xfs mounted with pquota; these always can.
    quota = driver in {"btrfs", "zfs", "devicemapper"} or (
        driver == "overlay2" and backing == "xfs"
    )
    return EngineInfo(
        version=str(data.get("ServerVersion", "")),
        storage_driver=driver,
        backing_filesystem=backing,
        cgroup_version=str(data.get("CgroupVersion", "1")),
        disk_quota_supported=quota,
        cpus=int(data.get("NCPU") or 0),
        memory_bytes=int(data.get("MemTotal") or 0),
        root_dir=str(data.get("DockerRootDir") or ""),
        logging_driver=str(data.get("LoggingDriver") or ""),
    )


def usage_from_stats(stats: Mapping[str, Any]) -> Usage | None:
    """From one `docker stats` sample; None when the container does not run (any more)."""
    memory = stats.get("memory_stats") or {}
    if "usage" not in memory:
        return None
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))  # v1, v2
    cpu_stats = stats.get("cpu_stats") or {}
    cpu = cpu_stats.get("throttling_data") or {}
    return Usage(
        max(0, int(memory["usage"]) - int(cache)),
        cpu.get("throttled_time", 0) / 1e9,
        cpu_s=(cpu_stats.get("cpu_usage") or {}).get("total_usage", 0) / 1e9,
        cpu_periods=int(cpu.get("periods", 0)),
        cpu_throttled_periods=int(cpu.get("throttled_periods", 0)),
    )


def event_from_raw(raw: Mapping[str, Any]) -> Event:
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    code = attrs.get("exitCode")
    return Event(
        action=str(raw.get("Action", raw.get("status", ""))),
        container_id=str(actor.get("ID", raw.get("id", ""))),
        labels=attrs,
        exit_code=int(code) if code is not None else None,
    )


def container_info(attrs: Mapping[str, Any], network: str | None) -> ContainerInfo:
    state = attrs.get("State") or {}
    nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    ip: str | None = None
    if network and network in nets:
        ip = nets[network].get("IPAddress") or None
    elif nets:
        ip = next(iter(nets.values())).get("IPAddress") or None
    status = str(state.get("Status", ""))
    host_ports = published_ports((attrs.get("NetworkSettings") or {}).get("Ports"))
    if host_ports:  # published: reached on the address it is bound to
        ip = published_address(attrs) or ip
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        status=status,
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        exit_code=int(state["ExitCode"]) if status in ("exited", "dead") else None,
        oom_killed=bool(state.get("OOMKilled", False)),
        ip=ip,
        host_ports=host_ports,
    )


def port_bindings(spec: ContainerSpec) -> dict[int | str, Any] | None:
    """The SDK's `port_bindings`: ephemeral host ports on `publish_address` only; None: none."""
    ports: dict[int | str, Any] = {f"{p}/tcp": (spec.publish_address,) for p in spec.publish_ports}
    return ports or None


def published_ports(ports: Mapping[str, Any] | None) -> dict[int, int]:
    """From `NetworkSettings.Ports`: container port -> host port, for TCP."""
    found: dict[int, int] = {}
    for key, bindings in (ports or {}).items():
        number, _, proto = str(key).partition("/")
        if proto in ("tcp", "") and bindings:
            found[int(number)] = int(bindings[0]["HostPort"])
    return found


def published_address(attrs: Mapping[str, Any]) -> str | None:
    """The address the ports were bound to, as asked (`HostConfig.PortBindings`)."""
    for bindings in ((attrs.get("HostConfig") or {}).get("PortBindings") or {}).values():
        for binding in bindings or ():
            if binding.get("HostIp"):
                return str(binding["HostIp"])
    return None


def looks_unreachable(exc: BaseException) -> bool:
    """The SDK's words for an engine it cannot reach."""
    text = str(exc)
    return (
        "Connection" in text or "No such file" in text or "Error while fetching server API" in text
    )
