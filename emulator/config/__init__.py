"""The resolved configuration: read once from wrangler config, Worker source and flags.

Everything downstream takes a `Config`; nothing else reads files or flags. The modules:

- `model`: the frozen dataclasses, `ConfigError`, `Origin` and the platform's instance types;
- `formats`: JSONC and TOML parsed into data and the line of each key, syntax errors in short;
- `document`: finding and reading the file, and wrangler environments (`--env`);
- `fields`, `bindings`, `source`: checks of the file's fields, of its Durable Object classes,
  and the settings from the Worker source;
- `loader`: `load_config`, which merges all of them with the flags;
- `render`: `emu config` output.
"""

from .loader import default_port, find_config, load_config
from .model import (
    CONFIG_FILE_NAMES,
    CUSTOM_DEFAULTS,
    DEFAULT,
    DEFAULT_HOST,
    DEFAULT_INSTANCE_TYPE,
    DEFAULT_MAX_INSTANCES,
    DEFAULT_PORT,
    DEFAULT_SLEEP_AFTER,
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_GRACE,
    INSTANCE_TYPE_ALIASES,
    INSTANCE_TYPES,
    SOURCE_DEFAULTS_TEXT,
    ClassConfig,
    Config,
    ConfigError,
    InstanceType,
    Origin,
    Overrides,
)
from .render import as_json, describe

__all__ = [
    "CONFIG_FILE_NAMES",
    "CUSTOM_DEFAULTS",
    "DEFAULT",
    "DEFAULT_HOST",
    "DEFAULT_INSTANCE_TYPE",
    "DEFAULT_MAX_INSTANCES",
    "DEFAULT_PORT",
    "DEFAULT_SLEEP_AFTER",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_GRACE",
    "INSTANCE_TYPES",
    "INSTANCE_TYPE_ALIASES",
    "SOURCE_DEFAULTS_TEXT",
    "ClassConfig",
    "Config",
    "ConfigError",
    "InstanceType",
    "Origin",
    "Overrides",
    "as_json",
    "default_port",
    "describe",
    "find_config",
    "load_config",
]
