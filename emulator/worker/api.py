"""The container runtime API on emu's front: what the shim behind `ctx.container` calls.

`POST /_emu/runtime/{start,monitor,signal,destroy,report,egress,exec,inspect}` with a JSON body
naming the class and the Durable Object's name; `POST /_emu/runtime/requests` with the Worker's
request records. The ops and their fields are defined once, in js/protocol.json. The routes talk
to a `ContainerHost`; `PoolHost` is the one over emu's instance pools, so that naming, labels,
limits, max_instances, logs, status, events and cleanup are those of `emu up --no-worker`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import signal as signal_module
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from ..egress.gateway import EgressError
from ..egress.plan import Plan, PlanError, plan_from
from ..egress.resolver import Route
from ..egress.service import Egress
from ..engine.docker_types import DockerError
from ..front.requests_log import RequestLog
from ..instances.errors import EmuHTTPError, NoCapacity
from ..instances.instance import HOLDS_SLOT, Instance, State
from ..instances.pool import ClassPool
from ..instances.spec import StartOptions, durable_object_id
from .container_ops import ExecResult, inspect_container, run_exec
from .protocol import RUNTIME_OPS
from .records import Counts, counts, untied_record, worker_record

TOKEN_HEADER = "x-emu-runtime-token"
MONITOR_WAIT = 50.0  # a long poll answers "still running" after this; the shim asks again
# The library retries a start every 300 ms for 8 s when no instance can be had: one no_capacity
# event per name per this long is enough.
NO_CAPACITY_QUIET = 10.0
# Signal numbers as the Worker sends them, to the names Docker takes.
SIGNALS = {s.value: s.name for s in signal_module.Signals if not s.name.startswith("SIG_")}


class NoInstance(Exception):
    """No container can be had now (max_instances reached, or the image is not ready yet): the
    library retries, then answers its 503."""


class UnknownClass(Exception):
    pass


@dataclass(frozen=True)
class StartRequest:
    class_name: str
    name: str  # the Durable Object's name (idFromName), or its id
    durable_object_id: str | None
    env: Mapping[str, str] | None
    entrypoint: tuple[str, ...] | None
    enable_internet: bool | None
    labels: Mapping[str, str]
    egress: Plan = field(
        default_factory=Plan
    )  # what the Worker intercepts of the container's outbound traffic


@dataclass(frozen=True)
class Started:
    container: str
    ip: str  # where the container is reached: its bridge address, or the engine's host
    # Container port -> the host port it is published on, where the runtime cannot reach the
    # container's own address (a remote engine, Swarm on the host); empty on a local bridge.
    ports: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExitState:
    running: bool
    exit_code: int | None = None
    signalled: bool = False  # the runtime (signal, destroy) made it exit


class ContainerHost(Protocol):
    async def start(self, req: StartRequest) -> Started: ...

    async def wait_exit(
        self, class_name: str, name: str, container: str, timeout: float
    ) -> ExitState: ...

    async def signal(self, class_name: str, name: str, container: str, signo: int) -> None: ...

    async def destroy(self, class_name: str, name: str, container: str, reason: str) -> None: ...

    def report(self, class_name: str, name: str, counts: Counts) -> None: ...

    def record(self, records: list[Mapping[str, Any]]) -> None: ...

    def intercept(self, class_name: str, name: str, ip: str, plan: Plan) -> bool: ...

    async def exec(
        self, class_name: str, name: str, container: str, cmd: list[str]
    ) -> ExecResult: ...

    async def inspect(self, class_name: str, name: str, container: str) -> dict[str, Any]: ...


class PoolHost:
    """The runtime API over emu's ClassPools."""

    def __init__(
        self,
        pools: Mapping[str, ClassPool],
        feed: RequestLog | None = None,
        egress: Egress | None = None,
    ) -> None:
        self._pools = pools
        self._feed = feed
        self.egress = egress
        self._signalled: set[str] = set()  # container ids the runtime sent a stop signal
        self._refused: dict[tuple[str, str], float] = {}  # (class, name) -> last no_capacity

    def _instance(self, class_name: str, name: str) -> Instance:
        pool = self._pools.get(class_name)
        if pool is None:
            raise UnknownClass(f"{class_name} is not a class of containers[]")
        return pool.get(name)

    async def start(self, req: StartRequest) -> Started:
        inst = self._instance(req.class_name, req.name)
        pool = inst.pool
        if pool.image.ref is None and pool.image.error is None:
            raise NoInstance("the image is still being prepared")
        internet = (
            pool.config.enable_internet if req.enable_internet is None else req.enable_internet
        )
        gateway, dns, binds = await self._egress_for(inst, req, internet)
        if inst.state in (State.STOPPED, State.STOPPED_WITH_CODE):
            inst.options = StartOptions(
                env=req.env,
                entrypoint=req.entrypoint,
                enable_internet=req.enable_internet,
                labels=req.labels,
                durable_object_id=req.durable_object_id,
                dns=dns,
                binds=binds,
            )
        loop = asyncio.get_running_loop()
        key = (req.class_name, req.name)
        if inst.state not in HOLDS_SLOT and pool.slots_used() >= pool.config.max_instances:
            if loop.time() - self._refused.get(key, -NO_CAPACITY_QUIET) < NO_CAPACITY_QUIET:
                raise NoInstance("max_instances reached")  # said already, moments ago
            self._refused[key] = loop.time()
        else:
            self._refused.pop(key, None)
        # A running container is adopted: a Durable Object made again (the Worker reloaded)
        # finds the container its name already has.
        try:
            await inst.ensure_started()
        except NoCapacity as exc:
            raise NoInstance(exc.error) from exc
        if inst.container_id is None or inst.ip is None:
            raise EmuHTTPError(500, "the container stopped while it was starting")
        if gateway is not None and self.egress is not None and inst.options.dns:
            object_id = req.durable_object_id or durable_object_id(req.class_name, req.name)
            route = Route(req.class_name, req.name, object_id, req.egress, gateway, internet)
            self.egress.register(inst.ip, route, inst.container_id)
        return Started(container=inst.container_id, ip=inst.ip, ports=dict(inst.host_ports))

    async def _egress_for(
        self, inst: Instance, req: StartRequest, internet: bool
    ) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
        """The gateway's address, the DNS servers and the bind mounts of a container whose
        outbound traffic the Worker intercepts (none for one it does not)."""
        if req.egress.empty:
            return None, (), ()
        rt = inst.pool.runtime
        if self.egress is None or not rt.local_engine:
            raise EmuHTTPError(
                501,
                "ctx.container.interceptOutboundHttp: emu intercepts a container's outbound "
                "traffic on a local engine only (--engine local)",
            )
        network = rt.network if internet else rt.internal_network
        try:
            gateway, binds = await self.egress.prepare(network, req.egress.tls)
        except (EgressError, DockerError) as exc:
            raise EmuHTTPError(500, f"outbound interception: {exc}") from exc
        return gateway, (gateway,), binds

    def intercept(self, class_name: str, name: str, ip: str, plan: Plan) -> bool:
        """A running container's plan changed; False when it runs without interception."""
        self._instance(class_name, name)
        return self.egress is not None and self.egress.update(ip, plan)

    async def exec(self, class_name: str, name: str, container: str, cmd: list[str]) -> ExecResult:
        inst = self._instance(class_name, name)
        if inst.container_id != container:
            raise EmuHTTPError(409, "exec(): the container is not running")
        try:
            return await run_exec(inst.pool.runtime.docker, container, cmd)
        except DockerError as exc:
            raise EmuHTTPError(500, f"exec(): {exc}") from exc

    async def inspect(self, class_name: str, name: str, container: str) -> dict[str, Any]:
        inst = self._instance(class_name, name)
        if inst.container_id != container:
            raise EmuHTTPError(409, "inspect(): the container is not running")
        return await inspect_container(inst.pool.runtime.docker, container)

    async def wait_exit(
        self, class_name: str, name: str, container: str, timeout: float
    ) -> ExitState:
        inst = self._instance(class_name, name)
        if inst.container_id == container:
            await inst.wait_exit(timeout)
            if inst.container_id == container and inst.state in (State.RUNNING, State.HEALTHY):
                return ExitState(running=True)
        # Gone: its exit code is the instance's until the next start.
        if self.egress is not None:
            self.egress.forget(container)
        return ExitState(
            running=False, exit_code=inst.exit_code, signalled=container in self._signalled
        )

    async def signal(self, class_name: str, name: str, container: str, signo: int) -> None:
        inst = self._instance(class_name, name)
        if inst.container_id != container:
            return  # gone already
        if signo in (9, 15):
            # A stop as emu does it (SIGKILL after --stop-grace for SIGTERM), with its events.
            self._signalled.add(container)
            inst.stop(f"signal {signo} from the Worker", signal=SIGNALS[signo])
            return
        await inst.pool.runtime.docker.signal(container, SIGNALS.get(signo, str(signo)))

    async def destroy(self, class_name: str, name: str, container: str, reason: str) -> None:
        inst = self._instance(class_name, name)
        if inst.container_id != container:
            return
        self._signalled.add(container)
        await asyncio.shield(inst.stop(reason, grace=0.0, signal="SIGKILL"))

    def report(self, class_name: str, name: str, counts: Counts) -> None:
        """The shim's counts since its last report, for `/_emu/status` and metrics."""
        if self._feed is not None:
            for record in counts.records:
                self._feed.add(untied_record(record))
        pool = self._pools.get(class_name)
        inst = pool.instances.get(name) if pool is not None else None
        if inst is None:
            return  # forgotten meanwhile: only history is lost
        inst.requests += max(counts.requests, 0)
        inst.inflight = max(counts.inflight, 0)
        inst.probes += max(counts.probes, 0)
        for waited in counts.cold_waits_ms:
            inst.waited(waited)
        if counts.requests:
            inst.last_activity = time.time()

    def record(self, records: list[Mapping[str, Any]]) -> None:
        """The Worker's request records, each with the container requests made for it."""
        if self._feed is not None:
            for record in records:
                self._feed.add(worker_record(record))


