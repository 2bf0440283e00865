"""Finding and reading the wrangler config file: its data, the line of each field, and the part
that a wrangler environment (`--env NAME`) selects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emulator.config.jsvalue import literal

from .formats import FieldPath, SyntaxProblem, field_text, parse_jsonc, parse_toml
from .model import CONFIG_FILE_NAMES, ConfigError, ConfigWarning, FileOrigin, display
from .suggest import did_you_mean


@dataclass(frozen=True)
class Document:
    """A parsed config file and where its fields are written."""

    path: Path
    cwd: Path  # the working folder; messages show files relative to it
    data: Mapping[str, Any]
    lines: Mapping[FieldPath, int]
    # With `--env NAME`: top-level keys of `data` that are read from env.NAME, and from where.
    moved: Mapping[str, FieldPath] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The file as shown in messages: relative to cwd when inside it."""
        return display(self.path, self.cwd)

    def real(self, path: FieldPath) -> FieldPath:
        """Where `path` of `data` is written in the file."""
        if path and isinstance(path[0], str) and path[0] in self.moved:
            return (*self.moved[path[0]], *path[1:])
        return path

    def shown(self, path: FieldPath) -> str:
        """The field as the file writes it: "env.staging.containers[0].image"."""
        return field_text(self.real(path))

    def line(self, path: FieldPath) -> int | None:
        """The line of `path`, or of its nearest written ancestor."""
        path = self.real(path)
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return None

    def origin(self, path: FieldPath = ()) -> FileOrigin:
        return FileOrigin.at(self.path, self.line(path), self.cwd)

    def where(self, path: FieldPath = ()) -> str:
        return str(self.origin(path))

    def error(self, path: FieldPath, message: str) -> ConfigError:
        return ConfigError(self.where(path), self.shown(path), message)

    def warning(self, path: FieldPath | None, message: str) -> ConfigWarning:
        """A warning at `path` (None: the file as a whole)."""
        return ConfigWarning(self.origin(path or ()), message)


def locate(path: Path | None, cwd: Path) -> Path:
    """`path`, or the first of wrangler.json, wrangler.jsonc, wrangler.toml in `path` (a
    folder) or `cwd` (absolute). Raises ConfigError."""
    if path is not None:
        path = (cwd / path.expanduser()).absolute()
        if path.is_dir():
            folder = path
        elif path.is_file():
            return path
        else:
            raise ConfigError(display(path, cwd), "", "config file not found")
    else:
        folder = cwd
    for name in CONFIG_FILE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise ConfigError(
        display(folder, cwd) if folder != cwd else str(folder),
        "",
        f"no wrangler config here (looked for {', '.join(CONFIG_FILE_NAMES)}); "
        "run emu in the Worker's folder or pass the config file",
    )


def read_document(path: Path, cwd: Path) -> Document:
    """Raises ConfigError for a file that cannot be read or parsed."""
    shown = display(path, cwd)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(shown, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, "", f"not UTF-8 text ({exc.reason})") from None
    toml = path.suffix == ".toml"
    try:
        data, lines = parse_toml(text) if toml else parse_jsonc(text)
    except SyntaxProblem as problem:
        where = ":".join(str(part) for part in (shown, problem.line, problem.column) if part)
        raise ConfigError(
            where, "", f"invalid {'TOML' if toml else 'JSONC'}: {problem.message}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(shown, "", "the top level must be an object")
    return Document(path, cwd, data, lines)


# wrangler environments (`wrangler dev --env NAME`): env.NAME's own containers and bindings
# only, as they are not inherited; the rest is env.NAME's where it sets it, else the top level's.
_ENV_OWN_KEYS = ("containers", "durable_objects")
_ENV_INHERITED_KEYS = ("name", "main", "migrations", "exports")


def select_env(doc: Document, env: str | None, env_from: str, warnings: list[str]) -> Document:
    """The document as `--env NAME` sees it; `doc` itself without --env."""
    if env is None:
        return doc
    envs = doc.data.get("env")
    if envs is not None and not isinstance(envs, dict):
        raise doc.error(("env",), f"must be an object of environments, not {literal(envs)}")
    if not envs:
        # As wrangler: only a warning, and the top level (its Worker still named <name>-NAME).
        warnings.append(
            ConfigWarning(
                FileOrigin.at(doc.path, None, doc.cwd),
                f"defines no environments; for {json.dumps(env)} ({env_from}) emu reads the "
                "top level, as wrangler does",
                separator=" ",
            )
        )
        return doc
    if env not in envs:
        names = [str(name) for name in envs]
        raise ConfigError(
            env_from,
            "",
            f"{doc.display} has no environment {json.dumps(env)}; "
            f"{did_you_mean(env, names)}it has {', '.join(sorted(names))}",
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
