"""emu's Python API: `Emulator` (one session: start, serve, stop) and its `EmulatorOptions`,
`load_config` and the config's types, and for tests `RunningEmulator` (an Emulator on a thread
of its own) and `EmuProcess` (an `emu up` process).

    from emulator import Emulator, EmulatorOptions, Overrides, load_config

Each name is imported when first asked for, so that `import emulator.cli` (every `emu` command's
start) does not pay for the rest."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config, ConfigError, Overrides, load_config
    from .options import EmulatorOptions
    from .session import Emulator
    from .testing import EmuProcess, RunningEmulator

_WHERE = {
    "Emulator": ".session",
    "EmulatorOptions": ".options",
    "Config": ".config",
    "ConfigError": ".config",
    "Overrides": ".config",
    "load_config": ".config",
    "EmuProcess": ".testing",
    "RunningEmulator": ".testing",
}

__all__ = [
    "Config",
    "ConfigError",
    "EmuProcess",
    "Emulator",
    "EmulatorOptions",
    "Overrides",
    "RunningEmulator",
    "load_config",
]


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
