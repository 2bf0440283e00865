"""The resolved configuration: read once from wrangler config, Worker source and flags.

Everything downstream takes a `Config`; nothing else reads files or flags.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import json5

from emulator.durations import ALLOWED_HINT, format_duration, parse_duration, parse_sleep_after
from emulator.jsvalue import is_integer, is_number, js_string, literal
from emulator.source_scan import (
    DEFAULT_RANDOM_INSTANCES,
    ClassSettings,
    Located,
    WorkerScan,
    scan_file,
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
    seed: int | None = None
    host: str | None = None
    port: int | None = None


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

# What the Container class and getRandom default to, for warnings when the source is not read.
SOURCE_DEFAULTS_TEXT = (
    "defaultPort none, requiredPorts none, sleepAfter 10m, envVars {}, entrypoint the image's, "
    f'enableInternet true, pingEndpoint "ping", getRandom instances {DEFAULT_RANDOM_INSTANCES}'
)

# containers[] fields emu reads, and those only deployment uses (accepted without a warning).
_CONTAINER_FIELDS = {
    "class_name",
    "image",
    "name",
    "image_build_context",
    "image_vars",
    "max_instances",
    "instance_type",
}
_DEPLOY_ONLY_FIELDS = {
    "rollout_step_percentage",
    "rollout_active_grace_period",
    "rollout_kind",
    "scheduling_policy",
    "constraints",
    "affinities",
    "configuration",
    "observability",
}

_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d+)?/)?"
    rf"{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)

FieldPath = tuple[str | int, ...]


def _field_text(path: FieldPath) -> str:
    """("containers", 0, "instance_type") -> "containers[0].instance_type"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _display(path: Path, cwd: Path) -> str:
    """`path` relative to cwd when it is inside it, else absolute."""
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# Where each field is written: a light scan of the raw text, made only after it parsed.


def _json5_lines(text: str) -> dict[FieldPath, int]:
    """The line of each key (objects) and each element (arrays) of a valid JSON5 document."""
    lines: dict[FieldPath, int] = {}
    # Frames: [path, is_object, expecting_key, current key or index]
    stack: list[list[Any]] = []
    line = 1
    i, n = 0, len(text)

    def value_path() -> FieldPath | None:
        if not stack:
            return ()
        path, is_object, _, current = stack[-1]
        if is_object:
            return None if current is None else (*path, current)
        return (*path, current)

    def at_value_start() -> None:
        if stack and not stack[-1][1]:  # an array element starts here
            lines.setdefault(value_path() or (), line)

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
        elif c in "{[":
            at_value_start()
            path = value_path()
            stack.append([path if path is not None else (), c == "{", c == "{", 0])
            if c == "{":
                stack[-1][3] = None
            i += 1
        elif c in "}]":
            if stack:
                stack.pop()
            i += 1
        elif c == ",":
            if stack:
                if stack[-1][1]:
                    stack[-1][2] = True
                else:
                    stack[-1][3] += 1
            i += 1
        elif c == ":":
            i += 1
        else:
            start, start_line = i, line
            if c in "'\"":
                k = i + 1
                while k < n and text[k] != c:
                    k += 2 if text[k] == "\\" else 1
                i = min(k + 1, n)
                line += text.count("\n", start, i)
                token: object = _json5_string(text[start:i])
            else:
                while i < n and not text[i].isspace() and text[i] not in ",:[]{}'\"/":
                    i += 1
                token = text[start:i]
                if i == start:  # a stray character; cannot happen in valid JSON5
                    i += 1
            if stack and stack[-1][1] and stack[-1][2]:
                stack[-1][2] = False
                stack[-1][3] = str(token)
                lines.setdefault((*stack[-1][0], str(token)), start_line)
            else:
                at_value_start()
    return lines


def _json5_string(token: str) -> str:
    try:
        value = json5.loads(token)
    except ValueError:
        return token[1:-1]
    return value if isinstance(value, str) else token[1:-1]


_TOML_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_TOML_DOTTED = rf"{_TOML_KEY}(?:\s*\.\s*{_TOML_KEY})*"
_TOML_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*({_TOML_DOTTED})\s*\]\]")
_TOML_TABLE = re.compile(rf"^\s*\[\s*({_TOML_DOTTED})\s*\]")
_TOML_ASSIGN = re.compile(rf"^\s*({_TOML_DOTTED})\s*=")


def _toml_keys(dotted: str) -> list[str]:
    keys = re.findall(_TOML_KEY, dotted)
    out = []
    for key in keys:
        if key.startswith('"'):
            out.append(json.loads(key))
        elif key.startswith("'"):
            out.append(key[1:-1])
        else:
            out.append(key)
    return out


