"""`Emulator`: the lifecycle of one config's front and instances, the Python API.

`start()` enters each resource into one `AsyncExitStack` as it is made, so `stop()` (or a
failed start) tears down exactly what was made, in reverse order. `emu up` and the pytest
fixture are thin layers over this class.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from .cockpit import routes as cockpit_routes
from .cockpit.control import Cockpit
from .config import ClassConfig, Config, ConfigError
from .egress.service import sealer
from .engine.bridge import reachable_engine
from .engine.choice import Engine, EngineKind
from .engine.docker_types import DockerError, DockerUnavailable, EngineInfo, Event
from .front.app import Front, make_app, make_runner
from .front.app import listen as front_listen
from .front.connections import Limits
from .front.requests_log import RequestLog
from .instances.events import EventFields, EventKind, LifecycleEvent, event_line, make_event
from .instances.images import prepare_image
from .instances.networks import Networks
from .instances.pool import ClassPool, prewarm
from .instances.runtime import Runtime, SessionState
from .instances.spec import Capacity, capacity_note
from .instances.status import Status
from .options import EmulatorOptions
from .reconcile import Reconciler
from .reload import LIBRARY_FIELDS, restart_needed
from .runs import labels, live
from .runs.reaper import Reaper
from .runs.sweep import sweep_project, sweep_session
from .watch import watch

if TYPE_CHECKING:
    from .worker.mode import ModeChoice, WorkerMode

log = logging.getLogger("emu")

DRAIN_TIMEOUT = 10.0
# SIGTERM-to-SIGKILL when emu itself stops or replaces an instance after a rebuild (at most
# --stop-grace): a developer waits for it, unlike the platform's 15 minutes.
SHUTDOWN_GRACE = 10.0


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Emulator:
    """Runs the front and the instances of one config until `stop()`, as `options` say.

    Its output (build output, emu's own lines and, with `follow_logs`, container output) goes to
    `options.on_output`, by default the `emu` logger; each lifecycle event to `options.on_event`
    when given, else as a line to the output. In worker mode (`mode.worker`), the Worker runs in
    workerd on the public address and this front listens on a loopback port of its own, for the
    Worker's runtime API and `/_emu/*`. ConfigError when the Worker's source cannot be used.
    """

    def __init__(self, config: Config, options: EmulatorOptions | None = None) -> None:
        self.config = config
        self.options = options = options or EmulatorOptions()
        self._out = options.on_output or (lambda source, line: log.info("%s | %s", source, line))
        self.mode, self._worker = _worker_mode(config, options, self._out)
        self.session_id = uuid.uuid4().hex[:12]
        self.project = labels.project_id(config.path)
        self.labels = labels.session_labels(self.project, self.session_id, config.path, config.env)
        # Local, remote or Swarm (emulator/engine/): by default, as DOCKER_HOST says.
        self.engine = options.engine or Engine.detect()
        self.docker = options.docker or self.engine.backend(
            start_timeout=config.start_timeout, stop_grace=config.stop_grace
        )
        self._own_docker = options.docker is None
        self.networks = Networks(self.docker, self._on_event)
        self._swept = False
        self._watchdog: Reaper | None = None
        self._log_followers: dict[str, Callable[[], None]] = {}
        self.events: collections.deque[LifecycleEvent] = collections.deque(maxlen=1000)
        self.pools: dict[str, ClassPool] = {}
        self.feed = RequestLog() if options.request_feed else None
        self.cockpit = Cockpit(self.pools, self.docker, self.events, self.status, self.feed)
        self._state = SessionState()
        self._front: Front | None = None
        self._ready = False
        self._stack: AsyncExitStack | None = None
        self._reconciler = Reconciler(
            self.pools, self.docker, self.session_id, self._on_event, self._out
        )
        self.port: int = config.port  # the public one: the Worker's in worker mode
        self.front_port: int = config.port
        self.disk_note: str | None = None

    @property
    def url(self) -> str:
        return _http_url(self.config.host, self.port)

    @property
    def local_url(self) -> str:
        """`url`, as a client on this machine reaches it when emu listens on every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.config.host)
        return _http_url(host or self.config.host, self.port)

    @property
    def front_url(self) -> str:
        """Where this front listens: `url`, except in worker mode."""
        if self._worker is None:
            return self.url
        return _http_url("127.0.0.1", self.front_port)

    @property
    def status_url(self) -> str:
        """Where emu itself answers `/_emu/*`: in worker mode its own port, which answers also
        while the Workers runtime (and so the public port) is down."""
        return self.local_url if self._worker is None else self.front_url

    async def wait_failed(self) -> str:
        """Why emu cannot go on, once it cannot: the Workers runtime died too often."""
        if self._worker is None:
            await asyncio.get_running_loop().create_future()  # never
        assert self._worker is not None
        return await self._worker.wait_failed()

    @property
    def worker(self) -> WorkerMode | None:
        """Worker mode's part (the Workers runtime, its health); None in no-worker mode."""
        return self._worker

    @property
    def engine_up(self) -> bool:
        return self._state.engine_up

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Docker, sweep leftovers, listen, create the networks, prepare images.

        Raises DockerUnavailable when there is no engine, ListenError when the port is taken.
        On any failure everything made so far is removed again.
        """
        if self._stack is not None:
            raise RuntimeError("this Emulator is running already")
        self._stack = AsyncExitStack()
        try:
            await self._start(self._stack)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, stack: AsyncExitStack) -> None:
        stack.enter_context(live.live(self.session_id))
        if self.options.reaper:
            # Pushed first, so it runs last: it knows whether the final sweep removed everything.
            self._watchdog = watchdog = Reaper.spawn(self.session_id, str(self.engine.kind))
            stack.callback(lambda: watchdog.close(clean=self._swept))
        if self._own_docker:
            await stack.enter_async_context(self.docker)
        # Whatever is left at the end (a start that raced the shutdown, a failed stop): by label.
        stack.push_async_callback(self._sweep_session)
        info = await self.docker.connect()
        self.engine = await reachable_engine(self.engine, self.docker, self._out)
        await sweep_project(self.docker, self.project, keep_session=self.session_id)
        if self._worker is not None:
            await self._worker.prepare()  # npm packages; the public port still free
            stack.callback(self._worker.release)  # the state folder, after worker.stop
        if not info.disk_quota_supported:
            self.disk_note = (
                f"disk limits are not enforced: storage driver {info.storage_driver} on "
                f"{info.backing_filesystem or 'this filesystem'} has no per-container quota"
            )
            self._out("emu", self.disk_note)
        probe = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
        )
        self._make_pools(info, probe)
        for pool in self.pools.values():  # said once: the containers run all the same
            note = capacity_note(pool.config.instance_type, pool.runtime.capacity)
            if note is not None:
                self._out("emu", f"{pool.config.class_name}: {note}")
        self.docker.watch_events(
            labels.session_filter(self.session_id), self._on_docker_event, self._on_engine
        )
        stack.callback(self.docker.stop_events)
        await self._serve(stack)
        # Listening before the builds: a taken port fails at once, not after a long build, and
        # emu answers meanwhile: /_emu/status at once, requests once their class's image is
        # there (they are held until then).
        self._out("emu", f"listening on {self.url}")
        await asyncio.gather(*(self._prepare(p) for p in self.pools.values()))
        # As soon as the images are there, so that the first requests find them warm.
        if self.options.prewarm:
            await prewarm(self.pools.values(), self.options.prewarm, self._out)
        self._ready = True  # `serving` in the status: images there, prewarm done
        if self.options.watch:
            self._start_watching(stack)

    def _make_pools(self, info: EngineInfo, probe: aiohttp.ClientSession) -> None:
        base = f"emu-{self.project}-{self.session_id[:6]}"
        local = self.engine.kind is EngineKind.LOCAL
        runtime = Runtime(
            docker=self.docker,
            session=probe,
            network=base,
            internal_network=base + "-internal",
            labels=self.labels,
            name_prefix=base,
            start_timeout=self.config.start_timeout,
            stop_grace=self.config.stop_grace,
            disk_enforced=info.disk_quota_supported,
            on_event=self._on_event,
            state=self._state,
            publish_address=self.engine.publish_address,
            capacity=Capacity(info.cpus, info.memory_bytes),
            restore_networks=self.networks.restore,
            worker_mode=self._worker is not None,
            seal=sealer(self.docker, self.labels, lambda m: self._out("emu", m)) if local else None,
            local_engine=local,
        )
        rng = random.Random(self.config.seed)
        for cfg in self.config.classes:
            self.pools[cfg.class_name] = ClassPool(cfg, runtime, rng)

    async def _serve(self, stack: AsyncExitStack) -> None:
        """Listen, then make the networks (so that they can say where: `emu status` finds the
        URL on them; the session sweep removes them)."""
        self._front = front = Front(self.pools, self._out, self.feed, self.options.debug_headers)
        worker = self._worker
        runtime_api = worker.routes(self.pools, self.feed) if worker is not None else []

        def install(app: web.Application) -> None:
            cockpit_routes.install(app, self.cockpit)
            app.router.add_routes(runtime_api)  # worker mode's runtime API

        app = make_app(front, access_log=self.options.access_log, install=install)
        runner = make_runner(app)
        await runner.setup()
        stack.push_async_callback(_quietly, runner.cleanup)
        stack.callback(self._stop_log_followers)
        stack.push_async_callback(self._stop_instances)
        stack.push_async_callback(front.drain, DRAIN_TIMEOUT)
        stack.push_async_callback(self._reconciler.cancel)
        cfg = self.config
        limits = Limits(cfg.header_timeout, cfg.keepalive_timeout, cfg.max_connections)
        if worker is None:
            site, self.port = await front_listen(runner, cfg.host, cfg.port, limits)
            self.front_port = self.port
        else:
            site, self.front_port = await front_listen(runner, "127.0.0.1", 0, limits)
        stack.push_async_callback(_quietly, site.stop)
        if worker is not None:
            # The Worker answers from here on; a start it asks for waits for the networks and
            # images (the library retries, then answers its 503).
            stack.push_async_callback(worker.stop)
            self.port = await worker.start(self.front_url, self.session_id, self._watchdog)
        runtime = next(iter(self.pools.values())).runtime
        wanted = [(runtime.network, False)]
        # In worker mode, start({enableInternet: false}) may ask for it on any class.
        if worker is not None or any(not p.config.enable_internet for p in self.pools.values()):
            wanted.append((runtime.internal_network, True))
        found = labels.network_labels(self.labels, self.local_url, self.status_url)
        await self.networks.make(wanted, found, stack)

    def _start_watching(self, stack: AsyncExitStack) -> None:
        stop = asyncio.Event()
        say = functools.partial(self._out, "watch")
        job = watch(lambda: self.config, stop, self.rebuild, self.reload_settings, say)
        task = asyncio.create_task(job, name="watch")

        async def cancel() -> None:
            stop.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

        stack.push_async_callback(cancel)

    async def stop(self) -> None:
        """Stop listening, drain (bounded), stop every instance, remove containers and networks."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        self._state.closing = True
        if self._front is not None:
            self._front.refusing = "emu is shutting down"
        for pool in self.pools.values():
            pool.image.release()  # requests held for a build answer now
        await stack.aclose()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _stop_instances(self) -> None:
        grace = min(self.config.stop_grace, SHUTDOWN_GRACE)
        tasks = [t for pool in self.pools.values() for t in pool.stop_all(grace)]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_log_followers(self) -> None:
        for cancel in self._log_followers.values():
            cancel()
        self._log_followers.clear()

    async def _sweep_session(self) -> None:
        with contextlib.suppress(DockerError):
            await sweep_session(self.docker, self.session_id)
            self._swept = True

    # -- images -------------------------------------------------------------------------------

    async def _image(self, cfg: ClassConfig) -> str:
        return await prepare_image(
            self.docker,
            cfg,
            labels.image_labels(self.project, cfg.class_name),
            lambda line: self._out(f"build {cfg.class_name}", line),
        )

    async def _prepare(self, pool: ClassPool) -> None:
        try:
            pool.image.use(await self._image(pool.config))
        except DockerUnavailable:
            raise
        except DockerError as exc:
            self._out("emu", f"{pool.config.class_name}: {pool.image.failed(pool.config, exc)}")

    async def rebuild(self, cfg: ClassConfig) -> None:
        """Rebuild a class's image; when it changed, replace the running instances (each stops
        gracefully; the next request for it starts the new image). A failed rebuild keeps the
        previous image serving."""
        pool = self.pools[cfg.class_name]
        pool.image.rebuilding()
        try:
            tag = await self._image(cfg)
        except DockerError as exc:
            pool.image.failed(cfg, exc)
            self._on_event(EventKind.REBUILD_FAILED, {"class": cfg.class_name, "error": str(exc)})
            return
        finally:
            pool.image.done_rebuilding()
        if not pool.image.use(tag):
            return
        self._on_event(EventKind.REBUILT, {"class": cfg.class_name, "image": tag})
        pool.replace_running("image rebuilt", min(self.config.stop_grace, SHUTDOWN_GRACE))

    # -- settings -----------------------------------------------------------------------------

    async def reload_settings(self) -> None:
        """Read the config and Worker source again and apply what can change while running: a
        changed class gets its new settings, its running instances are replaced, and its image is
        rebuilt when its build args changed. Other changes are reported: they need a restart."""
        if self.options.reload is None:
            self._out("watch", "settings changed: restart emu up to apply them")
            return
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, self.options.reload)
        except ConfigError as exc:
            self._on_event(EventKind.RELOAD_FAILED, {"error": str(exc)})
            return
        needs_restart = restart_needed(self.config, new)
        if needs_restart:
            self._out("watch", f"changed {', '.join(needs_restart)}: restart emu up to apply")
            return
        self.config = new
        grace = min(self.config.stop_grace, SHUTDOWN_GRACE)
        for cfg in new.classes:
            pool = self.pools[cfg.class_name]
            changed = pool.reconfigure(cfg)
            if not changed or (self._worker is not None and LIBRARY_FIELDS.issuperset(changed)):
                continue
            self._on_event(
                EventKind.RECONFIGURED, {"class": cfg.class_name, "changed": ", ".join(changed)}
            )
            pool.replace_running("settings changed", grace)
            if "image_vars" in changed or "image" in changed:
                await self.rebuild(cfg)

    # -- engine events ------------------------------------------------------------------------

    def _on_docker_event(self, event: Event) -> None:
        class_name = event.labels.get(labels.CLASS, "")
        pool = self.pools.get(class_name)
        if pool is not None:
            pool.on_docker_event(event)
        if self.options.follow_logs and event.action == "start" and labels.ROLE not in event.labels:
            if event.container_id in self._log_followers:
                return  # the event again, replayed after the event stream reconnected
            name = self._who(class_name or "?", event.labels.get(labels.INSTANCE, "?"))
            self._log_followers[event.container_id] = self.docker.stream_logs(
                event.container_id, lambda line: self._out(name, line)
            )
        elif event.action == "destroy":
            cancel = self._log_followers.pop(event.container_id, None)
            if cancel is not None:
                cancel()

    def _on_engine(self, up: bool) -> None:
        if up == self._state.engine_up:
            return
        self._state.engine_up = up
        self._on_event(EventKind.ENGINE_UP if up else EventKind.ENGINE_DOWN, {})
        if up and self._stack is not None:
            self._reconciler.start()

    # -- the event log and status -------------------------------------------------------------

    def _who(self, class_name: str, instance: str) -> str:
        return instance if len(self.pools) == 1 else f"{class_name}/{instance}"

    def _on_event(self, kind: EventKind, data: EventFields) -> None:
        entry = make_event(time.time(), kind, data)
        self.events.append(entry)
        self.cockpit.on_event(entry)
        line = event_line(kind, data, several_classes=len(self.pools) > 1)
        if self.options.on_event is not None:
            self.options.on_event(entry, line)
        else:
            self._out("emu", line)

    def _settled(self) -> bool:
        front = self._front
        ok = front is not None and front.refusing is None
        return ok and all(p.image.settled for p in self.pools.values())

    def status(self) -> Status:
        front = self._front
        health = self._worker.health.snapshot() if self._worker is not None else None
        runtime = None if health is None else health["state"]
        return {
            "url": self.url,
            "session": self.session_id,
            "project": self.project,
            "config": str(self.config.path),
            "serving": self._ready and self._settled() and runtime in (None, "up"),
            "refusing": front.refusing if front is not None else "emu is not started yet",
            "engine_up": self.engine_up,
            "engine": str(self.engine.kind),
            "mode": "no-worker" if self._worker is None else "worker",
            "runtime": health,  # the Workers runtime: up or down, why, its restarts
            "disk_limits": self.disk_note or "enforced",
            "inflight": front.inflight if front is not None else 0,
            "classes": [p.snapshot() for p in self.pools.values()],
        }


def _worker_mode(
    config: Config, options: EmulatorOptions, out: Callable[[str, str], None]
) -> tuple[ModeChoice, WorkerMode | None]:
    """Which mode (`options.worker`: None is worker mode when Node.js is there), and worker
    mode's part of the Emulator. Imported here: no-worker mode does without it."""
    from .worker.mode import WorkerMode, choose_mode

    mode = choose_mode(options.worker)
    if mode.node is None:
        return mode, None
    worker = WorkerMode(
        config,
        mode.node,
        out=out,
        watch=options.watch,
        feed=options.request_feed,
        debug_headers=options.debug_headers,
        options=options.runtime,
    )
    return mode, worker


async def _quietly(close: Callable[[], Awaitable[None]]) -> None:
    """Teardown goes on past a resource that fails to close."""
    with contextlib.suppress(Exception):
        await close()
