"""What container an instance gets: its name, labels, network, environment and limits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from . import labels
from .config import ClassConfig
from .docker_types import ContainerSpec


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
) -> ContainerSpec:
    itype = cfg.instance_type
    object_id = durable_object_id(cfg.class_name, name)
    env = {
        "CLOUDFLARE_APPLICATION_ID": hashlib.sha256(cfg.name.encode()).hexdigest()[:32],
        "CLOUDFLARE_COUNTRY_A2": "XX",
        "CLOUDFLARE_LOCATION": "emu",
        "CLOUDFLARE_REGION": "LOCAL",
        "CLOUDFLARE_DURABLE_OBJECT_ID": object_id,
        **cfg.env_vars,
    }
    return ContainerSpec(
        # The slug alone would make "Foo" and "foo", or "x_1" and "x-1", one container.
        name=f"{name_prefix}-{_slug(cfg.class_name)}-{_slug(name)[:40]}-{object_id[:6]}",
        image=image,
        labels=labels.instance_labels(session_labels, cfg.class_name, cfg.binding, name),
        network=network,
        environment=env,
        entrypoint=cfg.entrypoint,
        nano_cpus=round(itype.vcpu * 1e9),
        memory_bytes=itype.memory_mib * 1024 * 1024,
        disk_bytes=itype.disk_mb * 1000 * 1000 if disk_enforced else None,
        hostname=_slug(name)[:63],
        publish_address=publish_address,
        publish_ports=_ports(cfg) if publish_address is not None else (),
    )


def _ports(cfg: ClassConfig) -> tuple[int, ...]:
    """What the proxy and the readiness probe reach: the required ports and the default one."""
    default = (cfg.default_port,) if cfg.default_port is not None else ()
    return tuple(sorted({*cfg.required_ports, *default}))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-.") or "x"
