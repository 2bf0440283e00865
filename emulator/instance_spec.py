"""What container an instance gets: its name, labels, network, environment and limits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import labels
from .config import ClassConfig
from .docker_types import ContainerSpec


@dataclass(frozen=True)
class StartOptions:
    """What a Worker's `ctx.container.start()` asks for (worker mode), over the class's
    settings. None means: the class's setting."""

    env: Mapping[str, str] | None = None
    entrypoint: tuple[str, ...] | None = None
    enable_internet: bool | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    durable_object_id: str | None = None  # the Durable Object's own id, as the Worker gives it


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
    }
    return ContainerSpec(
        # The slug alone would make "Foo" and "foo", or "x_1" and "x-1", one container.
        name=f"{name_prefix}-{_slug(cfg.class_name)}-{_slug(name)[:40]}-{object_id[:6]}",
        image=image,
        # The Worker's labels first: emu's own always win.
        labels={
            **options.labels,
            **labels.instance_labels(session_labels, cfg.class_name, cfg.binding, name),
        },
        network=network,
        environment=env,
        entrypoint=cfg.entrypoint if options.entrypoint is None else options.entrypoint,
        nano_cpus=round(itype.vcpu * 1e9),
        memory_bytes=itype.memory_mib * 1024 * 1024,
        disk_bytes=itype.disk_mb * 1000 * 1000 if disk_enforced else None,
        hostname=_slug(name)[:63],
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.") or "x"
