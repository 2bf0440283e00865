"""The resolved configuration as frozen dataclasses, and the platform's table of instance types.

Everything downstream takes a `Config`; nothing else reads files or flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from emulator.config.source_scan import DEFAULT_RANDOM_INSTANCES

# The settings of the whole emu (not of a class) that a flag can set; a running emu cannot
# take over a change to any of them (`--watch` says to restart).
GLOBAL_FLAGS = (
    "host",
    "port",
    "seed",
    "start_timeout",
    "stop_grace",
    "header_timeout",
    "keepalive_timeout",
    "max_connections",
)


class ConfigError(Exception):
    """A user mistake in a config file or flag. `str()` is the one or two lines to print."""

    def __init__(self, where: str, field_name: str, message: str) -> None:
        self.where = where  # "wrangler.jsonc:12:5", "flag --sleep-after", ...
        self.field_name = field_name  # "containers[0].instance_type", "sleepAfter", ...
        self.message = message  # what is wrong and what is allowed
        # An empty `where` or `field_name` is left out rather than printed as "::".
        super().__init__(": ".join(part for part in (where, field_name, message) if part))


@dataclass(frozen=True)
class Origin:
    """Where a setting came from, for `emu config`: "wrangler.jsonc:42", "flag --instances",
    "src/index.ts:12", "default"."""

    text: str

    def __str__(self) -> str:
        return self.text


DEFAULT = Origin("default")


def display(path: Path, root: Path) -> str:
    """`path` relative to `root` when it is inside it, else absolute."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class FileOrigin(Origin):
    """An origin in a file. `text` shows the file relative to the working folder, as `emu up`
    prints it; `emu config` shows it relative to the config's folder, with `relative_to`."""

    path: Path
    line: int | None
    suffix: str = ""  # " and flag --env", for a Worker name an environment extends

    @classmethod
    def at(cls, path: Path, line: int | None, cwd: Path, suffix: str = "") -> FileOrigin:
        return cls(_where(path, line, cwd) + suffix, path, line, suffix)

    def relative_to(self, root: Path) -> str:
        return _where(self.path, self.line, root) + self.suffix


def _where(path: Path, line: int | None, root: Path) -> str:
    shown = display(path, root)
    return f"{shown}:{line}" if line is not None else shown


class ConfigWarning(str):
    """A warning as `emu up` prints it (a plain string to every caller), which also knows the
    files it names, so that `emu config` can show them relative to the config's folder.
    `{mention}` in the message stands for a second origin."""

    origin: Origin | None
    message: str
    separator: str
    mention: Origin | None

    def __new__(
        cls,
        origin: Origin | None,
        message: str,
        separator: str = ": ",
        mention: Origin | None = None,
    ) -> ConfigWarning:
        self = super().__new__(cls, _warning_text(origin, message, separator, mention, None))
        self.origin = origin
        self.message = message
        self.separator = separator  # " " where the file name starts a sentence
        self.mention = mention
        return self

    def relative_to(self, root: Path) -> str:
        return _warning_text(self.origin, self.message, self.separator, self.mention, root)


def _warning_text(
    origin: Origin | None, message: str, separator: str, mention: Origin | None, root: Path | None
) -> str:
    def shown(o: Origin) -> str:
        return o.relative_to(root) if root is not None and isinstance(o, FileOrigin) else str(o)

    if mention is not None:
        message = message.replace("{mention}", shown(mention))
    return f"{shown(origin)}{separator}{message}" if origin is not None else message


@dataclass(frozen=True)
class InstanceType:
    name: str  # "lite", "standard-2", ..., or "custom"
    vcpu: float
    memory_mib: int
    disk_mb: int


@dataclass(frozen=True)
class ClassConfig:
    """One entry of `containers[]`, merged with its Container subclass and the flags."""

    class_name: str
    binding: str  # durable_objects binding name, e.g. "PYTHON_EXECUTOR"
    name: str  # containers[].name, default "<worker name>-<class_name>"
    image: str  # as written in the config
    dockerfile: Path | None  # absolute, when `image` names a Dockerfile
    build_context: Path | None  # absolute, when `image` names a Dockerfile
    image_vars: Mapping[str, str]
    max_instances: int
    instance_type: InstanceType
    default_port: int | None
    required_ports: tuple[int, ...]
    sleep_after: float  # seconds
    env_vars: Mapping[str, str]
    entrypoint: tuple[str, ...] | None
    enable_internet: bool
    ping_endpoint: str  # "ping", "container/health", ... (no leading slash)
    instances: int  # N of getRandom(env.BINDING, N)
    origins: Mapping[str, Origin] = field(default_factory=dict)  # field name -> origin
    # Environment variables set over the config's (`emu load --set env.NAME=VALUE`). They win
    # also over the env the Worker's start() passes in worker mode, which is the class's own.
    forced_env: Mapping[str, str] = field(default_factory=dict)
    # The Worker source calls getRandom on this class's bindings (N above is read from it). In
    # worker mode only then does N mean anything: the Worker routes, not emu.
    get_random: bool = False


