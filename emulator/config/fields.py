"""Checks of single fields of the config file, each turning a raw value into a typed one or a
ConfigError that names the field, the line and what is allowed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.config.jsvalue import is_integer, is_number, js_string, literal

from .document import Document
from .formats import FieldPath
from .model import (
    CUSTOM_DEFAULTS,
    DEFAULT,
    INSTANCE_TYPE_ALIASES,
    INSTANCE_TYPES,
    MAX_DISK_MB,
    MAX_MEMORY_MIB,
    MAX_VCPU,
    MIN_MEMORY_MIB_PER_VCPU,
    MIN_VCPU,
    InstanceType,
    Origin,
)
from .suggest import did_you_mean

# containers[] fields emu reads, and those only deployment uses (accepted without a warning).
CONTAINER_FIELDS = (
    "class_name",
    "image",
    "name",
    "image_build_context",
    "image_vars",
    "max_instances",
    "instance_type",
)
DEPLOY_ONLY_FIELDS = (
    "rollout_step_percentage",
    "rollout_active_grace_period",
    "rollout_kind",
    "scheduling_policy",
    "constraints",
    "affinities",
    "configuration",
    "observability",
)

_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?/)?"
    rf"{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)


def string(doc: Document, path: FieldPath, value: object, *, required: bool = False) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        wanted = "a non-empty string" if required else "a string"
        raise doc.error(path, f"must be {wanted}, not {literal(value)}")
    return value


def instance_type(doc: Document, path: FieldPath, value: object) -> InstanceType:
    names = [*INSTANCE_TYPES, *INSTANCE_TYPE_ALIASES]
    allowed = ", ".join(names)
    if isinstance(value, str):
        name = INSTANCE_TYPE_ALIASES.get(value, value)
        if name not in INSTANCE_TYPES:
            raise doc.error(
                path,
                f"unknown instance type {json.dumps(value)}; {did_you_mean(value, names)}"
                f"allowed: {allowed}, or a custom {{vcpu, memory_mib, disk_mb}}",
            )
        return INSTANCE_TYPES[name]
    if not isinstance(value, dict):
        raise doc.error(
            path,
            f"must be an instance type name ({allowed}) or an object "
            f"{{vcpu, memory_mib, disk_mb}}, not {literal(value)}",
        )
    return _custom_instance_type(doc, path, value)


def _custom_instance_type(
    doc: Document, path: FieldPath, value: Mapping[str, object]
) -> InstanceType:
    unknown = sorted(set(value) - set(CUSTOM_DEFAULTS))
    if unknown:
        raise doc.error(
            (*path, unknown[0]),
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"{did_you_mean(unknown[0], CUSTOM_DEFAULTS)}"
            "a custom instance type has vcpu, memory_mib and disk_mb",
        )
    vcpu = value.get("vcpu", CUSTOM_DEFAULTS["vcpu"])
    memory = value.get("memory_mib", CUSTOM_DEFAULTS["memory_mib"])
    disk = value.get("disk_mb", CUSTOM_DEFAULTS["disk_mb"])
    problems: list[str] = []
    if not is_number(vcpu):
        problems.append(f"vcpu must be a number, not {literal(vcpu)}")
    if not is_integer(memory):
        problems.append(f"memory_mib must be a whole number, not {literal(memory)}")
    if not is_integer(disk):
        problems.append(f"disk_mb must be a whole number, not {literal(disk)}")
    if problems:
        raise doc.error(path, "; ".join(problems))
    assert isinstance(vcpu, int | float) and isinstance(memory, int) and isinstance(disk, int)
    if not MIN_VCPU <= vcpu <= MAX_VCPU:
        problems.append(f"vcpu {vcpu:g} is outside 1/16 (0.0625) to {MAX_VCPU:g}")
    if memory > MAX_MEMORY_MIB:
        problems.append(f"memory_mib {memory} is over 12 GiB ({MAX_MEMORY_MIB})")
    needed = MIN_MEMORY_MIB_PER_VCPU * vcpu
    if memory < needed:
        problems.append(
            f"memory_mib {memory} is under 3 GiB per vCPU ({needed:g} for vcpu {vcpu:g})"
        )
    if disk > MAX_DISK_MB:
        problems.append(f"disk_mb {disk} is over 20 GB ({MAX_DISK_MB})")
    if disk < 1:
        problems.append(f"disk_mb {disk} must be at least 1")
    if problems:
        raise doc.error(path, "custom instance type: " + "; ".join(problems))
    return InstanceType("custom", float(vcpu), memory, disk)


def _looks_like_path(image: str) -> bool:
    if image.startswith(("./", "../", "/", "~", ".\\", "..\\")) or image in (".", ".."):
        return True
    base = image.rsplit("/", 1)[-1]
    if ":" in base or "@" in base:
        return False
    lower = base.lower()
    return lower.startswith(("dockerfile", "containerfile")) or lower.endswith(".dockerfile")


@dataclass(frozen=True)
class Image:
    dockerfile: Path | None
    build_context: Path | None
    build_context_origin: Origin


def image(doc: Document, index: int, entry: Mapping[str, Any], warnings: list[str]) -> Image:
    """containers[index].image and image_build_context: a Dockerfile and its context, or an
    image reference (both None)."""
    project = doc.path.parent
    path: FieldPath = ("containers", index, "image")
    written = string(doc, path, entry.get("image"), required=True)
    candidate = (project / Path(written).expanduser()).resolve()
    context_path: FieldPath = ("containers", index, "image_build_context")
    context_value = entry.get("image_build_context")
    if not (candidate.is_file() or _looks_like_path(written)):
        if not _IMAGE_REFERENCE.fullmatch(written):
            raise doc.error(
                path,
                f"{json.dumps(written)} is neither an existing Dockerfile nor an image reference "
                '(a path like "./Dockerfile", or a reference like "nginx:1.27")',
            )
        if context_value is not None:
            warnings.append(
                doc.warning(
                    context_path,
                    f"{doc.shown(context_path)} is ignored: image {json.dumps(written)} is an "
                    "image reference, not a Dockerfile",
                )
            )
        return Image(None, None, DEFAULT)
    if candidate.is_dir():
        raise doc.error(
            path,
            f"{json.dumps(written)} is a folder; point image at the Dockerfile in it "
            f'(e.g. "{written.rstrip("/")}/Dockerfile")',
        )
    if not candidate.is_file():
        raise doc.error(
            path, f"Dockerfile {json.dumps(written)} not found (looked for {candidate})"
        )
    if context_value is None:
        return Image(candidate, candidate.parent, DEFAULT)
    context_text = string(doc, context_path, context_value, required=True)
    context = (project / Path(context_text).expanduser()).resolve()
    if not context.is_dir():
        raise doc.error(
            context_path,
            f"build context {json.dumps(context_text)} is not a folder (looked for {context})",
        )
    return Image(candidate, context, doc.origin(context_path))


def image_vars(doc: Document, index: int, value: object) -> dict[str, str]:
    path: FieldPath = ("containers", index, "image_vars")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise doc.error(path, f"must be an object of build args, not {literal(value)}")
    out: dict[str, str] = {}
    for key, item in value.items():
        text = js_string(item)
        if text is None:
            raise doc.error(
                (*path, key),
                f"must be a string, number or boolean, not {literal(item)}",
            )
        out[str(key)] = text
    return out


def max_instances(doc: Document, index: int, value: object) -> int:
    path: FieldPath = ("containers", index, "max_instances")
    if not is_integer(value) or not isinstance(value, int) or value < 1:
        raise doc.error(path, f"must be a whole number of at least 1, not {literal(value)}")
    return value


def dev_port(doc: Document) -> tuple[int, Origin] | None:
    """wrangler's `dev.port`, which `wrangler dev` listens on, when the file sets it."""
    dev = doc.data.get("dev")
    if not isinstance(dev, dict) or "port" not in dev:
        return None
    value = dev["port"]
    if not is_integer(value) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise doc.error(("dev", "port"), f"must be a port, 0 to 65535; not {literal(value)}")
    return value, doc.origin(("dev", "port"))


def unknown_container_fields(doc: Document, index: int, entry: Mapping[str, object]) -> list[str]:
    """A warning for each containers[index] field emu does not know, with the nearest name."""
    warnings: list[str] = []
    for key in entry:
        if key not in CONTAINER_FIELDS and key not in DEPLOY_ONLY_FIELDS:
            path: FieldPath = ("containers", index, key)
            hint = did_you_mean(key, CONTAINER_FIELDS).rstrip()
            warnings.append(
                doc.warning(
                    path,
                    f"{doc.shown(path)} is unknown to emu and ignored"
                    + (f"; {hint}" if hint else ""),
                )
            )
    return warnings
