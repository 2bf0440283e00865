"""Where `Emulator` used to live, kept so that `from emulator.server import Emulator` (the
README's) goes on working. The code is in `emulator.py` (the lifecycle), `front.py` (the
aiohttp application), `labels.py` and `sweep.py`."""

from __future__ import annotations

from .front.app import ListenError
from .runs.labels import project_id
from .runs.sweep import running_urls, sweep_project, sweep_session
from .session import Emulator

__all__ = [
    "Emulator",
    "ListenError",
    "project_id",
    "running_urls",
    "sweep_project",
    "sweep_session",
]