@dataclass(frozen=True)
class Config:
    path: Path  # the config file, absolute
    project_dir: Path  # its folder
    worker_name: str
    main: Path | None  # the Worker source, absolute
    classes: tuple[ClassConfig, ...]
    env: str | None = None  # the wrangler environment, `--env NAME`
    host: str = "127.0.0.1"
    port: int = 8787
    seed: int | None = None
    start_timeout: float = 20.0
    stop_grace: float = 900.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 60.0
    max_connections: int = 1000
    origins: Mapping[str, Origin] = field(default_factory=dict)  # for host, port, ...
    warnings: tuple[str, ...] = ()  # e.g. an unreadable Worker source and its defaults


@dataclass(frozen=True)
class Overrides:
    """Flags of `emu up` / `emu config`; None means not given."""

    env: str | None = None
    env_from: str = "flag --env"  # or "$CLOUDFLARE_ENV", where the CLI read it
    instances: int | None = None
    sleep_after: str | None = None
    start_timeout: str | None = None
    stop_grace: str | None = None
    header_timeout: str | None = None
    keepalive_timeout: str | None = None
    max_connections: int | None = None
    seed: int | None = None
    host: str | None = None
    port: int | None = None
    # Class settings only `emu load --set` overrides (for every class): a scaling rehearsal.
    max_instances: int | None = None
    instance_type: str | None = None  # a name or an alias, as in the config
    env_vars: tuple[tuple[str, str], ...] = ()  # env.NAME=VALUE
    overrides_from: str = "emu load --set"


class OverrideFields(TypedDict, total=False):
    """`Overrides` as keyword arguments (the fixture `emu_up`'s); tests/unit/test_options.py
    checks that the two name the same fields with the same types."""

    env: str | None
    env_from: str
    instances: int | None
    sleep_after: str | None
    start_timeout: str | None
    stop_grace: str | None
    header_timeout: str | None
    keepalive_timeout: str | None
    max_connections: int | None
    seed: int | None
    host: str | None
    port: int | None
    max_instances: int | None
    instance_type: str | None
    env_vars: tuple[tuple[str, str], ...]
    overrides_from: str


# ---------------------------------------------------------------------------------------------
# Platform facts and defaults

CONFIG_FILE_NAMES = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")

INSTANCE_TYPES: Mapping[str, InstanceType] = {
    t.name: t
    for t in (
        InstanceType("lite", 0.0625, 256, 2000),
        InstanceType("basic", 0.25, 1024, 4000),
        InstanceType("standard-1", 0.5, 4096, 8000),
        InstanceType("standard-2", 1.0, 6144, 12000),
        InstanceType("standard-3", 2.0, 8192, 16000),
        InstanceType("standard-4", 4.0, 12288, 20000),
    )
}
INSTANCE_TYPE_ALIASES: Mapping[str, str] = {"dev": "lite", "standard": "standard-1"}
DEFAULT_INSTANCE_TYPE = "lite"

# Custom instance types: {vcpu, memory_mib, disk_mb}. Memory in MiB, disk in MB (decimal: the
# table's "2 GB" lite disk is the custom default 2000), as the field names say.
CUSTOM_DEFAULTS: Mapping[str, float] = {"vcpu": 0.0625, "memory_mib": 256, "disk_mb": 2000}
MIN_VCPU = 0.0625
MAX_VCPU = 4.0
MAX_MEMORY_MIB = 12 * 1024
MIN_MEMORY_MIB_PER_VCPU = 3 * 1024
MAX_DISK_MB = 20_000

DEFAULT_WORKER_NAME = "worker"
DEFAULT_MAX_INSTANCES = 20
DEFAULT_SLEEP_AFTER = 600.0  # "10m"
DEFAULT_PING_ENDPOINT = "ping"
DEFAULT_ENABLE_INTERNET = True
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_START_TIMEOUT = 20.0
DEFAULT_STOP_GRACE = 900.0  # the platform's SIGKILL 15 minutes after SIGTERM
# Client connections of the front. A legitimate client sends its headers at once; idle pooled
# connections are kept longer than the usual client pools keep them (undici 4 s, aiohttp 15 s),
# so that the client, not emu, closes them.
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEPALIVE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 1000

# What the Container class and getRandom default to, for warnings when the source is not read.
SOURCE_DEFAULTS_TEXT = (
    "defaultPort none, requiredPorts none, sleepAfter 10m, envVars {}, entrypoint the image's, "
    f'enableInternet true, pingEndpoint "ping", getRandom instances {DEFAULT_RANDOM_INSTANCES}'
)
