"""The `emu` command: `emulator.cli:main` is the console script. Its commands are in
`commands.py`, loaded when `main` is asked for, so that importing a module of this package
(`emulator.cli.output`) does not load every command."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .commands import main

__all__ = ["main"]


def __getattr__(name: str) -> object:
    if name == "main":
        from .commands import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
