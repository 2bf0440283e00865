"""The instance state machine (instances/instance.py and stopping.py) on a fake engine: starts,
readiness, the idle timer, stops, SIGTERM ignored, exits from outside emu, failed starts.

The fake stands in for DockerBackend's few calls an instance makes and sends the engine's events
("kill", "die", "oom", "destroy") as the real event stream would. Readiness probes are real HTTP
to a loopback server (or to a bound port that does not listen). Durations are a fraction of a
second, and every wait is for an event or a state, with a deadline: no fixed sleeps. The same
behaviours on the real engine: tests/integration/lifecycle/ (test_seed.py, test_stops.py,
test_up_down.py) and tests/integration/faults/test_container_faults.py.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from emulator.config import ClassConfig, InstanceType
from emulator.engine.docker_backend import DockerBackend
from emulator.engine.docker_types import (
    ContainerInfo,
    ContainerSpec,
    DockerError,
    DockerUnavailable,
    Event,
    Unschedulable,
)
from emulator.instances.errors import (
    EXITED_BEFORE_HEALTHY,
    EmuHTTPError,
    EngineUnavailable,
    NoCapacity,
    StartFailed,
)
from emulator.instances.events import EventFields, EventKind
from emulator.instances.instance import Instance, State
from emulator.instances.pool import ClassPool
from emulator.instances.runtime import Runtime, SessionState
from emulator.instances.stopping import IDLE
from emulator.runs import labels

WAIT = 3.0  # the deadline of every wait; each is met in a fraction of a second
SIGNAL_NUMBERS = {"SIGTERM": "15", "SIGKILL": "9", "SIGINT": "2"}


@dataclass
class FakeContainer:
    id: str
    honours: frozenset[str]  # the signals it exits on
    status: str = "running"
    exit_code: int | None = None
    oom_killed: bool = False


@dataclass
class FakeEngine:
    """DockerBackend's calls that an instance makes, with the engine's events. The `fail`,
    `honours`, `probe_port` and `gate` knobs apply to the next containers."""

    probe_port: int
    deliver: Callable[[Event], None] = lambda event: None
    honours: frozenset[str] = frozenset({"SIGTERM", "SIGKILL"})
    fail: DockerError | None = None  # the next run_container raises it
    gate: asyncio.Event | None = None  # run_container waits for it
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)  # container names, one per run_container
    removed: list[str] = field(default_factory=list)
    signals: list[tuple[str, float]] = field(default_factory=list)  # (signal, loop time)
    run_called: asyncio.Event = field(default_factory=asyncio.Event)

    async def run_container(self, spec: ContainerSpec) -> ContainerInfo:
        self.runs.append(spec.name)
        self.run_called.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        cid = f"c{len(self.runs)}"
        self.containers[cid] = FakeContainer(cid, self.honours)
        return ContainerInfo(
            id=cid,
            name=spec.name,
            status="running",
            labels=spec.labels,
            ip="127.0.0.1",
            host_ports={80: self.probe_port},
        )

    async def inspect(self, container_id: str, network: str | None = None) -> ContainerInfo | None:
        c = self.containers.get(container_id)
        if c is None:
            return None
        return ContainerInfo(c.id, c.id, c.status, {}, c.exit_code, c.oom_killed)

    async def signal(self, container_id: str, sig: str) -> None:
        self.signals.append((sig, asyncio.get_running_loop().time()))
        c = self.containers[container_id]
        self._event("kill", container_id, signal=SIGNAL_NUMBERS[sig])
        if sig in c.honours:
            self.exit(container_id, 0 if sig == "SIGTERM" else 137)

    async def remove_container(self, container_id: str) -> None:
        self.removed.append(container_id)
        c = self.containers.pop(container_id, None)
        if c is not None and c.status == "running":
            self._event("kill", container_id, signal="9")
            self._event("die", container_id, exit_code=137)
        if c is not None:
            self._event("destroy", container_id)

    async def logs_tail(self, container_id: str, lines: int = 20) -> list[str]:
        return ["its last line"]

    async def logs(self, container_id: str, tail: int | None = None) -> list[tuple[float, str]]:
        return [(0.0, "its last line")]

    async def pause(self, container_id: str, paused: bool) -> None:
        self.containers[container_id].status = "paused" if paused else "running"

    # -- what happens to a container outside emu -------------------------------------------

    def exit(self, cid: str, code: int, *, oom: bool = False, tell: bool = True) -> None:
        """It ends (on its own, or by a signal); `tell=False`: its events are lost."""
        c = self.containers[cid]
        c.status, c.exit_code, c.oom_killed = "exited", code, oom
        if tell and oom:
            self._event("oom", cid)
        if tell:
            self._event("die", cid, exit_code=code)

    def kill_outside(self, cid: str) -> None:  # `docker kill`
        self._event("kill", cid, signal="9")
        self.exit(cid, 137)

    def remove_outside(self, cid: str) -> None:  # `docker rm -f`
        self.kill_outside(cid)
        del self.containers[cid]
        self._event("destroy", cid)

    def _event(self, action: str, cid: str, exit_code: int | None = None, **labels: str) -> None:
        # As from the event stream: after the call that caused it returned.
        event = Event(action, cid, labels, exit_code)
        asyncio.get_running_loop().call_soon(self.deliver, event)


class Events:
    """The events the pool emits, each with the instance's state when it was emitted."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.pool: ClassPool | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def record(self, kind: EventKind, data: EventFields) -> None:
        assert self.pool is not None
        inst = self.pool.instances.get(data.get("instance", ""))
        self.seen.append((kind, {**data, "state": None if inst is None else inst.state}))
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [data for k, data in self.seen if k == kind]

    async def wait_for(self, kind: str, count: int = 1) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while len(self.of(kind)) < count:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        return self.of(kind)[count - 1]


