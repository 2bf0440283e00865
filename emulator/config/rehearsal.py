"""The class settings that `emu load --set` overrides for every class (max_instances,
instance_type), checked as a config's would be."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from emulator.config.jsvalue import is_integer, literal

from .model import INSTANCE_TYPE_ALIASES, INSTANCE_TYPES, ConfigError, InstanceType, Origin
from .source import SourceSettings


def whole_number(where: str, name: str, value: object) -> int:
    if not is_integer(value) or not isinstance(value, int) or value < 1:
        raise ConfigError(where, name, f"must be a whole number, at least 1; not {literal(value)}")
    return value


def instance_type(where: str, value: str) -> InstanceType:
    """A named instance type (or alias); a custom one is written in the config instead."""
    name = INSTANCE_TYPE_ALIASES.get(value, value)
    if name not in INSTANCE_TYPES:
        allowed = ", ".join([*INSTANCE_TYPES, *INSTANCE_TYPE_ALIASES])
        raise ConfigError(
            where, "instance_type", f"unknown instance type {json.dumps(value)}; allowed: {allowed}"
        )
    return INSTANCE_TYPES[name]


def with_env(
    source: SourceSettings, env: Mapping[str, str], origin: Origin, origins: dict[str, Origin]
) -> SourceSettings:
    """The class's envVars with `--set env.NAME=VALUE` over them."""
    if not env:
        return source
    origins["env_vars"] = origin
    return replace(source, env_vars={**source.env_vars, **env})
