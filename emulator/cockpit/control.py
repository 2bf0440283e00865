"""The cockpit's handles: act on one instance (start, stop, kill, signal, pause), read its output.
`routes.py` exposes them as `/_emu` routes, to loopback clients only.

`Cockpit` is what the control API, the dashboard's event stream, `emu logs` and
`RunningEmulator` share; the Emulator owns it and tells it of every lifecycle event."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
from collections.abc import Awaitable, Callable, Mapping

from ..engine.docker_backend import DockerBackend
from ..engine.docker_types import DockerError
from ..front.requests_log import RequestLog
from ..instances.errors import EmuHTTPError
from ..instances.events import EventKind, LifecycleEvent
from ..instances.instance import INSTANCE_NAME, Instance, State
from ..instances.pool import ClassPool
from ..instances.status import InstanceStatus, Status
from . import metrics, sse
from .load_feed import LoadFeed

ACTIONS = ("start", "stop", "kill", "signal", "pause", "unpause", "restart")
MAX_SIGNAL = 64  # Linux: 1-31, and the real-time ones up to 64
REAP_WAIT = 10.0  # for an exited container's lines to be kept, before reading them


class Cockpit:
    """Instances by name, the actions on them, their output, and who listens to events."""

    def __init__(
        self,
        pools: Mapping[str, ClassPool],
        docker: DockerBackend,
        events: collections.deque[LifecycleEvent],
        status: Callable[[], Status],
        feed: RequestLog | None,
    ) -> None:
        self.pools = pools
        self.docker = docker
        self.events = events
        self.status = status
        self.feed = feed
        self.metrics = metrics.registry(pools.values)  # `/_emu/metrics`' own registry
        self.usage = sse.UsageCache()  # memory and CPU readings, shared by the open streams
        self.load = LoadFeed()  # a running `emu load`'s progress, for the dashboard
        self.event_count = 0  # lifecycle events ever seen: streams remember where they were
        self._listeners: set[Callable[[LifecycleEvent], None]] = set()
        self._streams: set[Callable[[], None]] = set()  # how to end each open stream
        self._restarts: set[asyncio.Task[None]] = set()

    # -- events ---------------------------------------------------------------------------

    def on_event(self, entry: LifecycleEvent) -> None:
        self.event_count += 1
        for listener in list(self._listeners):
            listener(entry)

    def subscribe(self, listener: Callable[[LifecycleEvent], None]) -> Callable[[], None]:
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def events_since(self, seen: int) -> list[LifecycleEvent]:
        new = min(self.event_count - seen, len(self.events))
        return list(self.events)[len(self.events) - new :] if new > 0 else []

    def open_stream(self, end: Callable[[], None]) -> Callable[[], None]:
        """Register a long-lived response; `end` is called when emu stops."""
        self._streams.add(end)
        return lambda: self._streams.discard(end)

    def close_streams(self) -> None:
        for end in list(self._streams):
            end()

    # -- instances ------------------------------------------------------------------------

    def pool(self, class_name: str | None) -> ClassPool:
        """A class by its name or its binding (either case); the only one when None."""
        if class_name is None and len(self.pools) == 1:
            return next(iter(self.pools.values()))
        for pool in self.pools.values():
            if class_name is not None and class_name.lower() in (
                pool.config.class_name.lower(),
                pool.config.binding.lower(),
            ):
                return pool
        raise EmuHTTPError(
            404,
            f"no Container class {class_name!r}"
            if class_name
            else "several Container classes: name one",
            classes=[p.config.class_name for p in self.pools.values()],
        )

    def find(self, class_name: str | None, name: str, *, create: bool = False) -> Instance:
        pool = self.pool(class_name)
        inst = pool.instances.get(name)
        if inst is None and create and INSTANCE_NAME.match(name):
            return pool.get(name)
        if inst is None:
            raise EmuHTTPError(
                404, f"no instance {name!r} in {pool.config.class_name}", instance=name
            )
        return inst

    async def act(
        self, class_name: str | None, name: str, action: str, sig: str | None = None
    ) -> InstanceStatus:
        """Do `action` to an instance; returns its snapshot. EmuHTTPError: 400 for an unknown
        action or signal, 404 for an unknown class or instance, 409 when the instance is not in
        a state the action applies to (killing a stopped one)."""
        if action not in ACTIONS:
            raise EmuHTTPError(400, f"unknown action {action!r}", actions=list(ACTIONS))
        signum = parse_signal(sig) if action == "signal" else None
        inst = self.find(class_name, name, create=action == "start")
        if action == "start":
            if inst.state is not State.HEALTHY:
                await inst.ensure_started()
            return inst.snapshot()
        if action == "restart":  # stop (as `stop` does), then start; in the background
            task = asyncio.create_task(_restart(inst), name=f"restart {inst.name}")
            self._restarts.add(task)
            task.add_done_callback(self._restarts.discard)
            return inst.snapshot()
        cid = inst.container_id
        if cid is None or inst.state not in (State.RUNNING, State.HEALTHY, State.STOPPING):
            raise EmuHTTPError(
                409, f"{name} has no running container (state {inst.state})", state=inst.state
            )
        if action == "stop":
            inst.stop("stopped through the control API")
        elif action in ("pause", "unpause"):
            await self._pause(inst, cid, action == "pause")
        else:
            if inst.paused:  # a frozen process would not see the signal
                await self._pause(inst, cid, False)
            signum = signal.SIGKILL if signum is None else signum
            inst.pool.emit(EventKind.SIGNALLED, inst, signal=_signal_name(signum))
            inst.signalled_by_emu(f"{_signal_name(signum)} through the control API")
            await self._docker(self.docker.signal(cid, str(signum)))
        return inst.snapshot()

    async def _pause(self, inst: Instance, cid: str, paused: bool) -> None:
        if inst.paused == paused:
            raise EmuHTTPError(409, f"{inst.name} is {'already' if paused else 'not'} paused")
        await self._docker(self.docker.pause(cid, paused))
        inst.paused = paused
        inst.pool.emit(EventKind.PAUSED if paused else EventKind.UNPAUSED, inst)

    @staticmethod
    async def _docker(call: Awaitable[None]) -> None:
        try:
            await call
        except DockerError as exc:
            raise EmuHTTPError(502, f"Docker: {exc}") from exc

    async def logs(
        self, inst: Instance, tail: int | None = None, since: float | None = None
    ) -> list[tuple[float, str]]:
        """The instance's output: its container's, or the last lines of the one it had."""
        if tail == 0:
            return []
        cid = inst.container_id
        if cid is not None and inst.state in (State.STOPPED, State.STOPPED_WITH_CODE):
            await inst.wait_reaped(REAP_WAIT)  # exited: its lines are being kept right now
        elif cid is not None:
            with contextlib.suppress(DockerError):
                found = await self.docker.logs(cid, tail=tail)
                if found or inst.container_id == cid:
                    return [(t, line) for t, line in found if since is None or t >= since]
        lines = [(t, line) for t, line in inst.kept_logs if since is None or t >= since]
        return lines[-tail:] if tail is not None else lines


async def _restart(inst: Instance) -> None:
    if inst.container_id is not None or inst.starting:
        await inst.stop("restarted through the control API")
    with contextlib.suppress(EmuHTTPError):  # a failed start is an event and a last_error
        await inst.ensure_started()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # a real-time signal
        return str(signum)


def parse_signal(raw: str | None) -> int:
    """A signal number (1 to 64) or name (SIGUSR1, USR1); EmuHTTPError 400 otherwise."""
    if raw is not None:
        if raw.isdigit() and 0 < int(raw) <= MAX_SIGNAL:
            return int(raw)
        name = raw.upper() if raw.upper().startswith("SIG") else "SIG" + raw.upper()
        if name in signal.Signals.__members__:
            return int(signal.Signals[name])
    raise EmuHTTPError(
        400, f"invalid signal {raw!r}: a number from 1 to {MAX_SIGNAL}, or a name like SIGUSR1"
    )