@dataclass
class World:
    engine: FakeEngine
    pool: ClassPool
    events: Events
    closed_port: int  # bound, not listening: a probe there is refused

    def inst(self, name: str = "instance-0") -> Instance:
        return self.pool.get(name)

    async def healthy(self, name: str = "instance-0") -> Instance:
        inst = self.inst(name)
        await inst.ensure_started()
        assert state(inst) is State.HEALTHY
        return inst

    async def stopped(self, inst: Instance) -> None:
        """Until its stop (or reap) has ended."""
        task = inst.stops.task
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), WAIT)
        assert inst.stops.task is None


Make = Callable[..., Awaitable[World]]


def _config(**changes: Any) -> ClassConfig:
    values: dict[str, Any] = {
        "class_name": "C",
        "binding": "C",
        "name": "c",
        "image": "x",
        "dockerfile": None,
        "build_context": None,
        "image_vars": {},
        "max_instances": 2,
        "instance_type": InstanceType("lite", 0.0625, 256, 2000),
        "default_port": 80,
        "required_ports": (),
        "sleep_after": 60.0,
        "env_vars": {},
        "entrypoint": None,
        "enable_internet": True,
        "ping_endpoint": "ping",
        "instances": 3,
        **changes,
    }
    return ClassConfig(**values)


