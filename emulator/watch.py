"""Watch-and-rebuild for `emu up --watch`: which changed file concerns which class."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch

from .config import ClassConfig, Config

DEBOUNCE_MS = 300


def watched_paths(config: Config) -> list[Path]:
    """The build contexts (and Dockerfiles outside them), the config file and the Worker source."""
    paths: set[Path] = {config.path}
    if config.main is not None and config.main.exists():
        paths.add(config.main)
    for cls in config.classes:
        if cls.build_context is None or cls.dockerfile is None:
            continue  # an image reference: nothing to build
        paths.add(cls.build_context)
        if not cls.dockerfile.is_relative_to(cls.build_context):
            paths.add(cls.dockerfile)
    # A folder already watched covers the files in it.
    return sorted(p for p in paths if not any(q != p and p.is_relative_to(q) for q in paths))


def affected(config: Config, changed: Iterable[Path]) -> tuple[list[ClassConfig], list[Path]]:
    """The classes whose image a change concerns, and the changed config or source files."""
    classes: list[ClassConfig] = []
    settings: list[Path] = []
    for path in changed:
        if path == config.path or path == config.main:
            settings.append(path)
        for cls in config.classes:
            if cls in classes or cls.build_context is None:
                continue
            if path.is_relative_to(cls.build_context) or path == cls.dockerfile:
                classes.append(cls)
    return classes, settings


async def watch(
    config: Callable[[], Config],
    stop: asyncio.Event,
    rebuild: Callable[[ClassConfig], Awaitable[None]],
    reload: Callable[[], Awaitable[None]],
    notice: Callable[[str], None],
) -> None:
    """Until `stop` is set: rebuild a class's image when its build context changes, reload the
    settings when the config file or the Worker source changes. `config()` is the one in force."""
    paths = watched_paths(config())
    notice("watching " + ", ".join(str(p) for p in paths))
    async for changes in awatch(
        *paths, stop_event=stop, debounce=DEBOUNCE_MS, watch_filter=DefaultFilter()
    ):
        changed = {
            Path(p)
            for kind, p in changes
            if kind in (Change.added, Change.modified, Change.deleted)
        }
        classes, settings = affected(config(), changed)
        if settings:
            try:
                await reload()
            except Exception as exc:  # keep watching: the next save may well fix it
                notice(f"reloading the settings failed: {exc}")
        for cls in classes:
            try:
                await rebuild(cls)
            except Exception as exc:  # keep watching: the next save may well fix it
                notice(f"rebuilding {cls.class_name} failed: {exc}")