def _str_map(value: object, what: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EmuHTTPError(400, f"{what} must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _start_request(body: Mapping[str, Any]) -> StartRequest:
    entrypoint = body.get("entrypoint")
    if entrypoint is not None and not isinstance(entrypoint, list):
        raise EmuHTTPError(400, "entrypoint must be an array of strings")
    internet = body.get("enableInternet")
    return StartRequest(
        class_name=str(body["class"]),
        name=str(body["name"]),
        durable_object_id=str(body["id"]) if body.get("id") else None,
        env=_str_map(body.get("env"), "env"),
        entrypoint=tuple(str(a) for a in entrypoint) if entrypoint is not None else None,
        enable_internet=None if internet is None else bool(internet),
        labels=_str_map(body.get("labels"), "labels") or {},
        egress=plan_from(body.get("egress")),
    )


Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]


class _Calls:
    """One handler per runtime call, each taking the JSON body."""

    def __init__(self, host: ContainerHost) -> None:
        self.host = host

    async def start(self, body: Mapping[str, Any]) -> dict[str, Any]:
        started = await self.host.start(_start_request(body))
        ports = {str(k): v for k, v in started.ports.items()}
        return {"container": started.container, "ip": started.ip, "ports": ports}

    async def monitor(self, body: Mapping[str, Any]) -> dict[str, Any]:
        state = await self.host.wait_exit(
            str(body["class"]), str(body["name"]), str(body["container"]), MONITOR_WAIT
        )
        return {
            "running": state.running,
            "exit_code": state.exit_code,
            "signalled": state.signalled,
        }

    async def signal(self, body: Mapping[str, Any]) -> dict[str, Any]:
        signo = body["signo"]
        if not isinstance(signo, int) or not 0 < signo < 65:
            raise EmuHTTPError(400, "signo must be a signal number")
        cls, name, container = str(body["class"]), str(body["name"]), str(body["container"])
        await self.host.signal(cls, name, container, signo)
        return {}

    async def destroy(self, body: Mapping[str, Any]) -> dict[str, Any]:
        reason = body.get("reason") or "destroyed by the Worker"
        cls, name, container = str(body["class"]), str(body["name"]), str(body["container"])
        await self.host.destroy(cls, name, container, reason)
        return {}

    async def report(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.host.report(str(body["class"]), str(body["name"]), counts(body))
        return {}

    async def requests(self, body: Mapping[str, Any]) -> dict[str, Any]:
        records = body["records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise EmuHTTPError(400, "records must be an array of objects")
        self.host.record(records)
        return {}

    async def egress(self, body: Mapping[str, Any]) -> dict[str, Any]:
        applied = self.host.intercept(
            str(body["class"]), str(body["name"]), str(body["ip"]), plan_from(body.get("egress"))
        )
        return {"applied": applied}

    async def exec(self, body: Mapping[str, Any]) -> dict[str, Any]:
        cmd = body.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise EmuHTTPError(400, "exec(): the command must be a non-empty array of strings")
        cls, name, container = str(body["class"]), str(body["name"]), str(body["container"])
        result = await self.host.exec(cls, name, container, cmd)
        return {
            "stdout": base64.b64encode(result.stdout).decode(),
            "stderr": base64.b64encode(result.stderr).decode(),
            "exitCode": result.exit_code,
        }

    async def inspect(self, body: Mapping[str, Any]) -> dict[str, Any]:
        cls, name, container = str(body["class"]), str(body["name"]), str(body["container"])
        return await self.host.inspect(cls, name, container)


def routes(
    host: ContainerHost, token: str, map_stack: Callable[[str], Awaitable[str]] | None = None
) -> list[web.RouteDef]:
    """The runtime API's routes; every call must carry `token` (only the generated Worker has
    it), so that nothing else on this machine can start or stop containers through it.
    `map_stack`: `POST /_emu/runtime/stack` turns a Worker exception's stack into the user's
    files and lines (for its 500 body)."""

    def route(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return web.json_response({"error": "not the Worker's runtime"}, status=403)
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise EmuHTTPError(400, "the body must be a JSON object")
                return web.json_response(await handler(body))
            except NoInstance as exc:
                return web.json_response({"error": str(exc), "kind": "no_instance"}, status=503)
            except UnknownClass as exc:
                return web.json_response({"error": str(exc)}, status=404)
            except EmuHTTPError as exc:
                return web.json_response(exc.body(), status=exc.status)
            except PlanError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            except (KeyError, ValueError) as exc:
                return web.json_response({"error": f"bad request: {exc}"}, status=400)

        return serve

    calls = _Calls(host)
    # Every op of js/protocol.json is one of _Calls, but `stack`, which needs the runner.
    ops = [op for op in RUNTIME_OPS if op != "stack"]
    out = [web.post(f"/_emu/runtime/{op}", route(getattr(calls, op))) for op in ops]
    if map_stack is not None:

        async def stack(body: Mapping[str, Any]) -> dict[str, Any]:
            return {"stack": await map_stack(str(body["stack"]))}

        out.append(web.post("/_emu/runtime/stack", route(stack)))
    return out