def _toml_lines(text: str) -> dict[FieldPath, int]:
    """The line of each table header and key of a valid TOML document."""
    lines: dict[FieldPath, int] = {}
    array_counts: dict[tuple[str, ...], int] = {}
    prefix: FieldPath = ()
    in_multiline: str | None = None

    def with_indices(keys: list[str]) -> FieldPath:
        """Insert the current index after each array-of-tables prefix: containers -> [0]."""
        path: list[str | int] = []
        for k in range(len(keys)):
            path.append(keys[k])
            count = array_counts.get(tuple(keys[: k + 1]))
            if count is not None:
                path.append(count - 1)
        return tuple(path)

    for number, raw_line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if raw_line.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        m = _TOML_ARRAY_TABLE.match(raw_line)
        if m is not None:
            keys = _toml_keys(m.group(1))
            array_counts[tuple(keys)] = array_counts.get(tuple(keys), 0) + 1
            prefix = with_indices(keys)
            lines.setdefault(prefix, number)
            continue
        m = _TOML_TABLE.match(raw_line)
        if m is not None:
            prefix = with_indices(_toml_keys(m.group(1)))
            lines.setdefault(prefix, number)
            continue
        m = _TOML_ASSIGN.match(raw_line)
        if m is not None:
            lines.setdefault((*prefix, *_toml_keys(m.group(1))), number)
            rest = raw_line[m.end() :]
            for quotes in ('"""', "'''"):
                if rest.count(quotes) % 2 == 1:
                    in_multiline = quotes
    return lines


# ---------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class _Document:
    """A parsed config file and where its fields are written."""

    path: Path
    display: str  # the file as shown in messages: relative to cwd when inside it
    data: Mapping[str, Any]
    lines: Mapping[FieldPath, int]
    # With `--env NAME`: top-level keys of `data` that are read from env.NAME, and from where.
    moved: Mapping[str, FieldPath] = field(default_factory=dict)

    def real(self, path: FieldPath) -> FieldPath:
        """Where `path` of `data` is written in the file."""
        if path and isinstance(path[0], str) and path[0] in self.moved:
            return (*self.moved[path[0]], *path[1:])
        return path

    def shown(self, path: FieldPath) -> str:
        """The field as the file writes it: "env.staging.containers[0].image"."""
        return _field_text(self.real(path))

    def line(self, path: FieldPath) -> int | None:
        """The line of `path`, or of its nearest written ancestor."""
        path = self.real(path)
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    def where(self, path: FieldPath = ()) -> str:
        line = self.line(path)
        return f"{self.display}:{line}" if line is not None else self.display

    def origin(self, path: FieldPath) -> Origin:
        return Origin(self.where(path))

    def error(self, path: FieldPath, message: str) -> ConfigError:
        return ConfigError(self.where(path), self.shown(path), message)


def _find_config(path: Path | None, cwd: Path) -> Path:
    if path is not None:
        path = (cwd / path.expanduser()).absolute()
        if path.is_dir():
            folder = path
        elif path.is_file():
            return path
        else:
            raise ConfigError(_display(path, cwd), "", "config file not found")
    else:
        folder = cwd
    for name in CONFIG_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise ConfigError(
        _display(folder, cwd) if folder != cwd else str(folder),
        "",
        f"no wrangler config here (looked for {', '.join(CONFIG_FILE_NAMES)}); "
        "run emu in the Worker's folder or pass the config file",
    )


_JSON5_ERROR = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$", re.DOTALL)
_TOML_ERROR = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)


def _json5_message(message: str) -> str:
    """json5's 'Unexpected "\n"' as 'unexpected end of line', and so on."""
    names = {'" "': "space", '"\n"': "end of line", '"\t"': "tab", '"\r"': "end of line"}
    m = re.fullmatch(r'Unexpected (".*")', message, re.DOTALL)
    if m is not None:
        if m.group(1) in names:
            return f"unexpected {names[m.group(1)]}"
        char = m.group(1)[1:-1]
        if char in ('"', "'") or char[:1].isalnum():
            # A key or value where a comma or closing bracket should be.
            return f"unexpected {char!r}: is a comma missing before it?"
        return f"unexpected {char!r}"
    return message[:1].lower() + message[1:]


