"""How an instance stops: SIGTERM, SIGKILL after --stop-grace, and what happens meanwhile; and
how a container that ends on its own, or is killed or removed outside emu, is reaped.

After an idle stop (sleepAfter expired) the container keeps being served until it exits, as on
the platform. One that ignores SIGTERM (a plain `python app.py` as PID 1 does) keeps answering
and keeps its `max_instances` slot; when its next idle period ends it is signalled again, and
SIGKILL comes --stop-grace after the last SIGTERM. The other stops (emu shutting down, a
replacement after a rebuild) route no request into the container any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Protocol

from ..engine.docker_types import DockerError, Event
from .errors import EmuHTTPError
from .events import EventFields, EventKind
from .runtime import Pool
from .state import State

log = logging.getLogger("emu")

EXIT_WAIT = 10.0  # how long to wait for a killed container to report that it died
IGNORED_AFTER = 5.0  # no exit this long after SIGTERM: the log says the container ignores it
DESTROY_WAIT = 0.5  # after a kill from outside: how long a `docker rm -f` may take to remove
STOP_CHECK_INTERVAL = 1.0  # while a stop waits for the exit: how often to ask the engine
KEPT_LOG_LINES = 1000  # a removed container's last lines, kept for `emu logs` and the dashboard
REMEDY = "handle SIGTERM in the container (exit on it), or lower --stop-grace"
IDLE = "sleepAfter expired"


class StopHost(Protocol):
    """What a `StopControl` needs of its instance (instance.py's `Instance`, which owns the
    state and the container's address)."""

    name: str
    state: State
    container_id: str | None
    ip: str | None
    paused: bool  # a frozen container is thawed before its SIGTERM
    last_error: str | None

    async def start_settled(self) -> None: ...  # the start under way has ended, either way
    def forget_container(self) -> None: ...  # the container is gone: drop its address


class StopControl:
    """The stop and reap half of an instance, and what is known of its container's end (exit
    code, OOM, the cause). `name` is the instance's: the events it emits name the instance."""

    def __init__(self, host: StopHost, pool: Pool) -> None:
        self.host = host
        self.pool = pool
        self.name = host.name
        self.task: asyncio.Task[None] | None = None  # the stop, or the reap of an exit
        self.exit_code: int | None = None
        self.oom_killed = False
        # The output of its last container, read just before that was removed: (time, line).
        self.kept_logs: list[tuple[float, str]] = []
        self._loop = asyncio.get_running_loop()
        self._kill_at = math.inf  # loop time of the SIGKILL while stopping
        self._first_signal = "SIGTERM"  # what a stop sends first
        self._keep_serving = False  # an idle stop: requests still go to the container
        self.new_container()

    def new_container(self) -> None:
        """A start begins: nothing is known of the new container's end yet. (A stop asked for
        during its start keeps its SIGKILL time.)"""
        self.exited = asyncio.Event()
        self.exit_code = None
        self.oom_killed = False
        self._termed: float | None = None  # loop time of the last SIGTERM
        self._said_ignored = False  # the log said that it ignores the last SIGTERM
        self._killing = False  # emu sent SIGKILL
        self._removing = False  # emu is removing the container
        self._outside: str | None = None  # "killed outside emu", "removed outside emu"
        self._signalled: str | None = None  # why the control API signals it (not "outside")
        self._reason: str | None = None  # the exit's cause, when emu's control API caused it
        self._destroyed = asyncio.Event()

    @property
    def serving_while_stopping(self) -> bool:
        """Stopping after sleepAfter, its container still running: it is served, as on the
        platform."""
        return (
            self._keep_serving
            and self.host.state is State.STOPPING
            and self.host.ip is not None
            and not self.exited.is_set()
        )

    def kill_in(self) -> float | None:
        """Seconds until SIGKILL, while stopping."""
        if self.host.state is not State.STOPPING or self._kill_at == math.inf:
            return None
        return max(0.0, self._kill_at - self._loop.time())

    def stop(
        self,
        reason: str,
        grace: float | None = None,
        *,
        keep_serving: bool = False,
        signal: str = "SIGTERM",
    ) -> asyncio.Task[None]:
        """`signal` (a Worker's `signal()` or `destroy()` may ask for another than SIGTERM),
        then SIGKILL after `grace` (default --stop-grace). With `keep_serving` (an idle stop)
        requests still go to the container until it exits. A second call without it (emu
        shutting down, a replacement) ends that, and a shorter grace brings SIGKILL forward."""
        grace = self.pool.runtime.stop_grace if grace is None else grace
        self._kill_at = min(self._kill_at, self._loop.time() + grace)
        if self.task is None:
            self._first_signal = signal
            self._keep_serving = keep_serving
            if self.host.state is State.HEALTHY:
                self.host.state = State.STOPPING
            self.task = asyncio.create_task(self._stop(reason), name=f"stop {self.name}")
            self.task.add_done_callback(self._stop_done)
        else:
            self._keep_serving = self._keep_serving and keep_serving
        return self.task

    def signal_again(self) -> None:
        """The next idle period of a container that outlived its SIGTERM has ended: SIGTERM
        again, and SIGKILL --stop-grace from now."""
        cid = self.host.container_id
        if cid is None or not self.serving_while_stopping:
            return
        self._termed = self._loop.time()
        self._kill_at = self._termed + self.pool.runtime.stop_grace
        self._said_ignored = False
        self.pool.emit(EventKind.STOPPING, self, reason=IDLE + " again")
        task = asyncio.create_task(self.pool.runtime.docker.signal(cid, "SIGTERM"))
        task.add_done_callback(_retrieve)

    def still_stopping(self) -> EmuHTTPError:
        """The 503 of a request that waited for a stop longer than a start may take."""
        kill_in = self.kill_in()
        if self._termed is None or kill_in is None or self.exited.is_set():
            return EmuHTTPError(
                503, "The instance is still stopping; try again", instance=self.name
            )
        error = EmuHTTPError(
            503,
            f"The instance is still stopping: its container ignored SIGTERM "
            f"{self._loop.time() - self._termed:.0f} s ago, SIGKILL in {kill_in:.0f} s "
            f"(--stop-grace); {REMEDY}",
            instance=self.name,
            kill_in_s=round(kill_in, 1),
        )
        self.pool.emit(EventKind.STILL_STOPPING, self, reason=error.error)
        return error

    def _stop_done(self, task: asyncio.Task[None]) -> None:
        self.task = None
        self._kill_at = math.inf
        self._keep_serving = False
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("stopping %s failed: %s", self.name, exc)

    async def _stop(self, reason: str) -> None:
        await self.host.start_settled()
        cid = self.host.container_id
        if cid is None:
            if self.host.state is State.STOPPING:
                self.host.state = State.STOPPED
            return
        docker = self.pool.runtime.docker
        self.host.state = State.STOPPING
        self.pool.emit(EventKind.STOPPING, self, reason=reason)
        self._termed = self._loop.time()
        try:
            if self.host.paused:  # a frozen container would not see the SIGTERM
                with contextlib.suppress(DockerError):
                    await docker.pause(cid, False)
                self.host.paused = False
            if not self.exited.is_set():
                self._killing = self._first_signal == "SIGKILL"
                await docker.signal(cid, self._first_signal)
                while not self.exited.is_set() and self._loop.time() < self._kill_at:
                    self._say_if_ignored()
                    await self.wait_exited(min(self._kill_at - self._loop.time(), 1.0))
            if not self.exited.is_set() and self._first_signal == "SIGKILL":
                await self.wait_exited(EXIT_WAIT)  # killed already (the Worker's destroy())
            if not self.exited.is_set():
                waited = self._loop.time() - self._termed
                self.pool.emit(
                    EventKind.KILLING, self, reason=f"no exit {waited:.0f} s after SIGTERM"
                )
                self._killing = True
                await docker.signal(cid, "SIGKILL")
                await self.wait_exited(EXIT_WAIT)
            self._removing = True
            await self.remove(cid)
        finally:
            self.host.forget_container()
            self.host.state = State.STOPPED
            self.pool.emit(
                EventKind.STOPPED, self, reason=self._cause() or reason, exit_code=self.exit_code
            )

    def _say_if_ignored(self) -> None:
        """Once per SIGTERM, when the container has not exited a while after it: why it still
        runs, and what to do."""
        if self._said_ignored or self._termed is None:
            return
        now = self._loop.time()
        if now - self._termed < IGNORED_AFTER or self._kill_at - now < 1.0:
            return
        self._said_ignored = True
        served = ", is still served" if self.serving_while_stopping else ""
        self.pool.emit(
            EventKind.SIGTERM_IGNORED,
            self,
            reason=f"no exit {now - self._termed:.0f} s after SIGTERM: the container ignores "
            f"SIGTERM{served} and holds its max_instances slot until SIGKILL in "
            f"{self._kill_at - now:.0f} s (--stop-grace); {REMEDY}",
        )

    # -- events from the engine ---------------------------------------------------------------

    def on_docker_event(self, event: Event) -> None:
        if event.action == "oom":
            self.oom_killed = True
        elif event.action == "die":
            self.record_exit(event.exit_code, False)
        elif event.action == "kill" and self._signalled is not None:
            self._reason, self._signalled = self._signalled, None
        elif event.action == "kill" and self._killed_outside(event.labels.get("signal", "")):
            self._outside = "killed outside emu"
        elif event.action == "destroy" and not self._removing:
            self._outside = "removed outside emu"
            self._destroyed.set()

    def signalled_by_emu(self, why: str) -> None:
        """The control API is about to signal the container: its exit is not "outside emu"."""
        self._signalled = why

    def _cause(self) -> str | None:
        """Why the container ended, when not by emu's own stop: from outside, or through the
        control API."""
        return self._outside or self._reason

    def _killed_outside(self, sig: str) -> bool:
        """emu signals a container only while stopping it: SIGTERM, then SIGKILL."""
        if self.host.state is State.HEALTHY:
            return True
        return (
            self.host.state is State.STOPPING and not self._killing and sig not in ("15", "SIGTERM")
        )

    def record_exit(self, code: int | None, oom_killed: bool) -> None:
        """The container is gone. During a start or a stop, that task handles it; a healthy
        instance is reaped here and the next request starts a fresh one."""
        self.exit_code = code
        self.oom_killed = self.oom_killed or oom_killed
        self.exited.set()
        if self.host.state is State.HEALTHY:
            self.host.state = State.STOPPED_WITH_CODE if code is not None else State.STOPPED
            self.host.last_error = self._exit_text()
            self.task = asyncio.create_task(self._reap(), name=f"reap {self.name}")
            self.task.add_done_callback(self._stop_done)

    def _exit_text(self) -> str:
        code = "an unknown code" if self.exit_code is None else f"code {self.exit_code}"
        text = f"exited with {code}" + (" (killed: out of memory)" if self.oom_killed else "")
        cause = self._cause()
        return f"{text} ({cause})" if cause else text

    async def _reap(self) -> None:
        # The container stays registered until removed, so that a late "oom" event still
        # finds this instance.
        cid = self.host.container_id
        docker = self.pool.runtime.docker
        try:
            if self._outside is not None:  # a `docker rm -f` removes it just after the kill
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._destroyed.wait(), DESTROY_WAIT)
            if cid is not None and not self.oom_killed and not self._destroyed.is_set():
                # "oom" normally comes before "die"; the engine's own record settles it.
                with contextlib.suppress(DockerError):
                    info = await docker.inspect(cid)
                    self.oom_killed = info is not None and info.oom_killed
            self.host.last_error = self._exit_text()
            cause = self._cause()
            fields: EventFields = {"reason": cause} if cause else {}
            fields["exit_code"] = self.exit_code
            fields["oom_killed"] = self.oom_killed
            self.pool.emit(EventKind.EXITED, self, **fields)
            if cid is not None:
                self._removing = True
                await self.remove(cid)
        finally:
            self.host.forget_container()

    async def wait_reaped(self, timeout: float) -> None:
        """After an exit: wait (bounded) until the exit is fully known and the container gone."""
        task = self.task
        if task is not None:
            await asyncio.wait({task}, timeout=timeout)

    async def wait_exit(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), timeout)

    async def check_exited(self) -> None:
        """Ask the engine whether the container still runs; record its exit if not.
        Raises DockerError when the engine does not answer."""
        cid = self.host.container_id
        if cid is None:
            return
        info = await self.pool.runtime.docker.inspect(cid)
        if cid == self.host.container_id and (info is None or not info.alive):
            self.record_exit(info.exit_code if info else None, info.oom_killed if info else False)

    async def wait_exited(self, timeout: float) -> None:
        """Wait up to `timeout` for the exit: told by the "die" event, or found by asking the
        engine now and then, since events can be missed."""
        deadline = self._loop.time() + timeout
        while not self.exited.is_set():
            left = deadline - self._loop.time()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), min(left, STOP_CHECK_INTERVAL))
            if not self.exited.is_set():
                with contextlib.suppress(DockerError):
                    await self.check_exited()

    async def remove(self, cid: str) -> None:
        """Remove the container, keeping its last lines first (not when emu is shutting down:
        nobody is left to ask for them)."""
        docker = self.pool.runtime.docker
        if not self.pool.runtime.state.closing:
            with contextlib.suppress(DockerError):
                self.kept_logs = await docker.logs(cid, tail=KEPT_LOG_LINES)
        await docker.remove_container(cid)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("signal failed: %s", exc)
