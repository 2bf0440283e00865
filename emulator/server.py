"""The front: one aiohttp app that routes each request to an instance, plus `/_emu/` endpoints.

`Emulator` is the Python API; `emu up` and the pytest fixture are thin layers over it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import metrics
from .config import ClassConfig, Config, ConfigError
from .docker_backend import MANAGED_LABEL, DockerBackend, DockerError, DockerUnavailable, Event
from .errors import EmuHTTPError
from .images import prepare_image
from .instances import INSTANCE_NAME, ClassPool, Instance, Runtime
from .proxy import INSTANCE_HEADER, forward
from .watch import watch

log = logging.getLogger("emu")

BINDING_HEADER = "x-emu-binding"
DRAIN_TIMEOUT = 10.0
# Sessions of Emulators running in this process (several may run at once in a test suite).
_LIVE_SESSIONS: set[str] = set()
# SIGTERM-to-SIGKILL when emu itself stops or replaces an instance after a rebuild (at most
# --stop-grace): a developer waits for it, unlike the platform's 15 minutes.
SHUTDOWN_GRACE = 10.0
# After the engine came back: how often to try matching emu's state with it (its first answers
# can fail while it is still starting up), and how long to wait between tries.
RECONCILE_TRIES = 10
RECONCILE_RETRY = 1.0


class _BadRequestFilter(logging.Filter):
    """aiohttp logs a malformed request (already answered 400) with a traceback, as an error.
    It is the client's mistake: one debug line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg, record.args = (
            "bad request from %s: %s",
            (peer, exc.message.split("\n")[0][:120]),
        )
        return _HTTP_LOG.isEnabledFor(logging.DEBUG)


_HTTP_LOG = logging.getLogger("emu.http")
_HTTP_LOG.addFilter(_BadRequestFilter())


def project_id(config_path: Path) -> str:
    """Stable for one config file on one machine: how runs of the same project find each other
    (whatever its --env: `emu down` removes them all)."""
    # Resolved: `-c ../proj/wrangler.jsonc` and a symlinked folder are the same project.
    return hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]


def project_labels(config: Config) -> dict[str, str]:
    return {MANAGED_LABEL: "true", "emu.project": project_id(config.path)}


URL_LABEL = "emu.url"  # on an emu up's networks: where it listens
ENV_LABEL = "emu.env"  # the wrangler environment (--env) an emu up serves; "" for none


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def running_urls(docker: DockerBackend, project: str) -> dict[str, str]:
    """Where the project's running `emu up`s listen, from their networks' labels: url -> the
    wrangler environment it serves ("" for the top level)."""
    networks = await docker.list_networks({MANAGED_LABEL: "true", "emu.project": project})
    return {
        lab[URL_LABEL]: lab.get(ENV_LABEL, "")
        for _id, _name, lab in sorted(networks, key=lambda n: n[1])
        if URL_LABEL in lab and _alive(lab)
    }


# Settings a running emu cannot take over: they need `emu up` again.
RESTART_FIELDS = ("host", "port", "start_timeout", "stop_grace", "seed")
CLASS_RESTART_FIELDS = ("binding", "dockerfile", "build_context", "enable_internet")


def _changed_fields(before: ClassConfig, after: ClassConfig) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(ClassConfig)
        if f.name != "origins" and getattr(before, f.name) != getattr(after, f.name)
    ]


class ListenError(Exception):
    """The front cannot listen (the port is taken, the address is not this machine's)."""


@dataclass(frozen=True)
class Route:
    pool: ClassPool
    path: str  # what the instance sees: the request path, minus a binding prefix