def _read_document(path: Path, cwd: Path) -> _Document:
    display = _display(path, cwd)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(display, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(display, "", f"not UTF-8 text ({exc.reason})") from None
    if path.suffix == ".toml":
        try:
            data: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = _TOML_ERROR.match(str(exc))
            if m is not None:
                where = f"{display}:{m.group(2)}:{m.group(3)}"
                raise ConfigError(where, "", f"invalid TOML: {m.group(1)}") from None
            message = str(exc)
            if message.endswith(" (at end of document)"):
                last_line = max(1, len(text.splitlines()))
                message = message.removesuffix(" (at end of document)") + " at the end"
                raise ConfigError(
                    f"{display}:{last_line}", "", f"invalid TOML: {message}"
                ) from None
            raise ConfigError(display, "", f"invalid TOML: {message}") from None
        lines = _toml_lines(text)
    else:
        try:
            data = json5.loads(text)
        except ValueError as exc:
            m = _JSON5_ERROR.match(str(exc))
            if m is not None:
                where = f"{display}:{m.group(1)}:{m.group(3)}"
                message = _json5_message(m.group(2))
                raise ConfigError(where, "", f"invalid JSONC: {message}") from None
            raise ConfigError(display, "", f"invalid JSONC: {exc}") from None
        except RecursionError:
            raise ConfigError(display, "", "invalid JSONC: nested too deeply") from None
        lines = _json5_lines(text)
    if not isinstance(data, dict):
        raise ConfigError(display, "", "the top level must be an object")
    return _Document(path, display, data, lines)


# wrangler environments (`wrangler dev --env NAME`): env.NAME's own containers and bindings
# only, as they are not inherited; the rest is env.NAME's where it sets it, else the top level's.
_ENV_OWN_KEYS = ("containers", "durable_objects")
_ENV_INHERITED_KEYS = ("name", "main", "migrations", "exports")


def _select_env(doc: _Document, overrides: Overrides, warnings: list[str]) -> _Document:
    """The document as `--env NAME` sees it; `doc` itself without --env."""
    env = overrides.env
    if env is None:
        return doc
    envs = doc.data.get("env")
    if envs is not None and not isinstance(envs, dict):
        raise doc.error(("env",), f"must be an object of environments, not {literal(envs)}")
    if not envs:
        # As wrangler: only a warning, and the top level (its Worker still named <name>-NAME).
        warnings.append(
            f"{doc.display} defines no environments; for {json.dumps(env)} "
            f"({overrides.env_from}) emu reads the top level, as wrangler does"
        )
        return doc
    if env not in envs:
        names = ", ".join(sorted(str(name) for name in envs))
        raise ConfigError(
            overrides.env_from,
            "",
            f"{doc.display} has no environment {json.dumps(env)}; it has {names}",
        )
    base: FieldPath = ("env", env)
    section = envs[env]
    if not isinstance(section, dict):
        raise doc.error(base, f"must be an object, not {literal(section)}")
    data = {k: v for k, v in doc.data.items() if k not in _ENV_OWN_KEYS}
    moved: dict[str, FieldPath] = {key: (*base, key) for key in _ENV_OWN_KEYS}
    for key in (*_ENV_OWN_KEYS, *_ENV_INHERITED_KEYS):
        if key in section:
            data[key] = section[key]
            moved[key] = (*base, key)
    return replace(doc, data=data, moved=moved)


def find_config(path: Path | None = None, cwd: Path | None = None) -> Path:
    """The config file `emu` would read: `path`, or the first of wrangler.json, wrangler.jsonc,
    wrangler.toml in `path` (a folder) or `cwd`. Raises ConfigError."""
    return _find_config(path, (cwd if cwd is not None else Path.cwd()).absolute())


# ---------------------------------------------------------------------------------------------
# Field checks


def _string(doc: _Document, path: FieldPath, value: object, *, required: bool = False) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        wanted = "a non-empty string" if required else "a string"
        raise doc.error(path, f"must be {wanted}, not {literal(value)}")
    return value


def _instance_type(doc: _Document, path: FieldPath, value: object) -> InstanceType:
    allowed = ", ".join([*INSTANCE_TYPES, *INSTANCE_TYPE_ALIASES])
    if isinstance(value, str):
        name = INSTANCE_TYPE_ALIASES.get(value, value)
        if name not in INSTANCE_TYPES:
            raise doc.error(
                path,
                f"unknown instance type {json.dumps(value)}; allowed: {allowed}, "
                "or a custom {vcpu, memory_mib, disk_mb}",
            )
        return INSTANCE_TYPES[name]
    if not isinstance(value, dict):
        raise doc.error(
            path,
            f"must be an instance type name ({allowed}) or an object "
            f"{{vcpu, memory_mib, disk_mb}}, not {literal(value)}",
        )
    unknown = sorted(set(value) - set(CUSTOM_DEFAULTS))
    if unknown:
        raise doc.error(
            (*path, unknown[0]),
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
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
class _Image:
    dockerfile: Path | None
    build_context: Path | None
    build_context_origin: Origin


def _image(doc: _Document, index: int, entry: Mapping[str, Any], warnings: list[str]) -> _Image:
    project = doc.path.parent
    path: FieldPath = ("containers", index, "image")
    image = _string(doc, path, entry.get("image"), required=True)
    candidate = (project / Path(image).expanduser()).resolve()
    context_path: FieldPath = ("containers", index, "image_build_context")
    context_value = entry.get("image_build_context")
    if not (candidate.is_file() or _looks_like_path(image)):
        if not _IMAGE_REFERENCE.fullmatch(image):
            raise doc.error(
                path,
                f"{json.dumps(image)} is neither an existing Dockerfile nor an image reference "
                '(a path like "./Dockerfile", or a reference like "nginx:1.27")',
            )
        if context_value is not None:
            warnings.append(
                f"{doc.where(context_path)}: {doc.shown(context_path)} is ignored: "
                f"image {json.dumps(image)} is an image reference, not a Dockerfile"
            )
        return _Image(None, None, DEFAULT)
    if candidate.is_dir():
        raise doc.error(
            path,
            f"{json.dumps(image)} is a folder; point image at the Dockerfile in it "
            f'(e.g. "{image.rstrip("/")}/Dockerfile")',
        )
    if not candidate.is_file():
        raise doc.error(path, f"Dockerfile {json.dumps(image)} not found (looked for {candidate})")
    if context_value is None:
        return _Image(candidate, candidate.parent, DEFAULT)
    context_text = _string(doc, context_path, context_value, required=True)
    context = (project / Path(context_text).expanduser()).resolve()
    if not context.is_dir():
        raise doc.error(
            context_path,
            f"build context {json.dumps(context_text)} is not a folder (looked for {context})",
        )
    return _Image(candidate, context, doc.origin(context_path))


def _image_vars(doc: _Document, index: int, value: object) -> dict[str, str]:
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


def _max_instances(doc: _Document, index: int, value: object) -> int:
    path: FieldPath = ("containers", index, "max_instances")
    if not is_integer(value) or not isinstance(value, int) or value < 1:
        raise doc.error(path, f"must be a whole number of at least 1, not {literal(value)}")
    return value


# ---------------------------------------------------------------------------------------------
# Bindings and migrations


def _bindings(doc: _Document) -> dict[str, list[tuple[str, FieldPath]]]:
    """class_name -> [(binding name, field path of the binding's name)]."""
    found: dict[str, list[tuple[str, FieldPath]]] = {}
    durable_objects = doc.data.get("durable_objects")
    if durable_objects is None:
        return found
    if not isinstance(durable_objects, dict):
        raise doc.error(("durable_objects",), "must be an object with a bindings array")
    bindings = durable_objects.get("bindings", [])
    if not isinstance(bindings, list):
        raise doc.error(("durable_objects", "bindings"), "must be an array of {name, class_name}")
    for j, binding in enumerate(bindings):
        path: FieldPath = ("durable_objects", "bindings", j)
        if not isinstance(binding, dict):
            raise doc.error(path, f"must be an object {{name, class_name}}, not {literal(binding)}")
        name = _string(doc, (*path, "name"), binding.get("name"), required=True)
        class_name = _string(doc, (*path, "class_name"), binding.get("class_name"), required=True)
        found.setdefault(class_name, []).append((name, (*path, "name")))
    return found


def _migration_classes(doc: _Document) -> tuple[set[str], set[str]]:
    """(SQLite-backed classes, key-value classes) created or renamed to by the migrations."""
    sqlite: set[str] = set()
    key_value: set[str] = set()
    migrations = doc.data.get("migrations")
    if not isinstance(migrations, list):
        return sqlite, key_value
    for migration in migrations:
        if not isinstance(migration, dict):
            continue
        for name in _str_items(migration.get("new_sqlite_classes")):
            sqlite.add(name)
        for name in _str_items(migration.get("new_classes")):
            key_value.add(name)
        renamed = migration.get("renamed_classes")
        if isinstance(renamed, list):
            for item in renamed:
                if isinstance(item, dict) and isinstance(item.get("to"), str):
                    sqlite.add(item["to"])  # the kind follows the old class; accept it
    return sqlite, key_value


@dataclass(frozen=True)
class _Exports:
    """What `exports` (wrangler >= 4.124) says of Durable Object classes."""

    sqlite: set[str]  # {"type": "durable-object", "storage": "sqlite"}
    key_value: set[str]  # storage "legacy-kv"
    links: dict[str, tuple[str, FieldPath]]  # container name -> (class, path of `container`)


_LIVE_EXPORT_STATES = ("created", "expecting-transfer")


def _exports(doc: _Document) -> _Exports:
    found = _Exports(set(), set(), {})
    exports = doc.data.get("exports")
    if exports is None:
        return found
    if not isinstance(exports, dict):
        raise doc.error(("exports",), f"must be an object, not {literal(exports)}")
    for class_name, entry in exports.items():
        if not isinstance(entry, dict) or entry.get("type") != "durable-object":
            continue
        if entry.get("state", "created") not in _LIVE_EXPORT_STATES:
            continue  # a tombstone ("deleted", "transferred", ...): the class is gone
        if entry.get("storage") == "sqlite":
            found.sqlite.add(class_name)
        elif entry.get("storage") == "legacy-kv":
            found.key_value.add(class_name)
        if "container" in entry:
            path: FieldPath = ("exports", class_name, "container")
            container = _string(doc, path, entry["container"], required=True)
            if container in found.links:
                other = found.links[container][0]
                raise doc.error(path, f"container {json.dumps(container)} is already {other}'s")
            found.links[container] = (class_name, path)
    return found


def _str_items(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


# ---------------------------------------------------------------------------------------------
# The Worker source


def _scan_worker(
    doc: _Document, cwd: Path, warnings: list[str]
) -> tuple[Path | None, Origin, WorkerScan | None]:
    main_value = doc.data.get("main")
    if main_value is None:
        warnings.append(
            f"{doc.display}: no `main` (Worker source), so emu uses the Container defaults: "
            f"{SOURCE_DEFAULTS_TEXT}"
        )
        return None, DEFAULT, None
    text = _string(doc, ("main",), main_value, required=True)
    main = (doc.path.parent / Path(text).expanduser()).resolve()
    origin = doc.origin(("main",))
    try:
        scan = scan_file(main)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warnings.append(
            f"{_display(main, cwd)}: Worker source not read ({reason}), so emu uses the "
            f"Container defaults: {SOURCE_DEFAULTS_TEXT}"
        )
        return main, origin, None
    for warning in scan.warnings:
        where = _display(warning.path, cwd) if warning.path is not None else "<source>"
        warnings.append(f"{where}:{warning.line}: {warning.message}")
    return main, origin, scan


def _source_origin(found: Located[Any], cwd: Path) -> Origin:
    where = _display(found.path, cwd) if found.path is not None else "<source>"
    return Origin(f"{where}:{found.line}")


def _port(value: int, where: str, field_name: str) -> int:
    if not 1 <= value <= 65535:
        raise ConfigError(where, field_name, f"port {value} is outside 1 to 65535")
    return value


# ---------------------------------------------------------------------------------------------
# Flags


def _flag_duration(name: str, value: str, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(
            f"flag --{name}",
            "",
            f'{exc}; allowed: "30s", "15m", "1h" or a number of seconds like 20 or 0.5',
        ) from None
    if positive and seconds <= 0:
        raise ConfigError(f"flag --{name}", "", f"must be more than 0, not {value}")
    return seconds


def _flag_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if (
        not is_integer(value)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(
            f"flag --{name}", "", f"must be a whole number, {allowed}; not {literal(value)}"
        )
    return value


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(
    path: Path | None, overrides: Overrides = Overrides(), cwd: Path | None = None
) -> Config:
    """Find (when `path` is None: wrangler.json, wrangler.jsonc, wrangler.toml in `cwd`), read,
    validate and merge. Raises ConfigError."""
    cwd = (cwd if cwd is not None else Path.cwd()).absolute()
    top = _read_document(_find_config(path, cwd), cwd)
    warnings: list[str] = []
    doc = _select_env(top, overrides, warnings)

    worker_name = DEFAULT_WORKER_NAME
    worker_name_origin = DEFAULT
    if "name" in doc.data:
        worker_name = _string(doc, ("name",), doc.data["name"], required=True)
        worker_name_origin = doc.origin(("name",))
    if overrides.env is not None and "name" not in doc.moved:
        # As wrangler names an environment's Worker: "<top-level name>-<env>".
        worker_name = f"{worker_name}-{overrides.env}"
        worker_name_origin = Origin(f"{worker_name_origin} and {overrides.env_from}")

    containers = doc.data.get("containers")
    if containers is None:
        hint = (
            "; containers are not inherited by environments"
            if overrides.env is not None and "containers" in top.data
            else ""
        )
        if overrides.env is None and isinstance(top.data.get("env"), dict):
            envs = ", ".join(sorted(str(name) for name in top.data["env"]))
            hint = f"; or pick an environment with --env ({envs})"
        raise doc.error(
            ("containers",),
            "missing: emu runs the containers listed there "
            '(e.g. "containers": [{"class_name": "MyContainer", "image": "./Dockerfile"}])' + hint,
        )
    if not isinstance(containers, list) or not containers:
        raise doc.error(("containers",), "must be a non-empty array of containers")

    # Flags are checked before the Worker source is read, so a bad flag is reported first.
    instances_flag = (
        _flag_int("instances", overrides.instances, 1) if overrides.instances is not None else None
    )
    sleep_flag = (
        _flag_duration("sleep-after", overrides.sleep_after)
        if overrides.sleep_after is not None
        else None
    )
    global_settings = _global_settings(top, overrides, worker_name_origin)

    bindings = _bindings(doc)
    main, main_origin, scan = _scan_worker(doc, cwd, warnings)
    global_settings["origins"]["main"] = main_origin
    loader = _ContainerLoader(
        doc=doc,
        cwd=cwd,
        worker_name=worker_name,
        bindings=bindings,
        migrations=_migration_classes(doc),
        exports=_exports(doc),
        main=main,
        scan=scan,
        instances_flag=instances_flag,
        sleep_flag=sleep_flag,
        warnings=warnings,
    )
    classes = tuple(loader.load(index, entry) for index, entry in enumerate(containers))
    for container, (_class, link_path) in loader.exports.links.items():
        if container not in loader.seen_names:
            names = ", ".join(json.dumps(name) for name in loader.seen_names)
            raise doc.error(
                link_path, f"no container is named {json.dumps(container)}; the names are {names}"
            )
    return Config(
        path=doc.path,
        project_dir=doc.path.parent,
        env=overrides.env,
        worker_name=worker_name,
        main=main,
        classes=classes,
        warnings=tuple(warnings),
        **global_settings,
    )


@dataclass
class _ContainerLoader:
    """Builds one ClassConfig per containers[] entry; collects warnings as it goes."""

    doc: _Document
    cwd: Path
    worker_name: str
    bindings: Mapping[str, list[tuple[str, FieldPath]]]
    migrations: tuple[set[str], set[str]]
    exports: _Exports
    main: Path | None
    scan: WorkerScan | None
    instances_flag: int | None
    sleep_flag: float | None
    warnings: list[str]
    seen_classes: dict[str, int] = field(default_factory=dict)
    seen_names: dict[str, int] = field(default_factory=dict)

    def load(self, index: int, entry: object) -> ClassConfig:
        doc = self.doc
        base: FieldPath = ("containers", index)
        if not isinstance(entry, dict):
            raise doc.error(base, f"must be an object, not {literal(entry)}")
        class_path: FieldPath = (*base, "class_name")
        if "class_name" in entry:
            class_name = _string(doc, class_path, entry["class_name"], required=True)
        else:
            link = (
                self.exports.links.get(entry["name"])
                if isinstance(entry.get("name"), str)
                else None
            )
            if link is None:
                raise doc.error(
                    class_path,
                    "missing; name the Durable Object class here, or name this container in "
                    'its export (exports.MyClass.container = "<containers[].name>")',
                )
            class_name, class_path = link
        if class_name in self.seen_classes:
            raise doc.error(
                class_path,
                f"{class_name} is already in containers[{self.seen_classes[class_name]}]; "
                "each class has one container entry",
            )
        self.seen_classes[class_name] = index
        for key in entry:
            if key not in _CONTAINER_FIELDS and key not in _DEPLOY_ONLY_FIELDS:
                self.warnings.append(
                    f"{doc.where((*base, key))}: {doc.shown((*base, key))} is unknown to emu "
                    "and ignored"
                )
        if "image" not in entry:
            raise doc.error(
                (*base, "image"), 'missing; a Dockerfile path like "./Dockerfile" or an image'
            )

        origins: dict[str, Origin] = {"class_name": doc.origin(class_path)}

        def setting(key: str, origin_key: str) -> object:
            """The value of containers[i].key, recording its origin (default when absent)."""
            if key in entry:
                if entry[key] is None:
                    raise doc.error(
                        (*base, key), "must not be null; leave the field out for the default"
                    )
                origins[origin_key] = doc.origin((*base, key))
                return entry[key]
            origins[origin_key] = DEFAULT
            return None

        image = _image(doc, index, entry, self.warnings)
        origins["image"] = doc.origin((*base, "image"))
        origins["dockerfile"] = origins["image"] if image.dockerfile is not None else DEFAULT
        origins["build_context"] = image.build_context_origin
        image_vars = _image_vars(doc, index, setting("image_vars", "image_vars"))

        name_value = setting("name", "name")
        name = (
            _string(doc, (*base, "name"), name_value, required=True)
            if name_value is not None
            else f"{self.worker_name}-{class_name}"
        )
        if name in self.seen_names:
            raise doc.error(
                (*base, "name"),
                f"{json.dumps(name)} is already the name of containers[{self.seen_names[name]}]",
            )
        self.seen_names[name] = index
        link = self.exports.links.get(name)
        if link is not None and link[0] != class_name:
            raise doc.error(
                class_path,
                f"{class_name}, but {doc.shown(link[1])} gives container {json.dumps(name)} "
                f"to {link[0]}",
            )

        max_value = setting("max_instances", "max_instances")
        max_instances = (
            _max_instances(doc, index, max_value)
            if max_value is not None
            else DEFAULT_MAX_INSTANCES
        )
        type_value = setting("instance_type", "instance_type")
        instance_type = (
            _instance_type(doc, (*base, "instance_type"), type_value)
            if type_value is not None
            else INSTANCE_TYPES[DEFAULT_INSTANCE_TYPE]
        )

        class_bindings = self.bindings.get(class_name)
        if not class_bindings:
            raise doc.error(
                class_path,
                f"class {class_name} has no Durable Object binding; add "
                f'{{"name": "MY_BINDING", "class_name": "{class_name}"}} to '
                f"{doc.shown(('durable_objects', 'bindings'))}",
            )
        binding, binding_path = class_bindings[0]
        origins["binding"] = doc.origin(binding_path)
        self.check_migration(class_name)

        source = self.source_settings(class_name, origins)
        instances = self.instances(class_name, [b for b, _ in class_bindings], origins)
        if instances > max_instances:
            self.warnings.append(
                f"{origins['instances']}: {class_name} spreads requests over {instances} "
                f"instances but max_instances is {max_instances} ({origins['max_instances']}); "
                "requests to a further instance get 503, as on the platform"
            )
        return ClassConfig(
            class_name=class_name,
            binding=binding,
            name=name,
            image=str(entry["image"]),
            dockerfile=image.dockerfile,
            build_context=image.build_context,
            image_vars=image_vars,
            max_instances=max_instances,
            instance_type=instance_type,
            instances=instances,
            origins=origins,
            **source,
        )

    def check_migration(self, class_name: str) -> None:
        sqlite_classes, key_value_classes = self.migrations
        if class_name in sqlite_classes or class_name in self.exports.sqlite:
            return
        if class_name in self.exports.key_value:
            where, kind = (
                self.doc.where(("exports", class_name)),
                'is exported with storage "legacy-kv", but containers need "sqlite"',
            )
        elif class_name in key_value_classes:
            where, kind = (
                self.doc.where(("migrations",)),
                "is in new_classes, but containers need new_sqlite_classes",
            )
        else:
            where, kind = (
                self.doc.where(("migrations",)),
                "has no migration with new_sqlite_classes and no sqlite export",
            )
        self.warnings.append(
            f"{where}: class {class_name} {kind}; wrangler deploy needs it, emu does not"
        )

    def source_settings(self, class_name: str, origins: dict[str, Origin]) -> dict[str, Any]:
        """The Container class fields, from the Worker source or the library defaults."""
        settings = self.scan.classes.get(class_name) if self.scan is not None else None
        if self.scan is not None and settings is None and self.main is not None:
            self.warnings.append(
                f"{_display(self.main, self.cwd)}: class {class_name} extends Container is not "
                "found there or in its relative imports, so emu uses the Container defaults: "
                f"{SOURCE_DEFAULTS_TEXT}"
            )

        def pick(found: Located[Any] | None, key: str, default: Any) -> Any:
            if found is None:
                origins[key] = DEFAULT
                return default
            origins[key] = _source_origin(found, self.cwd)
            return found.value

        s = settings if settings is not None else ClassSettings(class_name, 0)  # all unset
        default_port: int | None = pick(s.default_port, "default_port", None)
        if default_port is not None:
            _port(default_port, origins["default_port"].text, f"{class_name}.defaultPort")
        required_ports: tuple[int, ...] = pick(s.required_ports, "required_ports", ())
        for port in required_ports:
            _port(port, origins["required_ports"].text, f"{class_name}.requiredPorts")

        sleep_raw = pick(s.sleep_after, "sleep_after", None)
        sleep_after = DEFAULT_SLEEP_AFTER
        if sleep_raw is not None:
            try:
                sleep_after = parse_sleep_after(sleep_raw)
            except ValueError as exc:
                # An error even when --sleep-after overrides it: the platform would throw.
                raise ConfigError(
                    origins["sleep_after"].text,
                    f"{class_name}.sleepAfter",
                    f"{exc}; allowed: {ALLOWED_HINT}",
                ) from None
        if self.sleep_flag is not None:
            sleep_after = self.sleep_flag
            origins["sleep_after"] = Origin("flag --sleep-after")

        env_vars: Mapping[str, str] = pick(s.env_vars, "env_vars", {})
        entrypoint: tuple[str, ...] | None = pick(s.entrypoint, "entrypoint", None)
        enable_internet: bool = pick(s.enable_internet, "enable_internet", DEFAULT_ENABLE_INTERNET)
        ping_endpoint: str = pick(s.ping_endpoint, "ping_endpoint", DEFAULT_PING_ENDPOINT)
        if settings is not None and default_port is None and not required_ports:
            where = _source_origin(Located(None, settings.line, settings.path), self.cwd)
            self.warnings.append(
                f"{where}: {class_name} sets no defaultPort; requests fail unless the Worker "
                "picks a port with switchPort"
            )
        return {
            "default_port": default_port,
            "required_ports": tuple(required_ports),
            "sleep_after": sleep_after,
            "env_vars": dict(env_vars),
            "entrypoint": tuple(entrypoint) if entrypoint is not None else None,
            "enable_internet": enable_internet,
            "ping_endpoint": ping_endpoint,
        }

    def instances(
        self, class_name: str, binding_names: list[str], origins: dict[str, Origin]
    ) -> int:
        """N of getRandom(env.BINDING, N) for the class's bindings, or the flag, or 3."""
        if self.instances_flag is not None:
            origins["instances"] = Origin("flag --instances")
            return self.instances_flag
        scan = self.scan
        counts = [scan.random_counts[b] for b in binding_names if scan and b in scan.random_counts]
        if not counts:
            origins["instances"] = DEFAULT
            return DEFAULT_RANDOM_INSTANCES
        best = max(counts, key=lambda c: c.value)
        origins["instances"] = _source_origin(best, self.cwd)
        return best.value


def _dev_port(doc: _Document) -> tuple[int, Origin] | None:
    """wrangler's `dev.port`, which `wrangler dev` listens on, when the file sets it."""
    dev = doc.data.get("dev")
    if not isinstance(dev, dict) or "port" not in dev:
        return None
    value = dev["port"]
    if not is_integer(value) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise doc.error(("dev", "port"), f"must be a port, 0 to 65535; not {literal(value)}")
    return value, doc.origin(("dev", "port"))


def default_port(path: Path | None = None, cwd: Path | None = None) -> int:
    """The port `emu up` of this config listens on without --port: dev.port, else 8787.
    Reads only that, so a config broken elsewhere still answers. Raises ConfigError."""
    cwd = (cwd if cwd is not None else Path.cwd()).absolute()
    dev_port = _dev_port(_read_document(_find_config(path, cwd), cwd))
    return dev_port[0] if dev_port is not None else DEFAULT_PORT


def _global_settings(
    doc: _Document, overrides: Overrides, worker_name_origin: Origin
) -> dict[str, Any]:
    """host, port, seed, start_timeout, stop_grace and their origins, for Config(**...)."""
    origins: dict[str, Origin] = {
        "worker_name": worker_name_origin,
        "main": DEFAULT,
        "env": Origin(overrides.env_from) if overrides.env is not None else DEFAULT,
    }

    def flag(key: str, given: bool) -> None:
        origins[key] = Origin(f"flag --{key.replace('_', '-')}") if given else DEFAULT

    host = DEFAULT_HOST
    if overrides.host is not None:
        if not isinstance(overrides.host, str) or not overrides.host.strip():
            raise ConfigError("flag --host", "", "must be a host name or address")
        host = overrides.host
    flag("host", overrides.host is not None)
    port = DEFAULT_PORT
    flag("port", overrides.port is not None)
    if overrides.port is not None:
        port = _flag_int("port", overrides.port, 0, 65535)
    elif (dev_port := _dev_port(doc)) is not None:
        port, origins["port"] = dev_port
    seed = None
    if overrides.seed is not None:
        if not is_integer(overrides.seed):
            raise ConfigError("flag --seed", "", "must be a whole number")
        seed = overrides.seed
    flag("seed", overrides.seed is not None)
    start_timeout = DEFAULT_START_TIMEOUT
    if overrides.start_timeout is not None:
        start_timeout = _flag_duration("start-timeout", overrides.start_timeout, positive=True)
    flag("start_timeout", overrides.start_timeout is not None)
    stop_grace = DEFAULT_STOP_GRACE
    if overrides.stop_grace is not None:
        stop_grace = _flag_duration("stop-grace", overrides.stop_grace)
    flag("stop_grace", overrides.stop_grace is not None)
    return {
        "host": host,
        "port": port,
        "seed": seed,
        "start_timeout": start_timeout,
        "stop_grace": stop_grace,
        "origins": origins,
    }


# ---------------------------------------------------------------------------------------------
# Showing the result: `emu config` and `emu config --json`

_GLOBAL_KEYS = (
    "env",
    "worker_name",
    "main",
    "host",
    "port",
    "seed",
    "start_timeout",
    "stop_grace",
)
_CLASS_KEYS = tuple(f.name for f in fields(ClassConfig) if f.name not in ("class_name", "origins"))


def _instance_type_text(t: InstanceType) -> str:
    return f"{t.name} ({t.vcpu:g} vCPU, {t.memory_mib} MiB memory, {t.disk_mb} MB disk)"


def _path_text(path: Path | None, root: Path) -> str:
    if path is None:
        return "none"
    return _display(path, root) if path != root else "."


def _text_value(key: str, value: object, root: Path) -> str:
    if key in ("sleep_after", "start_timeout", "stop_grace") and isinstance(value, float):
        return format_duration(value)
    if isinstance(value, InstanceType):
        return _instance_type_text(value)
    if isinstance(value, Path):
        return _path_text(value, root)
    if value is None:
        return "the image's" if key == "entrypoint" else "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(dict(value)) if value else "{}"
    if isinstance(value, tuple):
        return json.dumps(list(value)) if value else "none"
    return str(value)


def _global_value(config: Config, key: str) -> object:
    value: object = getattr(config, key)
    return value


def describe(config: Config) -> str:
    """The resolved settings, each with where it came from, for `emu config`."""
    root = config.project_dir
    rows: list[tuple[str, str, str]] = []
    lines = [f"config {config.path}"]

    def table(entries: Sequence[tuple[str, str, str]], indent: str) -> list[str]:
        width_key = max(len(k) for k, _, _ in entries)
        width_value = max(len(v) for _, v, _ in entries)
        return [
            f"{indent}{k.ljust(width_key)}  {v.ljust(width_value)}  {o}".rstrip()
            for k, v, o in entries
        ]

    for key in _GLOBAL_KEYS:
        value = _text_value(key, _global_value(config, key), root)
        rows.append((key, value, str(config.origins.get(key, DEFAULT))))
    lines += table(rows, "  ")
    for cls in config.classes:
        lines.append("")
        lines.append(f"class {cls.class_name}  ({cls.origins.get('class_name', DEFAULT)})")
        class_rows = [
            (key, _text_value(key, getattr(cls, key), root), str(cls.origins.get(key, DEFAULT)))
            for key in _CLASS_KEYS
        ]
        lines += table(class_rows, "  ")
    if config.warnings:
        lines.append("")
        lines.append("warnings")
        lines += [f"  - {warning}" for warning in config.warnings]
    return "\n".join(lines)


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


def as_json(config: Config) -> dict[str, Any]:
    """The resolved settings for `emu config --json`: every setting as {value, origin}."""

    def entry(value: object, origin: Origin | None) -> dict[str, object]:
        return {"value": _json_value(value), "origin": str(origin or DEFAULT)}

    return {
        "path": str(config.path),
        "project_dir": str(config.project_dir),
        "settings": {
            key: entry(_global_value(config, key), config.origins.get(key)) for key in _GLOBAL_KEYS
        },
        "classes": [
            {
                "class_name": cls.class_name,
                "origin": str(cls.origins.get("class_name", DEFAULT)),
                "settings": {
                    key: entry(getattr(cls, key), cls.origins.get(key)) for key in _CLASS_KEYS
                },
            }
            for cls in config.classes
        ],
        "warnings": list(config.warnings),
    }
