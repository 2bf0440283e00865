"""Instances: one container per (class, instance name), started on demand, stopped when idle.

All state lives on the event loop; no locks are needed because nothing between two `await`s can
interleave. A start is one task that every waiting request shares, so one name never gets two
containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

import aiohttp

from ..engine.docker_types import (
    ContainerInfo,
    ContainerSpec,
    DockerError,
    DockerUnavailable,
    Event,
    NameInUse,
    NetworkMissing,
    Unschedulable,
)
from .errors import EXITED_BEFORE_HEALTHY, EmuHTTPError, EngineUnavailable, NoCapacity, StartFailed
from .events import EventKind
from .runtime import Pool
from .spec import StartOptions, container_spec
from .state import HOLDS_SLOT, State
from .status import InstanceStatus
from .stopping import IDLE, KEPT_LOG_LINES, StopControl

__all__ = ["HOLDS_SLOT", "INSTANCE_NAME", "KEPT_LOG_LINES", "Instance", "State", "ping_target"]


log = logging.getLogger("emu")

PROBE_INTERVAL = 0.02  # the platform polls every 300 ms; we can afford to be faster locally
PROBE_TIMEOUT = 1.0  # per probe; a direct connection to the container never hangs on a proxy
# While a start waits for its ports: how often to ask the engine whether the container still runs,
# in case its "die" event was missed (it can race the container's registration, or the event
# stream can be down).
START_CHECK_INTERVAL = 0.5

INSTANCE_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")


def ping_target(ping_endpoint: str) -> tuple[str, str]:
    """(Host header, path) of the readiness probe. The library fetches `http://${pingEndpoint}`,
    so the first segment is the host: "ping" probes "/", "container/health" probes "/health"."""
    host, _, rest = ping_endpoint.partition("/")
    return host, "/" + rest


class Instance:
    """One instance: its start, readiness and idle timer here; its stop, and the reaping of a
    container that ended, in `stops` (stopping.py)."""

    def __init__(self, pool: Pool, name: str, container_suffix: str = "") -> None:
        self.pool = pool
        self.name = name
        # A replacement's container runs beside the one it replaces: another container name.
        self.container_suffix = container_suffix
        self.state = State.STOPPED
        self.container_id: str | None = None
        self.ip: str | None = None
        self.host_ports: dict[int, int] = {}  # published ports, when not reached on a bridge
        self.node: str | None = None  # the Swarm node
        self.inflight = 0
        self._active_at: float | None = None  # loop time of the last activity
        self.deadline = 0.0  # loop time when it may sleep
        self.last_error: str | None = None
        self.cold_start_ms: float | None = None  # the container's own start
        # The last cold start as the first request that needed it waited it (see waited()).
        self.client_cold_start_ms: float | None = None
        self.first_need: float | None = None  # perf_counter: a request waits for a start
        self.starts = 0
        self.requests = 0
        self.probes = 0  # readiness probes (emu's, or the library's in worker mode)
        self.options = StartOptions()  # set by the Worker's start() in worker mode
        self.paused = False  # frozen by the control API (`docker pause`), an emu extra
        self.probed_ports: tuple[int, ...] = ()  # those the last start waited for
        self._start_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self.stops = StopControl(self, pool)

    # -- what is known of its container's end (stopping.py keeps it) -------------------------

    @property
    def exit_code(self) -> int | None:
        return self.stops.exit_code

    @property
    def oom_killed(self) -> bool:
        return self.stops.oom_killed

    @property
    def kept_logs(self) -> list[tuple[float, str]]:
        return self.stops.kept_logs

    @property
    def serving_while_stopping(self) -> bool:
        return self.stops.serving_while_stopping

    def stop(
        self,
        reason: str,
        grace: float | None = None,
        *,
        keep_serving: bool = False,
        signal: str = "SIGTERM",
    ) -> asyncio.Task[None]:
        """See `StopControl.stop`."""
        return self.stops.stop(reason, grace, keep_serving=keep_serving, signal=signal)

    def on_docker_event(self, event: Event) -> None:
        self.stops.on_docker_event(event)

    def signalled_by_emu(self, why: str) -> None:
        self.stops.signalled_by_emu(why)

    async def wait_exit(self, timeout: float) -> None:
        await self.stops.wait_exit(timeout)

    async def wait_reaped(self, timeout: float) -> None:
        await self.stops.wait_reaped(timeout)

    # -- activity ---------------------------------------------------------------------------

    @property
    def last_activity(self) -> float | None:
        """Wall-clock time of the last activity, for display (kept as loop time: the hot path
        reads one clock, not two)."""
        if self._active_at is None:
            return None
        return time.time() - (self._loop.time() - self._active_at)

    @last_activity.setter
    def last_activity(self, when: float) -> None:
        self._active_at = self._loop.time() - (time.time() - when)

    def renew(self) -> None:
        self._active_at = now = self._loop.time()
        self.deadline = now + self.pool.config.sleep_after
        # In worker mode sleepAfter is the library's alarm, not emu's timer.
        if (
            self._timer is None
            and (self.state is State.HEALTHY or self.serving_while_stopping)
            and not self.pool.runtime.worker_mode
        ):
            self._timer = self._loop.call_at(self.deadline, self._on_timer)

    def _on_timer(self) -> None:
        # The deadline moves on every request; the timer only checks it, so the hot path never
        # has to cancel and reschedule a timer.
        self._timer = None
        idle_stop = self.serving_while_stopping
        if (self.state is not State.HEALTHY and not idle_stop) or self.inflight > 0:
            return  # the request that ends will renew
        if self._loop.time() < self.deadline:
            self._timer = self._loop.call_at(self.deadline, self._on_timer)
            return
        if idle_stop:
            self.stops.signal_again()  # it outlived the last SIGTERM and served since
        else:
            self.stop(IDLE, keep_serving=True)

    def begin(self) -> None:
        # No renew(): the idle timer leaves an instance with requests in flight alone, and
        # end() renews.
        self.inflight += 1
        self.requests += 1

    def end(self) -> None:
        self.inflight -= 1
        self.renew()

    def waited(self, ms: float) -> None:
        """The first request after a start got its answer `ms` after it came in."""
        self.client_cold_start_ms = ms
        cls = self.pool.config.class_name
        self.pool.runtime.cold_starts.client.labels(cls).observe(ms / 1000)

    # -- start ----------------------------------------------------------------------------

    async def ensure_started(self, port: int | None = None) -> None:
        """Return once healthy; concurrent callers share one start. `port` is the one the
        request goes to: the start waits for it when the class has neither defaultPort nor
        requiredPorts, as the platform waits for the port it was asked for."""
        while self.state is not State.HEALTHY:
            if self.serving_while_stopping:
                return  # as on the platform: it serves until it exits
            if self.stops.task is not None:
                # Wait for the stop (its own failure is logged, not ours), but not past a start's
                # worth of time: a container may take its whole --stop-grace to go.
                done, _ = await asyncio.wait(
                    {self.stops.task}, timeout=self.pool.runtime.start_timeout
                )
                if not done:
                    raise self.stops.still_stopping()
                continue
            if self._start_task is None:
                if self.pool.runtime.state.closing:
                    raise EmuHTTPError(503, "emu is shutting down")
                if not self.pool.image.settled:
                    # Held until the build (or pull) ends; a failed one answers at once below.
                    await self.pool.image.wait()
                    continue
                if not self.pool.runtime.state.engine_up:
                    raise EngineUnavailable("the Docker engine is not answering")
                if self.pool.slots_used() >= self.pool.config.max_instances:
                    # The names holding the slots may be other clients' (x-emu-instance): they
                    # go to the event history and /_emu/status, not into this client's answer.
                    holding = [i.name for i in self.pool.holding_slots()]
                    self.pool.emit(EventKind.NO_CAPACITY, self, running=holding)
                    raise NoCapacity(
                        class_name=self.pool.config.class_name,
                        instance=self.name,
                        max_instances=self.pool.config.max_instances,
                        running=len(holding),
                    )
                self.state = State.STARTING
                self._start_task = asyncio.create_task(self._start(port), name=f"start {self.name}")
                self._start_task.add_done_callback(self._start_done)
            await asyncio.shield(self._start_task)

    def _start_done(self, task: asyncio.Task[None]) -> None:
        self._start_task = None
        if not task.cancelled():
            task.exception()  # retrieved; every waiter got it already

    async def _start(self, port: int | None) -> None:
        began = self._loop.time()
        self.starts += 1
        self.last_error = None
        self.stops.new_container()
        self.pool.emit(EventKind.STARTING, self)
        try:
            await self.pool.image.rebuilt()  # a start during a rebuild takes the new image
            spec = self._spec(self.pool.image.require())
            try:
                info = await self._create(spec)
            except DockerUnavailable as exc:
                raise EngineUnavailable(str(exc)) from exc
            except Unschedulable as exc:  # the cluster is full: as max_instances, a 503
                raise NoCapacity(reason=str(exc), instance=self.name) from exc
            except DockerError as exc:
                raise StartFailed(str(exc)) from exc
            self.container_id = info.id
            self.ip = info.ip
            self.host_ports = dict(info.host_ports)
            self.node = info.node
            self.pool.by_container[info.id] = self
            rt = self.pool.runtime
            if spec.network == rt.internal_network and rt.seal is not None:
                await rt.seal(info.id)  # enableInternet = false: no route off its subnet
            if not info.alive:  # exited before its "die" event could find it registered
                self.stops.record_exit(info.exit_code, info.oom_killed)
            self.state = State.RUNNING
            self.pool.emit(EventKind.RUNNING, self)
            self.probed_ports = self.ports() or ((port,) if port is not None else ())
            await self._wait_ready(began, self.probed_ports)
        except BaseException as exc:
            await self._start_failed(exc)
            raise
        self.cold_start_ms = (self._loop.time() - began) * 1000
        starts = self.pool.runtime.cold_starts.container
        starts.labels(self.pool.config.class_name).observe(self.cold_start_ms / 1000)
        if self.stops.task is not None:
            return  # a stop was asked for during the start (emu is shutting down)
        self.state = State.HEALTHY
        self.pool.emit(EventKind.HEALTHY, self)
        self.renew()

    async def _create(self, spec: ContainerSpec) -> ContainerInfo:
        rt = self.pool.runtime
        try:
            return await rt.docker.run_container(spec)
        except NameInUse:
            # Our own earlier container under this name, which could not be removed (the
            # engine was down): it is dead weight now.
            await rt.docker.remove_container(spec.name)
        except NetworkMissing:
            # emu's network was removed under it (`docker network prune`, an `emu down
            # --force` elsewhere): make it again, with its labels, and serve on.
            await rt.restore_networks()
        return await rt.docker.run_container(spec)

    def _spec(self, image: str) -> ContainerSpec:
        rt = self.pool.runtime
        internet = self.options.enable_internet
        network = self.pool.network
        if internet is not None:  # the Worker's start() decides (worker mode)
            network = rt.network if internet else rt.internal_network
        return container_spec(
            self.pool.config,
            self.name,
            image=image,
            network=network,
            session_labels=rt.labels,
            name_prefix=rt.name_prefix,
            disk_enforced=rt.disk_enforced,
            publish_address=rt.publish_address,
            capacity=rt.capacity,
            name_suffix=self.container_suffix,
            options=self.options,
        )

    @property
    def starting(self) -> bool:
        """A start is under way (the container may not exist yet)."""
        return self._start_task is not None

    async def start_settled(self) -> None:
        """Return once the start under way (if any) has ended, either way."""
        if self._start_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._start_task)

    def ports(self) -> tuple[int, ...]:
        cfg = self.pool.config
        if self.pool.runtime.worker_mode:
            return ()  # the library probes the ports itself; a start ends once the container runs
        if cfg.required_ports:
            return cfg.required_ports
        return (cfg.default_port,) if cfg.default_port is not None else ()

    async def _wait_ready(self, began: float, ports: tuple[int, ...]) -> None:
        rt = self.pool.runtime
        deadline = began + rt.start_timeout
        pending = set(ports)
        host, path = ping_target(self.pool.config.ping_endpoint)
        exited = asyncio.ensure_future(self.stops.exited.wait())
        next_check = self._loop.time() + START_CHECK_INTERVAL
        try:
            while pending:
                if not self.stops.exited.is_set() and self._loop.time() >= next_check:
                    next_check = self._loop.time() + START_CHECK_INTERVAL
                    # The engine away: the start timeout still bounds the wait.
                    with contextlib.suppress(DockerError):
                        await self.stops.check_exited()
                if self.stops.exited.is_set():
                    raise await self._exited_error()
                for port in sorted(pending):
                    # A probe never runs past the deadline.
                    left = max(deadline - self._loop.time(), 0.05)
                    if await self._probe(port, path, host, min(PROBE_TIMEOUT, left)):
                        pending.discard(port)
                if not pending:
                    break
                left = deadline - self._loop.time()
                if left <= 0:
                    logs = await rt.docker.logs_tail(self.container_id or "")
                    raise StartFailed(
                        f"port {', '.join(map(str, sorted(pending)))} did not answer HTTP on "
                        f"{path} within {rt.start_timeout:g} s (--start-timeout)",
                        logs=logs,
                    )
                await asyncio.wait({exited}, timeout=min(PROBE_INTERVAL, left))
        finally:
            exited.cancel()

    async def _probe(self, port: int, path: str, host: str, timeout: float) -> bool:
        self.probes += 1
        try:
            async with self.pool.runtime.session.get(
                f"http://{self.ip}:{self.host_ports.get(port, port)}{path}",
                headers={"Host": host},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ):
                return True  # any HTTP status counts, as on the platform; the body is not read
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _exited_error(self) -> StartFailed:
        logs = await self.pool.runtime.docker.logs_tail(self.container_id or "")
        code, oom_killed = self.stops.exit_code, self.stops.oom_killed
        reason = EXITED_BEFORE_HEALTHY + str(code)
        if oom_killed:
            reason += " (killed: out of memory)"
        return StartFailed(reason, exit_code=code, oom_killed=oom_killed, logs=logs)

    async def _start_failed(self, exc: BaseException) -> None:
        if isinstance(exc, EmuHTTPError):
            self.last_error = exc.error
        else:
            self.last_error = f"{type(exc).__name__}: {exc}"
        # The details a JSON client gets (exit code, OOM, log lines) stay in the event history.
        details = exc.details if isinstance(exc, EmuHTTPError) else {}
        details = {k: v for k, v in details.items() if k not in ("reason", "instance")}
        self.pool.emit(EventKind.START_FAILED, self, error=self.last_error, **details)
        # Its own exit code, if it exited; not the one of the kill that removes it.
        code = self.stops.exit_code if self.stops.exited.is_set() else None
        cid = self.container_id
        with contextlib.suppress(DockerError, asyncio.CancelledError):
            if cid is not None:
                await self.stops.remove(cid)
        self.forget_container()
        self.stops.exit_code = code
        self.state = State.STOPPED_WITH_CODE if code else State.STOPPED

    def forget_container(self) -> None:
        """Its container is gone."""
        self.paused = False
        if self.container_id is not None:
            self.pool.by_container.pop(self.container_id, None)
        self.container_id = None
        self.ip = None
        self.host_ports = {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def verify(self) -> None:
        """Ask the engine whether a healthy instance's container still runs; handle it like a
        "die" when not (for events that were missed, e.g. while the engine was away).
        Raises DockerError when the engine does not answer."""
        if self.state is State.HEALTHY:
            await self.stops.check_exited()

    def forgettable(self) -> bool:
        """Stopped, with nothing in flight and nothing under way: only history is lost."""
        return (
            self.state in (State.STOPPED, State.STOPPED_WITH_CODE)
            and self.inflight == 0
            and self._start_task is None
            and self.stops.task is None
            and self.container_id is None
        )

    def snapshot(self) -> InstanceStatus:
        return {
            "name": self.name,
            "state": str(self.state),
            "container_id": self.container_id,
            "ip": self.ip,
            "host_ports": {str(k): v for k, v in self.host_ports.items()} or None,
            "node": self.node,
            "inflight": self.inflight,
            "requests": self.requests,
            "starts": self.starts,
            "last_activity": self.last_activity,
            "sleeps_in_s": (
                max(0.0, round(self.deadline - self._loop.time(), 3))
                if (self.state is State.HEALTHY or self.serving_while_stopping)
                and self.inflight == 0
                and not self.pool.runtime.worker_mode
                else None
            ),
            "kill_in_s": None if (kill_in := self.stops.kill_in()) is None else round(kill_in, 1),
            "cold_start_ms": None if self.cold_start_ms is None else round(self.cold_start_ms, 1),
            "client_cold_start_ms": (
                None if self.client_cold_start_ms is None else round(self.client_cold_start_ms, 1)
            ),
            "probes": self.probes,
            "exit_code": self.exit_code,
            "oom_killed": self.oom_killed,
            "last_error": self.last_error,
            "paused": self.paused,
        }
