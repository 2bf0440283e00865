"""The one module that talks to the Docker engine.

The Docker SDK is synchronous. Every call runs on a small dedicated thread pool and is bounded
twice: by the SDK's own HTTP timeout and by `asyncio.wait_for` around it. Cancelling a coroutine
does not stop its thread, so the HTTP timeout is what really frees the thread.
The event stream is the one long-lived call; it gets a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.utils import build as build_utils

from . import docker_logs
from .backoff import Backoff
from .docker_types import (
    BuildError,
    ContainerInfo,
    ContainerSpec,
    DockerError,
    DockerUnavailable,
    EngineInfo,
    Event,
    NameInUse,
    NetworkMissing,
    Usage,
    container_info,
    docker_filter,
    engine_info,
    event_from_raw,
    looks_unreachable,
    network_missing,
    port_bindings,
    usage_from_stats,
)
from .threads import in_daemon_thread

log = logging.getLogger("emu.docker")

T = TypeVar("T")

# Connection problems that mean "the engine is not there right now", as opposed to an API error.
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)
# Reconnecting the event stream while the engine is away: soon at first, then every second, for
# as long as emu runs (it has to hear of the engine's return; `stop_events` ends the wait).
EVENTS_BACKOFF = Backoff(first=0.1, cap=1.0, total=None)


def _short(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


class DockerBackend:
    # Threads are made as calls need them. With 8, a burst of 50 cold starts queued in emu.
    def __init__(self, *, max_workers: int = 64, call_timeout: float = 30.0) -> None:
        self._call_timeout = call_timeout
        self._max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="emu-docker")
        self._client: docker.DockerClient | None = None
        self._events_stop = threading.Event()
        self._events_thread: threading.Thread | None = None
        self._events_stream: Any = None
        self._log_files = ""  # where a local json-file engine keeps containers' logs, if readable

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            # A connection per thread, kept: the SDK's default pool of 10 would drop the rest.
            self._client = docker.from_env(
                timeout=int(self._call_timeout), max_pool_size=self._max_workers
            )
        return self._client

    async def _run(
        self, fn: Callable[[], T], timeout: float | None = None, *, long: bool = False
    ) -> T:
        """`long` calls (a build, a pull) get a daemon thread of their own instead of the
        pool: they must not hold up the short calls, nor the process's exit on Ctrl-C."""
        loop = asyncio.get_running_loop()
        limit = self._call_timeout + 5 if timeout is None else timeout
        work = in_daemon_thread(loop, fn) if long else loop.run_in_executor(self._pool, fn)
        try:
            return await asyncio.wait_for(work, limit)
        except TimeoutError as exc:
            raise DockerUnavailable(
                f"the Docker engine did not answer within {limit:.0f} s"
            ) from exc
        except _UNREACHABLE as exc:
            raise DockerUnavailable(f"cannot reach the Docker engine: {_short(exc)}") from exc
        except docker.errors.DockerException as exc:
            if isinstance(exc, docker.errors.APIError) or not looks_unreachable(exc):
                raise DockerError(_short(exc)) from exc
            raise DockerUnavailable(f"cannot reach the Docker engine: {_short(exc)}") from exc

    async def call(self, fn: Callable[[Any], T], timeout: float | None = None) -> T:
        """`fn(client)`, bounded like every call: for emulator/engine/ (no SDK imports)."""
        return await self._run(lambda: fn(self.client), timeout)

    async def __aenter__(self) -> DockerBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_events()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    # -- engine ---------------------------------------------------------------------------

    async def connect(self) -> EngineInfo:
        def info() -> EngineInfo:
            return engine_info(self.client.info())

        found = await self._run(info, timeout=15)
        self._log_files = docker_logs.log_files_dir(found.root_dir, found.logging_driver)
        return found

    async def network_ipam(self, name: str) -> list[dict[str, str]]:
        found = await self._run(lambda: self.client.api.inspect_network(name), timeout=10)
        return list((found.get("IPAM") or {}).get("Config") or [])

    async def ping(self) -> bool:
        try:
            return bool(await self._run(self.client.ping, timeout=5))
        except DockerError:
            return False

    # -- images ---------------------------------------------------------------------------

    async def image_exists(self, ref: str) -> bool:
        def exists() -> bool:
            try:
                self.client.images.get(ref)
            except docker.errors.ImageNotFound:
                return False
            return True

        return await self._run(exists)

    async def pull(self, ref: str, timeout: float, on_line: Callable[[str], None]) -> None:
        """Pull, calling `on_line` (on the loop) as each layer arrives."""
        loop = asyncio.get_running_loop()

        def run() -> str | None:
            # A pull may take minutes: its own client, with a read timeout per progress event.
            api = _api_client(timeout=int(timeout))
            try:
                for event in api.pull(ref, stream=True, decode=True):
                    if "error" in event:
                        return str(event["error"]).strip()
                    status = str(event.get("status", ""))
                    if status in ("Pull complete", "Already exists"):
                        line = f"{event.get('id', '?')}: {status}"
                    elif status.startswith(("Digest:", "Status:")):
                        line = status
                    else:  # "Downloading" and the like, many a second: not shown
                        continue
                    loop.call_soon_threadsafe(on_line, line)
                return None
            finally:
                api.close()

        error = await self._run(run, timeout=timeout, long=True)
        if error is not None:
            raise DockerError(error)

    async def build(
        self,
        *,
        context: Path,
        dockerfile: Path,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        on_line: Callable[[str], None],
        timeout: float,
    ) -> None:
        """Build with the classic builder, calling `on_line` (on the loop) for each output line."""
        loop = asyncio.get_running_loop()
        tail: list[str] = []

        def emit(line: str) -> None:
            tail.append(line)
            del tail[:-30]
            loop.call_soon_threadsafe(on_line, line)

        def run() -> str | None:
            # A build may take minutes: its own client, with a read timeout per chunk of output.
            api = _api_client(timeout=int(timeout))
            try:
                stream = api.build(
                    path=str(context),
                    dockerfile=os.path.relpath(dockerfile, context),
                    tag=tag,
                    buildargs=dict(buildargs),
                    labels=dict(labels),
                    rm=True,
                    forcerm=True,
                    decode=True,
                )
                for chunk in stream:
                    if "error" in chunk:
                        return str(chunk["error"]).strip()
                    text = chunk.get("stream")
                    if text:
                        for line in str(text).splitlines():
                            if line.strip():
                                emit(line)
                return None
            finally:
                api.close()

        try:
            error = await self._run(run, timeout=timeout, long=True)
        except DockerUnavailable:
            raise
        except DockerError as exc:
            raise BuildError(str(exc), tail) from exc
        if error is not None:
            raise BuildError(error, tail)

    async def remove_images(self, labels: Mapping[str, str]) -> list[str]:
        """Remove the images carrying these labels (those emu built); returns their tags."""

        def remove() -> list[str]:
            removed: list[str] = []
            for image in self.client.images.list(filters={"label": docker_filter(labels)}):
                try:
                    self.client.images.remove(str(image.id), force=True)
                except docker.errors.NotFound:
                    continue
                removed += image.tags or [image.short_id]
            return removed

        return await self._run(remove, timeout=120)

    # -- networks -------------------------------------------------------------------------

    async def create_network(self, name: str, labels: Mapping[str, str], internal: bool) -> str:
        def create() -> str:
            net = self.client.networks.create(
                name, driver="bridge", labels=dict(labels), internal=internal, check_duplicate=True
            )
            return str(net.id)

        return await self._run(create)

    async def remove_network(self, id_or_name: str) -> None:
        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.networks.get(id_or_name).remove()

        await self._run(remove)

    async def list_networks(
        self, labels: Mapping[str, str]
    ) -> list[tuple[str, str, dict[str, str]]]:
        def ls() -> list[tuple[str, str, dict[str, str]]]:
            nets = self.client.networks.list(filters={"label": docker_filter(labels)})
            return [(str(n.id), str(n.name), dict(n.attrs.get("Labels") or {})) for n in nets]

        return await self._run(ls)

    # -- containers -----------------------------------------------------------------------

    async def run_container(self, spec: ContainerSpec) -> ContainerInfo:
        """Create (labelled) and start; on a failed start the container is removed."""

        def run() -> ContainerInfo:
            # Three calls, not the SDK model's five (it inspects after create and after start):
            # in a burst of cold starts every call waits its turn in the engine.
            api = self.client.api
            bindings = port_bindings(spec)  # a remote engine's or a Swarm's published ports
            try:
                created = api.create_container(
                    spec.image,
                    name=spec.name,
                    labels=dict(spec.labels),
                    environment=dict(spec.environment),
                    hostname=spec.hostname,
                    entrypoint=None if spec.entrypoint is None else list(spec.entrypoint),
                    detach=True,
                    # Bare numbers: the SDK adds "/tcp" itself ("8080/tcp/tcp" exposes nothing,
                    # and an image without EXPOSE then got no published port).
                    ports=list(spec.publish_ports) or None,
                    host_config=api.create_host_config(
                        network_mode=spec.network,
                        privileged=False,
                        port_bindings=bindings,
                        **spec.host_limits(),
                    ),
                    networking_config={"EndpointsConfig": {spec.network: {}}},
                )
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise NameInUse(_short(exc)) from exc
                raise
            cid = str(created["Id"])
            try:
                api.start(cid)
                attrs = api.inspect_container(cid)
            except BaseException:
                with contextlib.suppress(Exception):
                    api.remove_container(cid, force=True)
                raise
            return container_info(attrs, spec.network)

        try:
            return await self._run(run)
        except DockerError as exc:  # the engine checks the network at create or at start
            if network_missing(str(exc)):
                raise NetworkMissing(str(exc)) from exc
            raise

    async def inspect(self, container_id: str, network: str | None = None) -> ContainerInfo | None:
        def get() -> ContainerInfo | None:
            try:
                attrs = self.client.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return None
            return container_info(attrs, network)

        return await self._run(get)

    async def signal(self, container_id: str, sig: str) -> None:
        def kill() -> None:
            try:
                self.client.api.kill(container_id, signal=sig)
            except docker.errors.APIError as exc:
                # Not running (any more) is what we wanted anyway.
                if exc.status_code not in (404, 409):
                    raise

        await self._run(kill)

    async def remove_container(self, container_id: str) -> None:
        def remove() -> None:
            try:
                self.client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or "already in progress" not in str(exc):
                    raise

        await self._run(remove)

    async def logs_tail(self, container_id: str, lines: int = 20) -> list[str]:
        with contextlib.suppress(DockerError):
            return [text for _, text in await self.logs(container_id, tail=lines)]
        return []

    async def logs(self, container_id: str, tail: int | None = None) -> list[tuple[float, str]]:
        def read() -> list[tuple[float, str]]:  # (unix time, line), the last `tail`; [] if gone
            with contextlib.suppress(docker.errors.NotFound):
                raw = self.client.api.logs(container_id, timestamps=True, tail=tail or "all")
                return [docker_logs.stamped(x) for x in raw.decode("utf-8", "replace").splitlines()]
            return []

        return await self._run(read, timeout=15)

    async def pause(self, container_id: str, paused: bool) -> None:
        op = "pause" if paused else "unpause"  # freezes every process: requests to it hang
        await self._run(lambda: getattr(self.client.api, op)(container_id))

    async def usage(self, container_id: str) -> Usage | None:
        """One sample of the container's memory and CPU throttling; None when it is gone."""

        def read() -> Usage | None:
            try:
                stats = self.client.api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
            return usage_from_stats(stats)

        try:
            return await self._run(read, timeout=10)
        except DockerError:
            return None

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        def ls() -> list[ContainerInfo]:
            found = self.client.api.containers(all=True, filters={"label": docker_filter(labels)})
            return [
                ContainerInfo(
                    id=str(c["Id"]),
                    name=str((c.get("Names") or ["?"])[0]).lstrip("/"),
                    status=str(c.get("State", "")),
                    labels=dict(c.get("Labels") or {}),
                )
                for c in found
            ]

        return await self._run(ls)

    def stream_logs(
        self, container_id: str, on_line: Callable[[str], None], *, tail: int | None = None
    ) -> Callable[[], None]:
        """`on_line` on the loop for each output line (from the last `tail`); returns a stop."""

        def open_stream() -> docker_logs.ByteStream:
            # A client of its own: no read timeout, a container may be quiet for hours.
            stream: docker_logs.ByteStream = _api_client(timeout=None).logs(
                container_id, stream=True, follow=True, tail="all" if tail is None else tail
            )
            return stream

        return docker_logs.follow(
            container_id, on_line, open_stream, tail=tail, log_files=self._log_files
        )

    # -- events ---------------------------------------------------------------------------

    def watch_events(
        self,
        labels: Mapping[str, str],
        on_event: Callable[[Event], None],
        on_connection: Callable[[bool], None],
    ) -> None:
        """Deliver container events (on the loop) until `stop_events`; reconnects on its own."""
        loop = asyncio.get_running_loop()
        filters = {"type": "container", "label": docker_filter(labels)}

        stop = self._events_stop = threading.Event()  # this watch's own

        def follow() -> None:
            since = int(time.time())
            connected: bool | None = None
            delays: Iterator[float] = EVENTS_BACKOFF.delays()
            while not stop.is_set():
                api: docker.APIClient | None = None
                try:
                    # A finite timeout for the ping; events() itself streams without one.
                    api = _api_client(timeout=10)
                    api.ping()
                    stream = api.events(since=since, filters=filters, decode=True)
                    self._events_stream = stream
                    if connected is not True:
                        connected = True
                        delays = EVENTS_BACKOFF.delays()  # a fresh outage starts soon again
                        loop.call_soon_threadsafe(on_connection, True)
                    for raw in stream:
                        since = int(raw.get("time", since))
                        loop.call_soon_threadsafe(on_event, event_from_raw(raw))
                except Exception as exc:  # engine gone or restarting: report, wait, reconnect
                    log.debug("event stream: %s", exc)
                finally:
                    if api is not None:
                        api.close()
                if stop.is_set():
                    break
                if connected is not False:
                    connected = False
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(on_connection, False)
                stop.wait(next(delays, EVENTS_BACKOFF.cap))

        self._events_thread = threading.Thread(target=follow, name="emu-events", daemon=True)
        self._events_thread.start()

    def stop_events(self) -> None:
        self._events_stop.set()
        stream = self._events_stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        # Not joined: this may run on the loop. The thread is a daemon and ends with its stream.
        self._events_thread = None


def _api_client(timeout: int | None) -> docker.APIClient:
    """A client of its own for a long call, so that it never holds up the shared one."""
    return docker.APIClient(timeout=timeout, **docker.utils.kwargs_from_env())  # type: ignore[arg-type]


def context_files(context: Path, ignore: list[str], dockerfile: str) -> list[str]:
    """The files of `context` that `docker build` would send, given .dockerignore's patterns
    (relative to it): the SDK's own rule, so that a cache key made from them matches the build."""
    return sorted(build_utils.exclude_paths(str(context), ignore, dockerfile=dockerfile))
