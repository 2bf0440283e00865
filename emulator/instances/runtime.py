"""What the instances of a session share (`Runtime`, `SessionState`), and what an instance uses
of its class's pool (`Pool`): said here, below pool.py, so that instance.py and stopping.py do
not import pool.py, which imports them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Unpack

import aiohttp

from ..config import ClassConfig
from ..engine.docker_backend import DockerBackend
from .cold_starts import ColdStarts
from .events import EventFields, EventKind
from .images import ImageState
from .spec import Capacity


@dataclass
class SessionState:
    """What the emulator tells every instance at once; it is the only writer."""

    engine_up: bool = True
    closing: bool = False  # emu is shutting down: no more starts


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Runtime:
    """What every instance of a session shares."""

    docker: DockerBackend
    session: aiohttp.ClientSession  # for readiness probes
    network: str
    internal_network: str  # for classes with enableInternet = false
    labels: Mapping[str, str]  # the session's: emu.managed, emu.project, emu.session, ...
    name_prefix: str
    start_timeout: float
    stop_grace: float
    disk_enforced: bool
    on_event: Callable[[EventKind, EventFields], None]  # for logs and the event history
    state: SessionState
    # Not None when the engine's bridge cannot be reached from here (a remote engine, a
    # Swarm): instances publish their ports on this address (see emulator/engine/).
    publish_address: str | None = None
    capacity: Capacity = field(default_factory=Capacity)  # the engine's CPUs and memory
    restore_networks: Callable[[], Awaitable[None]] = _nothing  # makes removed networks again
    # The Worker runs (worker mode): its library does readiness and sleepAfter, not emu.
    worker_mode: bool = False
    cold_starts: ColdStarts = field(default_factory=ColdStarts)  # histograms, for metrics
    # Closes the way out of a container on the internal network (emulator/egress/seal.py);
    # None where emu cannot reach the container's network namespace (a Swarm, a remote engine).
    seal: Callable[[str], Awaitable[None]] | None = None
    local_engine: bool = True  # outbound interception (emulator/egress) needs the engine here


class Named(Protocol):
    name: str


class Pool(Protocol):
    """What an instance needs of its class's pool (pool.py's `ClassPool` satisfies it): the
    class's settings, the session's runtime, the image, the network, capacity accounting, the
    index of containers (for the engine's events), and the events it emits."""

    config: ClassConfig
    runtime: Runtime
    image: ImageState
    by_container: dict[str, Any]  # container id -> its Instance

    @property
    def network(self) -> str: ...
    def holding_slots(self) -> Sequence[Named]: ...
    def slots_used(self) -> int: ...
    def emit(self, kind: EventKind, inst: Named, **extra: Unpack[EventFields]) -> None: ...
