"""The settings a class takes from the Worker source (its `Container` subclass and getRandom's
N), or the library's defaults, each with its origin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from emulator.config.durations import ALLOWED_HINT, parse_sleep_after
from emulator.config.source_scan import (
    DEFAULT_RANDOM_INSTANCES,
    ClassSettings,
    Located,
    WorkerScan,
    scan_file,
)

from .document import Document
from .fields import string
from .model import (
    DEFAULT,
    DEFAULT_ENABLE_INTERNET,
    DEFAULT_PING_ENDPOINT,
    DEFAULT_SLEEP_AFTER,
    SOURCE_DEFAULTS_TEXT,
    ConfigError,
    ConfigWarning,
    FileOrigin,
    Origin,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Worker:
    """The Worker source named by `main`, as read."""

    main: Path | None  # absolute
    origin: Origin  # of `main`
    scan: WorkerScan | None  # None when there is no `main` or it could not be read


def scan_worker(doc: Document, warnings: list[str]) -> Worker:
    main_value = doc.data.get("main")
    if main_value is None:
        warnings.append(
            doc.warning(
                None,
                f"no `main` (Worker source), so emu uses the Container defaults: "
                f"{SOURCE_DEFAULTS_TEXT}",
            )
        )
        return Worker(None, DEFAULT, None)
    text = string(doc, ("main",), main_value, required=True)
    main = (doc.path.parent / Path(text).expanduser()).resolve()
    origin = doc.origin(("main",))
    try:
        scan = scan_file(main)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warnings.append(
            ConfigWarning(
                FileOrigin.at(main, None, doc.cwd),
                f"Worker source not read ({reason}), so emu uses the Container defaults: "
                f"{SOURCE_DEFAULTS_TEXT}",
            )
        )
        return Worker(main, origin, None)
    for warning in scan.warnings:
        warnings.append(
            ConfigWarning(_origin(warning.path, warning.line, doc.cwd), warning.message)
        )
    return Worker(main, origin, scan)


@dataclass(frozen=True)
class SourceSettings:
    """The Container class fields of ClassConfig, typed, before the flags."""

    default_port: int | None
    required_ports: tuple[int, ...]
    sleep_after: float  # seconds
    env_vars: Mapping[str, str]
    entrypoint: tuple[str, ...] | None
    enable_internet: bool
    ping_endpoint: str


def source_settings(
    worker: Worker, class_name: str, cwd: Path, origins: dict[str, Origin], warnings: list[str]
) -> SourceSettings:
    """The class's settings from the Worker source, else the library's defaults; records each
    one's origin in `origins`. Raises ConfigError for a value the platform would refuse."""
    found = worker.scan.classes.get(class_name) if worker.scan is not None else None
    if worker.scan is not None and found is None and worker.main is not None:
        warnings.append(
            ConfigWarning(
                FileOrigin.at(worker.main, None, cwd),
                f"class {class_name} extends Container is not found there or in its relative "
                f"imports, so emu uses the Container defaults: {SOURCE_DEFAULTS_TEXT}",
            )
        )

    def pick(value: Located[T] | None, key: str) -> T | None:
        origins[key] = _origin(value.path, value.line, cwd) if value is not None else DEFAULT
        return value.value if value is not None else None

    s = found if found is not None else ClassSettings(class_name, 0)  # all unset
    default_port = pick(s.default_port, "default_port")
    if default_port is not None:
        _port(default_port, origins["default_port"], f"{class_name}.defaultPort")
    required_ports = _default(pick(s.required_ports, "required_ports"), ())
    for port in required_ports:
        _port(port, origins["required_ports"], f"{class_name}.requiredPorts")
    if found is not None and default_port is None and not required_ports:
        warnings.append(
            ConfigWarning(
                _origin(found.path, found.line, cwd),
                f"{class_name} sets no defaultPort; requests fail unless the Worker picks a "
                "port with switchPort",
            )
        )
    entrypoint = pick(s.entrypoint, "entrypoint")
    return SourceSettings(
        default_port=default_port,
        required_ports=tuple(required_ports),
        sleep_after=_sleep_after(pick(s.sleep_after, "sleep_after"), class_name, origins),
        env_vars=dict(_default(pick(s.env_vars, "env_vars"), {})),
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        enable_internet=_default(
            pick(s.enable_internet, "enable_internet"), DEFAULT_ENABLE_INTERNET
        ),
        ping_endpoint=_default(pick(s.ping_endpoint, "ping_endpoint"), DEFAULT_PING_ENDPOINT),
    )


def _default(value: T | None, default: T) -> T:
    return default if value is None else value


def _sleep_after(raw: str | float | None, class_name: str, origins: Mapping[str, Origin]) -> float:
    if raw is None:
        return DEFAULT_SLEEP_AFTER
    try:
        return parse_sleep_after(raw)
    except ValueError as exc:
        # An error even when --sleep-after overrides it: the platform would throw.
        raise ConfigError(
            str(origins["sleep_after"]),
            f"{class_name}.sleepAfter",
            f"{exc}; allowed: {ALLOWED_HINT}",
        ) from None


def random_instances(
    worker: Worker, binding_names: list[str], cwd: Path
) -> tuple[int, Origin] | None:
    """The largest N of getRandom(env.BINDING, N) for the class's bindings, when called."""
    scan = worker.scan
    counts = [scan.random_counts[b] for b in binding_names if scan and b in scan.random_counts]
    if not counts:
        return None
    best = max(counts, key=lambda c: c.value)
    return best.value, _origin(best.path, best.line, cwd)


def default_instances() -> tuple[int, Origin]:
    return DEFAULT_RANDOM_INSTANCES, DEFAULT


def _origin(path: Path | None, line: int, cwd: Path) -> Origin:
    if path is None:
        return Origin(f"<source>:{line}")
    return FileOrigin.at(path, line, cwd)


def _port(value: int, origin: Origin, field_name: str) -> int:
    if not 1 <= value <= 65535:
        raise ConfigError(str(origin), field_name, f"port {value} is outside 1 to 65535")
    return value
