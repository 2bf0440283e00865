"""`EmulatorOptions`: every option of an `Emulator`, in one frozen object.

`emu up` (and so `emu dev`), `emu load`'s own emu, `RunningEmulator` and the pytest fixture
`emu_up` each build one and hand it to `Emulator(config, options)`: the options are listed here
only. The settings read from the config and its flags (port, sleepAfter, ...) are `Config`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Config
from .engine.choice import Engine
from .engine.docker_backend import DockerBackend
from .instances.events import LifecycleEvent
from .worker.runtime import RuntimeOptions


@dataclass(frozen=True)
class EmulatorOptions:
    """How an `Emulator` runs. Each field with a flag of `emu up` is as that flag says."""

    # True: the Worker runs in workerd (`--worker`); False: emu routes requests as getRandom
    # does (`--no-worker`); None: worker mode when a Node.js that runs it is there, as `emu up`
    # without either flag (the fixture `emu_up`: as its ini setting `emu_worker` says).
    worker: bool | None = None
    # Worker mode's settings: --var, --persist-to, --no-persist, --inspector-port,
    # --test-scheduled, --request-timeout, --extra-worker.
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    follow_logs: bool = False  # --logs: container output goes to on_output
    watch: bool = False  # --watch: rebuild and reconfigure on changes
    access_log: bool = False  # --access-log: a line per request
    # --reaper: a watchdog process that removes the session's containers if this one dies
    # (also in-process: a killed test run leaves nothing).
    reaper: bool = True
    prewarm: int = 0  # --prewarm N: instance-0 .. instance-(N-1) of each class before serving
    request_feed: bool = True  # --request-feed: record requests for the dashboard
    debug_headers: bool = True  # --debug-headers: x-emu-instance on responses
    engine: Engine | None = None  # --engine; None: as DOCKER_HOST says
    docker: DockerBackend | None = None  # a backend of the caller's (tests); None: the engine's
    # Reads the config again, with the same flags: what --watch applies settings changes with.
    reload: Callable[[], Config] | None = None
    # Every line `emu up` would print, as (source, line); None: the `emu` logger.
    on_output: Callable[[str, str], None] | None = None
    # Each lifecycle event instead, as its fields (those of /_emu/events) and its line.
    on_event: Callable[[LifecycleEvent, str], None] | None = None
