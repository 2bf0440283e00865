"""What container an instance gets: its name, labels, network, environment and limits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import ClassConfig, InstanceType
from ..engine.docker_types import ContainerSpec
from ..runs import labels


@dataclass(frozen=True)
class Capacity:
    """What the Docker engine has for one container: its CPUs and memory (0: unknown)."""

    cpus: int = 0
    memory_bytes: int = 0


def nano_cpus(itype: InstanceType, capacity: Capacity) -> int:
    """The type's vCPU, capped at the engine's CPU count: the engine refuses more ("Range of
    CPUs is from 0.01 to 2.00") on every start."""
    wanted = round(itype.vcpu * 1e9)
    return min(wanted, capacity.cpus * 10**9) if capacity.cpus else wanted


def capacity_note(itype: InstanceType, capacity: Capacity) -> str | None:
    """What of the type this engine cannot give, in one line; None when it fits."""
    notes = []
    if capacity.cpus and itype.vcpu > capacity.cpus:
        notes.append(
            f"{itype.vcpu:g} vCPU is more than this Docker engine's {capacity.cpus} CPUs: "
            f"containers get {capacity.cpus} (NanoCpus capped), the memory limit is kept"
        )
    total_mib = capacity.memory_bytes // 2**20
    if capacity.memory_bytes and itype.memory_mib * 2**20 > capacity.memory_bytes:
        notes.append(
            f"{itype.memory_mib} MiB memory is more than this Docker engine's {total_mib} MiB: "
            "the limit is kept, so a container can run the machine out of memory before it "
            "reaches its own limit"
        )
    return f"instance type {itype.name}: " + "; ".join(notes) if notes else None


@dataclass(frozen=True)
class StartOptions:
    """What a Worker's `ctx.container.start()` asks for (worker mode), over the class's
    settings. None means: the class's setting."""

    env: Mapping[str, str] | None = None
    entrypoint: tuple[str, ...] | None = None
    enable_internet: bool | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    durable_object_id: str | None = None  # the Durable Object's own id, as the Worker gives it
    dns: tuple[str, ...] = ()  # emu's egress gateway, when the Worker intercepts (emulator/egress)
    binds: tuple[str, ...] = ()


def durable_object_id(class_name: str, name: str) -> str:
    """Stable per name, 64 hex characters like the platform's."""
    return hashlib.sha256(f"{class_name}\0{name}".encode()).hexdigest()


def container_spec(
    cfg: ClassConfig,
    name: str,
    *,
    image: str,
    network: str,
    session_labels: Mapping[str, str],
    name_prefix: str,
    disk_enforced: bool,
    publish_address: str | None = None,
    capacity: Capacity = Capacity(),
    name_suffix: str = "",
    options: StartOptions = StartOptions(),
) -> ContainerSpec:
    itype = cfg.instance_type
    object_id = durable_object_id(cfg.class_name, name)
    env = {
        "CLOUDFLARE_APPLICATION_ID": hashlib.sha256(cfg.name.encode()).hexdigest()[:32],
        "CLOUDFLARE_COUNTRY_A2": "XX",
        "CLOUDFLARE_LOCATION": "emu",
        "CLOUDFLARE_REGION": "LOCAL",
        "CLOUDFLARE_DURABLE_OBJECT_ID": options.durable_object_id or object_id,
        **(cfg.env_vars if options.env is None else options.env),
        **cfg.forced_env,
    }
    return ContainerSpec(
        # The slug alone would make "Foo" and "foo", or "x_1" and "x-1", one container.
        name=f"{name_prefix}-{_slug(cfg.class_name)}-{_slug(name)[:40]}-{object_id[:6]}"
        + name_suffix,
        image=image,
        # The Worker's labels first: emu's own always win.
        labels={
            **options.labels,
            **labels.instance_labels(session_labels, cfg.class_name, cfg.binding, name),
        },
        network=network,
        environment=env,
        entrypoint=cfg.entrypoint if options.entrypoint is None else options.entrypoint,
        nano_cpus=nano_cpus(itype, capacity),
        memory_bytes=itype.memory_mib * 1024 * 1024,
        disk_bytes=itype.disk_mb * 1000 * 1000 if disk_enforced else None,
        hostname=_slug(name)[:63],
        publish_address=publish_address,
        publish_ports=_ports(cfg) if publish_address is not None else (),
        dns=options.dns,
        binds=options.binds,
    )


def _ports(cfg: ClassConfig) -> tuple[int, ...]:
    """What the proxy and the readiness probe reach: the required ports and the default one."""
    default = (cfg.default_port,) if cfg.default_port is not None else ()
    return tuple(sorted({*cfg.required_ports, *default}))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.") or "x"