class Emulator:
    """Runs the front and the instances of one config until `stop()`.

    `on_output(source, line)` receives build output, emu's own event lines and, with
    `follow_logs`, container output; by default they go to the `emu` logger.
    """

    def __init__(
        self,
        config: Config,
        *,
        on_output: Callable[[str, str], None] | None = None,
        follow_logs: bool = False,
        watch: bool = False,
        access_log: bool = False,
        reload: Callable[[], Config] | None = None,
        docker: DockerBackend | None = None,
    ) -> None:
        self.config = config
        self.session_id = uuid.uuid4().hex[:12]
        self.project = project_id(config.path)
        self.labels = {
            **project_labels(config),
            "emu.session": self.session_id,
            "emu.pid": str(os.getpid()),
            "emu.host": socket.gethostname(),
            "emu.config": str(config.path),
            ENV_LABEL: config.env or "",
        }
        self.docker = docker or DockerBackend()
        self._own_docker = docker is None
        self._out = on_output or (lambda source, line: log.info("%s | %s", source, line))
        self._follow_logs = follow_logs
        self._watch = watch
        self._reload = reload  # reads the config again, with the same flags
        self._access_log = access_log
        self._watch_stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._log_followers: dict[str, Callable[[], None]] = {}
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self.pools: dict[str, ClassPool] = {}
        self._registry = metrics.registry(self.pools.values)
        self._bindings: dict[str, ClassPool] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._proxy_session: aiohttp.ClientSession | None = None
        self._probe_session: aiohttp.ClientSession | None = None
        self.port: int = config.port
        self.disk_note: str | None = None
        self.engine_up = True
        self._reconcile_task: asyncio.Task[None] | None = None
        self._inflight = 0
        # Why requests are refused (503), or None while serving: one check on the hot path.
        self._refusing: str | None = "emu is still preparing images; try again"
        self._drained = asyncio.Event()
        self._started = False

    @property
    def url(self) -> str:
        return _http_url(self.config.host, self.port)

    @property
    def local_url(self) -> str:
        """`url`, as a client on this machine reaches it when emu listens on every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.config.host)
        return _http_url(host or self.config.host, self.port)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Docker, sweep leftovers, create the network, listen, prepare images.

        Raises DockerUnavailable when there is no engine, ListenError when the port is taken.
        On any failure everything made so far is removed again.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self._started = True
        _LIVE_SESSIONS.add(self.session_id)
        info = await self.docker.connect()
        await sweep_project(self.docker, self.project, keep_session=self.session_id)
        if not info.disk_quota_supported:
            self.disk_note = (
                f"disk limits are not enforced: storage driver {info.storage_driver} on "
                f"{info.backing_filesystem or 'this filesystem'} has no per-container quota"
            )
            self._out("emu", self.disk_note)
        base = f"emu-{self.project}-{self.session_id[:6]}"
        self._probe_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0)
        )
        self._proxy_session = aiohttp.ClientSession(
            # Idle connections are dropped before the usual servers' 5 s (uvicorn, Node) would
            # close them under a request that cannot be retried (a POST).
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        )
        runtime = Runtime(
            docker=self.docker,
            session=self._probe_session,
            network=base,
            labels=self.labels,
            name_prefix=base,
            start_timeout=self.config.start_timeout,
            stop_grace=self.config.stop_grace,
            disk_enforced=info.disk_quota_supported,
            on_event=self._on_event,
        )
        rng = random.Random(self.config.seed)
        for cfg in self.config.classes:
            pool = ClassPool(cfg, runtime, rng)
            if not cfg.enable_internet:
                pool.network = base + "-internal"
            self.pools[cfg.class_name] = pool
            self._bindings[cfg.binding.lower()] = pool
        self.docker.watch_events(
            {"emu.session": self.session_id}, self._on_docker_event, self._on_engine
        )
        app = web.Application(handler_args={"max_field_size": 16384, "max_line_size": 16384})
        app.router.add_get("/_emu/status", self._status)
        app.router.add_get("/_emu/events", self._events)
        app.router.add_get("/_emu/metrics", self._metrics)
        app.router.add_route(
            "*", "/{tail:.*}", self._handle_logged if self._access_log else self._handle
        )
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, logger=_HTTP_LOG
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await self._site.start()
        except OSError as exc:
            raise ListenError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc.strerror or exc}"
            ) from exc
        for address in self._runner.addresses:
            self.port = int(address[1])
            break
        # Made once listening, so that they can say where (`emu status` finds it there); removed
        # with the containers by the session sweep at the end of stop().
        labels = {**self.labels, URL_LABEL: self.local_url}
        await self.docker.create_network(base, labels, internal=False)
        if any(pool.network is not None for pool in self.pools.values()):
            await self.docker.create_network(base + "-internal", labels, internal=True)
        # Listening before the builds: a taken port fails at once, not after a long build, and
        # /_emu/status answers meanwhile (requests get 503 until the images are there).
        await asyncio.gather(*(self._prepare(p) for p in self.pools.values()))
        self._refusing = None
        self._out("emu", f"listening on {self.url}")
        if self._watch:
            self._watch_task = asyncio.create_task(
                watch(
                    lambda: self.config,
                    self._watch_stop,
                    self.rebuild,
                    self.reload_settings,
                    lambda m: self._out("watch", m),
                ),
                name="watch",
            )

    async def _prepare(self, pool: ClassPool) -> None:
        cfg = pool.config
        try:
            pool.image = await self._image(cfg)
            pool.image_error = None
        except DockerUnavailable:
            raise
        except DockerError as exc:
            tail = getattr(exc, "log_tail", [])
            what = "build" if cfg.dockerfile is not None else f"pull of {cfg.image}"
            pool.image_error = f"image {what} failed: {exc}"
            pool.image_log = list(tail)
            self._out("emu", f"{cfg.class_name}: {pool.image_error}")

    async def _image(self, cfg: ClassConfig) -> str:
        return await prepare_image(
            self.docker,
            cfg,
            project_labels(self.config),
            lambda line: self._out(f"build {cfg.class_name}", line),
        )

    async def rebuild(self, cfg: ClassConfig) -> None:
        """Rebuild a class's image; when it changed, replace the running instances (each stops
        gracefully; the next request for it starts the new image). A failed rebuild keeps the
        previous image serving."""
        pool = self.pools[cfg.class_name]
        try:
            tag = await self._image(cfg)
        except DockerError as exc:
            if pool.image is None:
                pool.image_error = f"image build failed: {exc}"
                pool.image_log = list(getattr(exc, "log_tail", []))
            self._on_event("rebuild_failed", {"class": cfg.class_name, "error": str(exc)})
            return
        if tag == pool.image:
            return
        pool.image, pool.image_error = tag, None
        self._on_event("rebuilt", {"class": cfg.class_name, "image": tag})
        grace = min(self.config.stop_grace, SHUTDOWN_GRACE)
        for inst in list(pool.instances.values()):
            if inst.container_id is not None:
                inst.stop("image rebuilt", grace)

    async def reload_settings(self) -> None:
        """Read the config and Worker source again and apply what can change while running: a
        changed class gets its new settings, its running instances are replaced, and its image is
        rebuilt when its build args changed. Other changes are reported: they need a restart."""
        if self._reload is None:
            self._out("watch", "settings changed: restart emu up to apply them")
            return
        try:
            new = await asyncio.get_running_loop().run_in_executor(None, self._reload)
        except ConfigError as exc:
            self._on_event("reload_failed", {"error": str(exc)})
            return
        old = self.config
        needs_restart = [k for k in RESTART_FIELDS if getattr(new, k) != getattr(old, k)]
        old_classes = {c.class_name: c for c in old.classes}
        new_classes = {c.class_name: c for c in new.classes}
        if old_classes.keys() != new_classes.keys():
            needs_restart.append("the set of classes")
        else:
            for name, cfg in new_classes.items():
                before = old_classes[name]
                if any(getattr(cfg, k) != getattr(before, k) for k in CLASS_RESTART_FIELDS):
                    needs_restart.append(f"{name}'s binding or build context")
        if needs_restart:
            self._out("watch", f"changed {', '.join(needs_restart)}: restart emu up to apply")
            return
        self.config = new
        grace = min(self.config.stop_grace, SHUTDOWN_GRACE)
        for name, cfg in new_classes.items():
            pool = self.pools[name]
            changed = _changed_fields(old_classes[name], cfg)
            pool.config = cfg
            if not changed:
                continue
            self._on_event("reconfigured", {"class": name, "changed": ", ".join(changed)})
            for inst in list(pool.instances.values()):
                if inst.container_id is not None:
                    inst.stop("settings changed", grace)
            if "image_vars" in changed or "image" in changed:
                await self.rebuild(cfg)

    async def stop(self) -> None:
        """Stop listening, drain (bounded), stop every instance, remove containers and networks."""
        if not self._started:
            return
        self._started = False
        self._refusing = "emu is shutting down"
        for pool in self.pools.values():
            pool.closing = True
        if self._site is not None:
            with contextlib.suppress(Exception):
                await self._site.stop()
        if self._watch_task is not None:
            self._watch_stop.set()
            self._watch_task.cancel()
            with contextlib.suppress(BaseException):
                await self._watch_task
        if self._reconcile_task is not None:
            self._reconcile_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reconcile_task
        if self._inflight:
            self._out("emu", f"draining {self._inflight} request(s)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), DRAIN_TIMEOUT)
        grace = min(self.config.stop_grace, SHUTDOWN_GRACE)
        tasks = [t for pool in self.pools.values() for t in pool.stop_all(grace)]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for cancel in self._log_followers.values():
            cancel()
        self._log_followers.clear()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
        for session in (self._proxy_session, self._probe_session):
            if session is not None:
                await session.close()
        self.docker.stop_events()
        # Whatever is left (a start that raced the shutdown, a failed stop): by label.
        with contextlib.suppress(DockerError):
            await sweep_session(self.docker, self.session_id)
        if self._own_docker:
            self.docker.close()
        _LIVE_SESSIONS.discard(self.session_id)

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- engine events ------------------------------------------------------------------------

    def _on_docker_event(self, event: Event) -> None:
        pool = self.pools.get(event.labels.get("emu.class", ""))
        if pool is not None:
            pool.on_docker_event(event)
        if self._follow_logs and event.action == "start":
            if event.container_id in self._log_followers:
                return  # the event again, replayed after the event stream reconnected
            name = self._who(
                event.labels.get("emu.class", "?"), event.labels.get("emu.instance", "?")
            )
            self._log_followers[event.container_id] = self.docker.stream_logs(
                event.container_id, lambda line: self._out(name, line)
            )
        elif event.action == "destroy":
            cancel = self._log_followers.pop(event.container_id, None)
            if cancel is not None:
                cancel()

    def _on_engine(self, up: bool) -> None:
        if up == self.engine_up:
            return
        self.engine_up = up
        for pool in self.pools.values():
            pool.engine_down = not up
        self._on_event("engine_up" if up else "engine_down", {})
        if up and self._started:
            if self._reconcile_task is not None:  # an earlier one may have met the engine away
                self._reconcile_task.cancel()
            self._reconcile_task = asyncio.create_task(self._reconcile(), name="reconcile")

    async def _reconcile(self) -> None:
        """After the engine was away: an instance whose container died meanwhile is marked
        stopped (the next request starts a fresh one), and containers of this session that no
        instance owns any more (dead ones the engine could not remove) are removed."""
        try:
            for attempt in range(1, RECONCILE_TRIES + 1):
                try:
                    await self._reconcile_once()
                    return
                except DockerError as exc:
                    if attempt == RECONCILE_TRIES:
                        self._out("emu", f"could not match instances with the engine: {exc}")
                        return
                await asyncio.sleep(RECONCILE_RETRY)
        finally:
            if self._reconcile_task is asyncio.current_task():
                self._reconcile_task = None

    async def _reconcile_once(self) -> None:
        await asyncio.gather(*(pool.reconcile() for pool in self.pools.values()))
        mine = {MANAGED_LABEL: "true", "emu.session": self.session_id}
        for c in await self.docker.list_containers(mine):
            pool = self.pools.get(c.labels.get("emu.class", ""))
            if pool is None or not pool.claims(c.id, c.labels):
                await self.docker.remove_container(c.id)
                self._on_event("removed", {"container": c.name, "reason": "no instance owns it"})

    def _who(self, class_name: str, instance: str) -> str:
        return instance if len(self.pools) == 1 else f"{class_name}/{instance}"

    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        entry = {"time": time.time(), "event": kind, **data}
        self.events.append(entry)
        who = self._who(data["class"], data["instance"]) if "instance" in data else "emu"
        rest = " ".join(f"{k}={v}" for k, v in data.items() if k not in ("class", "instance"))
        self._out("emu", f"{who} {kind}{' ' + rest if rest else ''}")

    # -- HTTP ---------------------------------------------------------------------------------

    def _route(self, request: web.Request) -> Route:
        path = request.raw_path
        if not path.startswith("/"):  # "GET http://host/x", which the parser lets through
            raise EmuHTTPError(400, "the request target must be a path, like /x")
        if len(self.pools) == 1:
            return Route(next(iter(self.pools.values())), path)
        header = request.headers.get(BINDING_HEADER)
        if header is not None:
            pool = self._bindings.get(header.lower())
            if pool is None:
                raise EmuHTTPError(404, f"no binding {header!r}", bindings=self._binding_names())
            return Route(pool, path)
        first, sep, rest = path[1:].partition("/")
        pool = self._bindings.get(first.partition("?")[0].lower())
        if pool is None:
            raise EmuHTTPError(
                404,
                "several Container classes: start the path with a binding name, e.g. "
                f"/{self._binding_names()[0]}/..., or send the header {BINDING_HEADER}",
                bindings=self._binding_names(),
            )
        if not sep and "?" in first:
            return Route(pool, "/?" + first.partition("?")[2])
        return Route(pool, "/" + rest)

    def _binding_names(self) -> list[str]:
        return [p.config.binding for p in self.pools.values()]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._inflight += 1
        self._drained.clear()
        inst: Instance | None = None
        try:
            if self._refusing is not None:  # building; or shutting down (a kept-alive client)
                raise EmuHTTPError(503, self._refusing)
            route = self._route(request)
            name = request.headers.get(INSTANCE_HEADER)
            if name is None:
                name = route.pool.pick()
            elif not INSTANCE_NAME.match(name):
                raise EmuHTTPError(
                    400,
                    f"invalid {INSTANCE_HEADER} header: 1 to 63 characters of letters, digits, "
                    "'.', '_' and '-', starting with a letter or digit",
                )
            inst = route.pool.get(name)
            inst.begin()
            if inst.state != "healthy":
                await inst.ensure_started()
            return await forward(request, inst, self._session(), route.path)
        except EmuHTTPError as exc:
            body = exc.body()
            if inst is not None:
                body.setdefault("instance", inst.name)
                body.setdefault("class", inst.pool.config.class_name)
            headers = {INSTANCE_HEADER: inst.name} if inst is not None else None
            return web.json_response(body, status=exc.status, headers=headers)
        finally:
            if inst is not None:
                inst.end()
            self._inflight -= 1
            if not self._inflight:
                self._drained.set()

    async def _handle_logged(self, request: web.Request) -> web.StreamResponse:
        """`_handle`, plus one access line: which instance served what, how, how fast."""
        began = time.perf_counter()
        resp = await self._handle(request)
        took = (time.perf_counter() - began) * 1000
        who = resp.headers.get(INSTANCE_HEADER, "-")
        self._out(
            "access", f"{request.method} {request.raw_path} -> {who} {resp.status} {took:.1f} ms"
        )
        return resp

    def _session(self) -> aiohttp.ClientSession:
        assert self._proxy_session is not None
        return self._proxy_session

    def status(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "session": self.session_id,
            "project": self.project,
            "config": str(self.config.path),
            "serving": self._refusing is None,
            "refusing": self._refusing,
            "engine_up": self.engine_up,
            "disk_limits": self.disk_note or "enforced",
            "inflight": self._inflight,
            "classes": [p.snapshot() for p in self.pools.values()],
        }

    async def _status(self, request: web.Request) -> web.Response:
        body = self.status()
        if request.query.get("usage", "0") not in ("0", "false", ""):
            await self._add_usage(body)
        return web.json_response(body)

    async def _add_usage(self, body: dict[str, Any]) -> None:
        """Each running instance's memory in use and CPU throttling: asked of Docker, so only
        when the caller asks (`?usage=1`); None where there is no running container."""
        instances = [i for cls in body["classes"] for i in cls["instances"]]
        live = [i for i in instances if i["container_id"] and i["state"] in ("running", "healthy")]
        usages = await asyncio.gather(*(self.docker.usage(i["container_id"]) for i in live))
        for inst in instances:
            inst["memory_bytes"] = inst["cpu_throttled_s"] = None
        for inst, usage in zip(live, usages, strict=True):
            if usage is not None:
                inst["memory_bytes"] = usage.memory_bytes
                inst["cpu_throttled_s"] = round(usage.cpu_throttled_s, 3)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _events(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.events))


async def sweep_session(docker: DockerBackend, session: str) -> None:
    labels = {MANAGED_LABEL: "true", "emu.session": session}
    for c in await docker.list_containers(labels):
        await docker.remove_container(c.id)
    for net_id, _name, _labels in await docker.list_networks(labels):
        await docker.remove_network(net_id)


async def sweep_project(
    docker: DockerBackend,
    project: str | None,
    keep_session: str | None = None,
    only_dead: bool = True,
) -> list[str]:
    """Remove containers and networks of earlier runs whose `emu up` is gone (or all, with
    `only_dead=False`). Returns the names removed."""
    labels = {MANAGED_LABEL: "true"}
    if project is not None:
        labels["emu.project"] = project
    removed: list[str] = []
    containers = await docker.list_containers(labels)
    networks = await docker.list_networks(labels)
    sessions = {c.labels.get("emu.session", ""): c.labels for c in containers}
    sessions.update({lab.get("emu.session", ""): lab for _i, _n, lab in networks})
    dead = {
        s for s, lab in sessions.items() if s != keep_session and (not only_dead or not _alive(lab))
    }
    for c in containers:
        if c.labels.get("emu.session", "") in dead:
            await docker.remove_container(c.id)
            removed.append(c.name)
    for net_id, name, lab in networks:
        if lab.get("emu.session", "") in dead:
            await docker.remove_network(net_id)
            removed.append(name)
    return removed


def _alive(labels: dict[str, str] | Any) -> bool:
    """Is the `emu up` that made these still running on this machine?"""
    if labels.get("emu.host") != socket.gethostname():
        return False
    try:
        pid = int(labels.get("emu.pid", ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return labels.get("emu.session") in _LIVE_SESSIONS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
