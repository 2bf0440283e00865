"""`emu config` and `emu config --json`: the resolved settings, each with where it came from.

Files are shown relative to the config file's folder, wherever emu was run from: the same
file reads the same in origins, values and warnings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from emulator.config.durations import format_duration

from .model import (
    DEFAULT,
    GLOBAL_FLAGS,
    ClassConfig,
    Config,
    ConfigWarning,
    FileOrigin,
    InstanceType,
    Origin,
)
from .model import display as relative

_GLOBAL_KEYS = ("env", "worker_name", "main", *GLOBAL_FLAGS)
_DURATIONS = ("sleep_after", "start_timeout", "stop_grace", "header_timeout", "keepalive_timeout")
_CLASS_KEYS = tuple(f.name for f in fields(ClassConfig) if f.name not in ("class_name", "origins"))


def describe(config: Config) -> str:
    """The resolved settings, each with where it came from, for `emu config`."""
    root = config.project_dir
    lines = [f"config {config.path}"]
    rows = [
        (key, _text_value(key, getattr(config, key), root), _origin(config.origins, key, root))
        for key in _GLOBAL_KEYS
    ]
    lines += _table(rows, "  ")
    for cls in config.classes:
        lines.append("")
        lines.append(f"class {cls.class_name}  ({_origin(cls.origins, 'class_name', root)})")
        class_rows = [
            (key, _text_value(key, getattr(cls, key), root), _origin(cls.origins, key, root))
            for key in _CLASS_KEYS
        ]
        lines += _table(class_rows, "  ")
    if config.warnings:
        lines.append("")
        lines.append("warnings")
        lines += [f"  - {_warning(warning, root)}" for warning in config.warnings]
    return "\n".join(lines)


def as_json(config: Config) -> dict[str, Any]:
    """The resolved settings for `emu config --json`: every setting as {value, origin}. Values
    that are paths stay absolute, for programs; `project_dir` is what origins are relative to."""
    root = config.project_dir

    def settings(obj: object, origins: Mapping[str, Origin], keys: Sequence[str]) -> object:
        return {
            key: {"value": _json_value(getattr(obj, key)), "origin": _origin(origins, key, root)}
            for key in keys
        }

    return {
        "path": str(config.path),
        "project_dir": str(config.project_dir),
        "settings": settings(config, config.origins, _GLOBAL_KEYS),
        "classes": [
            {
                "class_name": cls.class_name,
                "origin": _origin(cls.origins, "class_name", root),
                "settings": settings(cls, cls.origins, _CLASS_KEYS),
            }
            for cls in config.classes
        ],
        "warnings": [_warning(warning, root) for warning in config.warnings],
    }


def _origin(origins: Mapping[str, Origin], key: str, root: Path) -> str:
    origin = origins.get(key, DEFAULT)
    return origin.relative_to(root) if isinstance(origin, FileOrigin) else str(origin)


def _warning(warning: str, root: Path) -> str:
    return warning.relative_to(root) if isinstance(warning, ConfigWarning) else warning


def _table(entries: Sequence[tuple[str, str, str]], indent: str) -> list[str]:
    width_key = max(len(k) for k, _, _ in entries)
    width_value = max(len(v) for _, v, _ in entries)
    return [
        f"{indent}{k.ljust(width_key)}  {v.ljust(width_value)}  {o}".rstrip() for k, v, o in entries
    ]


def _instance_type_text(t: InstanceType) -> str:
    return f"{t.name} ({t.vcpu:g} vCPU, {t.memory_mib} MiB memory, {t.disk_mb} MB disk)"


def _text_value(key: str, value: object, root: Path) -> str:
    durations = (
        "sleep_after",
        "start_timeout",
        "stop_grace",
        "header_timeout",
        "keepalive_timeout",
    )
    if key in durations and isinstance(value, float):
        return format_duration(value)
    if isinstance(value, InstanceType):
        return _instance_type_text(value)
    if isinstance(value, Path):
        return relative(value, root) if value != root else "."
    if value is None:
        return "the image's" if key == "entrypoint" else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(dict(value)) if value else "{}"
    if isinstance(value, tuple):
        return json.dumps(list(value)) if value else "none"
    return str(value)


def _json_value(value: object) -> object:
    if isinstance(value, InstanceType):
        return {
            "name": value.name,
            "vcpu": value.vcpu,
            "memory_mib": value.memory_mib,
            "disk_mb": value.disk_mb,
        }
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value
