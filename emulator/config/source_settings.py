"""The Container settings a Worker source writes: their types, and the check of each literal.

A literal read from source is checked by its setting's checker (one per setting type); one of
the wrong JS type is left out with a warning, as if it were not written. Written as `null` or
`undefined`, a setting is cleared: unset, and not inherited either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from emulator.config.jstree import MISSING
from emulator.config.jsvalue import is_whole, js_string, kind

T = TypeVar("T")


@dataclass(frozen=True)
class Located(Generic[T]):
    """A value read from source, with the 1-based line it was written on."""

    value: T
    line: int
    path: Path | None = None  # the file; None when scanned from text without a path


@dataclass(frozen=True)
class ScanWarning:
    path: Path | None
    line: int
    message: str

    def __str__(self) -> str:
        where = str(self.path) if self.path is not None else "<source>"
        return f"{where}:{self.line}: {self.message}"


@dataclass(frozen=True)
class ClassSettings:
    """The literal settings of one `class X extends Container`; None where not found."""

    name: str
    line: int
    path: Path | None = None
    default_port: Located[int] | None = None
    required_ports: Located[tuple[int, ...]] | None = None
    sleep_after: Located[str | float] | None = None  # raw: "15m" or a number of seconds
    env_vars: Located[Mapping[str, str]] | None = None
    entrypoint: Located[tuple[str, ...]] | None = None
    enable_internet: Located[bool] | None = None
    ping_endpoint: Located[str] | None = None
    # Settings written as `null` or `undefined`: unset here, and not inherited either.
    cleared: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Setting(Generic[T]):
    prop: str  # as the class writes it: "defaultPort"
    field: str  # the ClassSettings field: "default_port"
    expected: str  # for the warning about a literal of the wrong type
    # The value in ClassSettings' form, or None for the wrong type; notes about parts it drops.
    check: Callable[[object, list[str]], T | None]


def _whole(value: object, notes: list[str]) -> int | None:
    return int(value) if isinstance(value, int | float) and is_whole(value) else None


def _wholes(value: object, notes: list[str]) -> tuple[int, ...] | None:
    if isinstance(value, list) and all(is_whole(v) for v in value):
        return tuple(int(v) for v in value)
    return None


def _duration(value: object, notes: list[str]) -> str | float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    # Passed on all the same, so that the config reports it as the library would.
    return js_string(value) or kind(value)


def _env(value: object, notes: list[str]) -> Mapping[str, str] | None:
    if not isinstance(value, dict):
        return None
    converted: dict[str, str] = {}
    for key, item in value.items():
        text = js_string(item)
        if text is None:
            notes.append(f"envVars.{key} is {kind(item)}, not a string; emu leaves it out")
        else:
            converted[str(key)] = text
    return converted


def _strings(value: object, notes: list[str]) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _bool(value: object, notes: list[str]) -> bool | None:
    return value if isinstance(value, bool) else None


def _string(value: object, notes: list[str]) -> str | None:
    return value if isinstance(value, str) else None


_DEFAULT_PORT = _Setting("defaultPort", "default_port", "a whole number", _whole)
_REQUIRED_PORTS = _Setting("requiredPorts", "required_ports", "an array of whole numbers", _wholes)
_SLEEP_AFTER: _Setting[str | float] = _Setting("sleepAfter", "sleep_after", "a duration", _duration)
_ENV_VARS = _Setting("envVars", "env_vars", "an object of strings", _env)
_ENTRYPOINT = _Setting("entrypoint", "entrypoint", "an array of strings", _strings)
_ENABLE_INTERNET = _Setting("enableInternet", "enable_internet", "true or false", _bool)
_PING_ENDPOINT = _Setting("pingEndpoint", "ping_endpoint", "a string", _string)
# In the order the library's docs list them, which is the order of the warnings too.
_TABLE: tuple[_Setting[Any], ...] = (
    _DEFAULT_PORT,
    _REQUIRED_PORTS,
    _SLEEP_AFTER,
    _ENV_VARS,
    _ENTRYPOINT,
    _ENABLE_INTERNET,
    _PING_ENDPOINT,
)
PROPERTIES = tuple(setting.prop for setting in _TABLE)
_FIELDS = tuple(setting.field for setting in _TABLE)


def checked(
    name: str,
    line: int,
    path: Path | None,
    raw: Mapping[str, Located[object]],
    warnings: list[ScanWarning],
) -> ClassSettings:
    """The settings of class `name` (declared on `line`) from the literals it writes, by
    property name; each of the wrong type is left out with a warning."""

    def read(setting: _Setting[T]) -> Located[T] | None:
        found = raw.get(setting.prop)
        if found is None or found.value is MISSING:
            return None
        notes: list[str] = []
        value = setting.check(found.value, notes)
        if value is None:
            expected = f"should be {setting.expected}, not {kind(found.value)}"
            notes.append(f"{setting.prop} {expected}; emu ignores it")
        warnings.extend(ScanWarning(path, found.line, f"{name}.{note}") for note in notes)
        return Located(value, found.line, path) if value is not None else None

    cleared = (s.field for s in _TABLE if s.prop in raw and raw[s.prop].value is MISSING)
    return ClassSettings(
        name=name,
        line=line,
        path=path,
        default_port=read(_DEFAULT_PORT),
        required_ports=read(_REQUIRED_PORTS),
        sleep_after=read(_SLEEP_AFTER),
        env_vars=read(_ENV_VARS),
        entrypoint=read(_ENTRYPOINT),
        enable_internet=read(_ENABLE_INTERNET),
        ping_endpoint=read(_PING_ENDPOINT),
        cleared=frozenset(cleared),
    )


def overlay(over: ClassSettings, under: ClassSettings) -> ClassSettings:
    """`over`, with each setting it neither writes nor clears taken from `under`."""
    unset = [n for n in _FIELDS if getattr(over, n) is None and n not in over.cleared]
    return replace(
        over,
        **{name: getattr(under, name) for name in unset},
        cleared=over.cleared | (under.cleared & frozenset(unset)),
    )