@pytest.fixture
async def probe_port() -> AsyncIterator[int]:
    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield cast(tuple[str, int], runner.addresses[0])[1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def make(probe_port: int) -> AsyncIterator[Make]:
    session = aiohttp.ClientSession()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    worlds: list[World] = []

    async def make(*, start_timeout: float = 2.0, stop_grace: float = 0.3, **config: Any) -> World:
        events = Events()
        engine = FakeEngine(probe_port)
        runtime = Runtime(
            docker=cast(DockerBackend, engine),
            session=session,
            network="emu-test",
            internal_network="emu-test-internal",
            labels={labels.MANAGED: "true"},
            name_prefix="emu-test",
            start_timeout=start_timeout,
            stop_grace=stop_grace,
            disk_enforced=False,
            on_event=events.record,
            state=SessionState(),
        )
        pool = ClassPool(_config(**config), runtime, random.Random(0))
        pool.image.use("img:1")
        events.pool = pool
        engine.deliver = pool.on_docker_event
        world = World(engine, pool, events, closed.getsockname()[1])
        worlds.append(world)
        return world

    try:
        yield make
    finally:
        for world in worlds:  # nothing left running or half-done
            tasks = world.pool.stop_all(0.0)
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
        await session.close()
        closed.close()


def state(inst: Instance) -> State:
    """Its state now (a call, so that mypy does not narrow it across awaits)."""
    return inst.state


def _kinds_and_states(events: Events) -> list[tuple[str, Any]]:
    return [(kind, data["state"]) for kind, data in events.seen]


async def test_a_start_goes_through_starting_running_healthy_and_a_stop_back_to_stopped(
    make: Make,
) -> None:
    w = await make()
    inst = await w.healthy()
    assert inst.container_id == "c1" and inst.ip == "127.0.0.1"
    assert inst.probed_ports == (80,) and inst.probes >= 1
    assert inst.cold_start_ms is not None and inst.starts == 1
    assert w.pool.by_container == {"c1": inst} and w.pool.slots_used() == 1

    await inst.stop("emu is shutting down")
    assert _kinds_and_states(w.events) == [
        ("starting", State.STARTING),
        ("running", State.RUNNING),
        ("healthy", State.HEALTHY),
        ("stopping", State.STOPPING),
        ("stopped", State.STOPPED),
    ]
    assert w.events.of("stopped")[0]["exit_code"] == 0
    assert [sig for sig, _ in w.engine.signals] == ["SIGTERM"]
    assert w.engine.removed == ["c1"] and inst.kept_logs == [(0.0, "its last line")]
    assert inst.container_id is None and inst.ip is None and w.pool.by_container == {}
    assert w.pool.slots_used() == 0 and inst.forgettable()


async def test_concurrent_requests_share_one_start(make: Make) -> None:
    w = await make()
    w.engine.gate = asyncio.Event()
    inst = w.inst()
    waiters = [asyncio.create_task(inst.ensure_started()) for _ in range(5)]
    await asyncio.wait_for(w.engine.run_called.wait(), WAIT)
    assert state(inst) is State.STARTING and inst.starting
    w.engine.gate.set()
    await asyncio.wait_for(asyncio.gather(*waiters), WAIT)
    assert len(w.engine.runs) == 1 and inst.starts == 1
    assert state(inst) is State.HEALTHY and not inst.starting
    assert w.events.kinds().count("starting") == 1


async def test_sleep_after_stops_an_idle_instance_once_its_last_request_ended(make: Make) -> None:
    w = await make(sleep_after=0.05)
    inst = await w.healthy()
    inst.begin()
    assert inst.snapshot()["sleeps_in_s"] is None  # a request in flight: no countdown
    inst.end()
    stopping = await w.events.wait_for("stopping")
    assert stopping["reason"] == IDLE
    await w.events.wait_for("stopped")
    assert state(inst) is State.STOPPED and w.engine.removed == ["c1"]
    assert [sig for sig, _ in w.engine.signals] == ["SIGTERM"]


async def test_a_request_during_an_idle_stop_goes_to_the_container_until_it_exits(
    make: Make,
) -> None:
    w = await make(sleep_after=0.05, stop_grace=0.5)
    w.engine.honours = frozenset({"SIGKILL"})  # a plain `python app.py` as PID 1
    inst = await w.healthy()
    inst.renew()
    await w.events.wait_for("stopping")
    assert state(inst) is State.STOPPING and inst.serving_while_stopping
    await inst.ensure_started()  # served by the container being stopped: no new start
    assert len(w.engine.runs) == 1 and inst.ip == "127.0.0.1"
    assert w.pool.slots_used() == 1  # it holds its slot until it exits
    snapshot = inst.snapshot()
    kill_in = snapshot["kill_in_s"]
    assert snapshot["state"] == "stopping" and kill_in is not None and 0 < kill_in <= 0.5


async def test_sigterm_ignored_is_sent_again_after_the_next_idle_period_then_sigkill(
    make: Make,
) -> None:
    grace = 0.4
    w = await make(sleep_after=0.1, stop_grace=grace)
    w.engine.honours = frozenset({"SIGKILL"})
    inst = await w.healthy()
    inst.begin()
    inst.end()  # the idle period begins
    await w.events.wait_for("stopping")
    inst.begin()
    inst.end()  # served while stopping: its next idle period
    again = await w.events.wait_for("stopping", 2)
    assert again["reason"] == IDLE + " again"
    killing = await w.events.wait_for("killing")
    assert killing["reason"].startswith("no exit")
    await w.stopped(inst)
    (_, first), (_, second), (_, kill) = w.engine.signals
    assert [sig for sig, _ in w.engine.signals] == ["SIGTERM", "SIGTERM", "SIGKILL"]
    assert second - first >= 0.1 * 0.95  # sleepAfter after the request served meanwhile
    assert kill - second >= grace * 0.95  # --stop-grace after the last SIGTERM, not the first
    stopped = w.events.of("stopped")[0]
    assert state(inst) is State.STOPPED and stopped["exit_code"] == 137


async def test_a_request_during_a_shutdown_stop_waits_for_it_then_starts_afresh(
    make: Make,
) -> None:
    w = await make(stop_grace=0.2)
    w.engine.honours = frozenset({"SIGKILL"})
    inst = await w.healthy()
    w.engine.honours = frozenset({"SIGTERM", "SIGKILL"})  # the next container exits on SIGTERM
    stop = inst.stop("replaced")  # not an idle stop: no request goes into that container
    assert state(inst) is State.STOPPING and not inst.serving_while_stopping
    await inst.ensure_started()
    assert stop.done() and [sig for sig, _ in w.engine.signals] == ["SIGTERM", "SIGKILL"]
    assert state(inst) is State.HEALTHY and inst.container_id == "c2" and inst.starts == 2


async def test_a_request_that_waited_a_start_s_worth_for_a_stop_gets_503_still_stopping(
    make: Make,
) -> None:
    w = await make(start_timeout=0.25, stop_grace=5.0)
    w.engine.honours = frozenset({"SIGKILL"})
    inst = await w.healthy()
    inst.stop("replaced")
    with pytest.raises(EmuHTTPError) as caught:
        await inst.ensure_started()
    assert caught.value.status == 503 and "ignored SIGTERM" in caught.value.error
    assert 4 < caught.value.details["kill_in_s"] <= 5.0
    assert w.events.of("still_stopping")
    inst.stop("emu is shutting down", 0.0)  # a shorter grace brings SIGKILL forward
    await w.stopped(inst)
    assert state(inst) is State.STOPPED
    assert [sig for sig, _ in w.engine.signals] == ["SIGTERM", "SIGKILL"]


async def test_a_stop_during_the_start_lets_it_finish_then_stops_it(make: Make) -> None:
    w = await make()
    w.engine.gate = asyncio.Event()
    inst = w.inst()
    start = asyncio.create_task(inst.ensure_started())
    await asyncio.wait_for(w.engine.run_called.wait(), WAIT)
    w.pool.runtime.state.closing = True  # emu is shutting down
    stop = inst.stop("emu is shutting down")
    w.engine.gate.set()
    await asyncio.wait_for(stop, WAIT)
    assert "healthy" not in w.events.kinds()
    assert state(inst) is State.STOPPED and w.engine.removed == ["c1"]
    with pytest.raises(EmuHTTPError) as caught:  # the request that wanted it: no second start
        await asyncio.wait_for(start, WAIT)
    assert caught.value.status == 503 and len(w.engine.runs) == 1


@pytest.mark.parametrize(
    ("outside", "cause"),
    [("kill_outside", "killed outside emu"), ("remove_outside", "removed outside emu")],
)
async def test_an_exit_caused_outside_emu_is_reaped_and_the_next_request_starts_afresh(
    make: Make, outside: str, cause: str
) -> None:
    w = await make()
    inst = await w.healthy()
    getattr(w.engine, outside)("c1")
    exited = await w.events.wait_for("exited")
    assert exited["reason"] == cause and exited["exit_code"] == 137
    assert state(inst) is State.STOPPED_WITH_CODE and inst.exit_code == 137
    await inst.wait_reaped(WAIT)
    assert inst.last_error == f"exited with code 137 ({cause})"
    assert inst.container_id is None and w.pool.slots_used() == 0
    assert w.engine.signals == []  # emu sent nothing
    await inst.ensure_started()
    assert inst.container_id == "c2" and state(inst) is State.HEALTHY


async def test_an_oom_kill_is_reported_as_such(make: Make) -> None:
    w = await make()
    inst = await w.healthy()
    w.engine.exit("c1", 137, oom=True)
    await inst.wait_exit(WAIT)
    assert inst.exit_code == 137 and inst.oom_killed
    await inst.wait_reaped(WAIT)
    exited = w.events.of("exited")[0]
    assert exited["oom_killed"] is True and "reason" not in exited
    assert inst.last_error == "exited with code 137 (killed: out of memory)"


async def test_an_exit_whose_events_were_lost_is_found_by_verify(make: Make) -> None:
    w = await make()
    inst = await w.healthy()
    w.engine.exit("c1", 3, tell=False)  # e.g. while the event stream was down
    await inst.verify()
    assert state(inst) is State.STOPPED_WITH_CODE and inst.exit_code == 3
    await inst.wait_reaped(WAIT)
    assert w.engine.removed == ["c1"] and inst.last_error == "exited with code 3"


async def test_a_container_that_exits_during_its_start_fails_it_with_its_code(
    make: Make,
) -> None:
    w = await make(start_timeout=2.0)
    inst = w.inst()
    w.engine.probe_port = w.closed_port  # never ready, so the exit comes first

    async def exit_once_running() -> None:
        await w.events.wait_for("running")
        w.engine.exit("c1", 2)

    exiting = asyncio.create_task(exit_once_running())
    with pytest.raises(StartFailed) as caught:
        await inst.ensure_started()
    await exiting
    assert caught.value.error.endswith(EXITED_BEFORE_HEALTHY + "2")
    assert caught.value.details["exit_code"] == 2
    assert caught.value.details["logs"] == ["its last line"]
    assert state(inst) is State.STOPPED_WITH_CODE and inst.exit_code == 2
    failed = w.events.of("start_failed")[0]
    assert failed["exit_code"] == 2 and failed["state"] is State.RUNNING
    assert w.engine.removed == ["c1"] and w.pool.slots_used() == 0


async def test_a_port_that_never_answers_fails_the_start_after_start_timeout(
    make: Make,
) -> None:
    w = await make(start_timeout=0.3)
    w.engine.probe_port = w.closed_port
    inst = w.inst()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(StartFailed) as caught:
        await inst.ensure_started()
    assert 0.3 <= loop.time() - began < 2.0
    assert "port 80 did not answer HTTP on / within 0.3 s" in caught.value.error
    assert state(inst) is State.STOPPED and inst.exit_code is None
    assert inst.last_error == caught.value.error and inst.probes > 1
    assert w.engine.removed == ["c1"] and w.pool.by_container == {}


@pytest.mark.parametrize(
    ("error", "raised", "status"),
    [
        (DockerError("no such image"), StartFailed, 500),
        (DockerUnavailable("the engine is away"), EngineUnavailable, 503),
        (Unschedulable("no node has room"), NoCapacity, 503),
    ],
)
async def test_a_failed_create_reaches_every_waiter_and_leaves_it_stopped(
    make: Make, error: DockerError, raised: type[EmuHTTPError], status: int
) -> None:
    w = await make()
    w.engine.fail = error
    inst = w.inst()
    results = await asyncio.gather(
        *(inst.ensure_started() for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, raised) and r.status == status for r in results)
    assert len(w.engine.runs) == 1 and state(inst) is State.STOPPED
    assert inst.last_error == results[0].error  # type: ignore[union-attr]
    assert w.events.kinds() == ["starting", "start_failed"]
    w.engine.fail = None
    await inst.ensure_started()  # the next request tries again
    assert state(inst) is State.HEALTHY


async def test_max_instances_refuses_a_start_beyond_it(make: Make) -> None:
    w = await make(max_instances=1)
    await w.healthy("a")
    with pytest.raises(NoCapacity) as caught:
        await w.inst("b").ensure_started()
    assert caught.value.details["running"] == 1 and caught.value.details["max_instances"] == 1
    assert w.events.of("no_capacity")[0]["running"] == ["a"]
    assert state(w.inst("b")) is State.STOPPED and len(w.engine.runs) == 1


async def test_no_start_while_the_engine_is_away_or_emu_is_closing(make: Make) -> None:
    w = await make()
    w.pool.runtime.state.engine_up = False
    with pytest.raises(EngineUnavailable):
        await w.inst().ensure_started()
    w.pool.runtime.state.engine_up, w.pool.runtime.state.closing = True, True
    with pytest.raises(EmuHTTPError) as caught:
        await w.inst().ensure_started()
    assert caught.value.status == 503 and w.engine.runs == []


def test_the_fake_engine_has_the_calls_it_stands_in_for() -> None:
    """A renamed or re-shaped DockerBackend call fails here, not silently in the fake."""
    import inspect

    calls = ("run_container", "inspect", "signal", "remove_container", "logs_tail", "logs", "pause")
    for name in calls:
        real = inspect.signature(getattr(DockerBackend, name)).parameters
        fake = inspect.signature(getattr(FakeEngine, name)).parameters
        assert list(real) == list(fake), name
