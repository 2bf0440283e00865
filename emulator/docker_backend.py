"""The one module that talks to the Docker engine.

The Docker SDK is synchronous. Every call runs on a small dedicated thread pool and is bounded
twice: by the SDK's own HTTP timeout and by `asyncio.wait_for` around it. Cancelling a coroutine
does not stop its thread, so the HTTP timeout is what really frees the thread.
The event stream is the one long-lived call; it gets a thread of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import docker
import docker.errors
import requests.exceptions
from docker.utils import build as build_utils

log = logging.getLogger("emu.docker")

T = TypeVar("T")

MANAGED_LABEL = "emu.managed"

# Connection problems that mean "the engine is not there right now", as opposed to an API error.
_UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)


class DockerError(Exception):
    """A Docker call failed; the message is short enough to show to a user."""


class DockerUnavailable(DockerError):
    """The engine does not answer."""


class NameInUse(DockerError):
    """A container of that name already exists."""


class BuildError(DockerError):
    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class EngineInfo:
    version: str
    storage_driver: str
    backing_filesystem: str
    cgroup_version: str
    disk_quota_supported: bool


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: Mapping[str, str]
    network: str
    environment: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] | None = None
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    disk_bytes: int | None = None  # only passed when the engine can enforce it
    hostname: str | None = None


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # created, running, exited, ...
    labels: Mapping[str, str]
    exit_code: int | None = None
    oom_killed: bool = False
    ip: str | None = None

    @property
    def alive(self) -> bool:
        return self.status in ("running", "paused", "restarting")


@dataclass(frozen=True)
class Usage:
    """What a running container uses, from one `docker stats` sample."""

    memory_bytes: int  # in use, without the inactive file cache (as `docker stats` counts)
    cpu_throttled_s: float  # time the CPU limit held it back, since it started


@dataclass(frozen=True)
class Event:
    """A container event: `action` is "start", "die", "oom", "destroy", ..."""

    action: str
    container_id: str
    labels: Mapping[str, str]
    exit_code: int | None


def _short(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


class DockerBackend:
    def __init__(self, *, max_workers: int = 8, call_timeout: float = 30.0) -> None:
        self._call_timeout = call_timeout
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="emu-docker")
        self._client: docker.DockerClient | None = None
        self._events_stop = threading.Event()
        self._events_thread: threading.Thread | None = None
        self._events_stream: Any = None

    # -- plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.from_env(timeout=int(self._call_timeout))
        return self._client

    async def _run(
        self, fn: Callable[[], T], timeout: float | None = None, *, long: bool = False
    ) -> T:
        """`long` calls (a build, a pull) get a daemon thread of their own instead of the
        pool: they must not hold up the short calls, nor the process's exit on Ctrl-C."""
        loop = asyncio.get_running_loop()
        limit = self._call_timeout + 5 if timeout is None else timeout
        work = _in_daemon_thread(loop, fn) if long else loop.run_in_executor(self._pool, fn)
        try:
            return await asyncio.wait_for(work, limit)
        except TimeoutError as exc:
            raise DockerUnavailable(
                f"the Docker engine did not answer within {limit:.0f} s"
            ) from exc
        except _UNREACHABLE as exc:
            raise DockerUnavailable(f"cannot reach the Docker engine: {_short(exc)}") from exc
        except docker.errors.DockerException as exc:
            if isinstance(exc, docker.errors.APIError) or not _looks_unreachable(exc):
                raise DockerError(_short(exc)) from exc
            raise DockerUnavailable(f"cannot reach the Docker engine: {_short(exc)}") from exc

    def close(self) -> None:
        self.stop_events()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    # -- engine ---------------------------------------------------------------------------

    async def connect(self) -> EngineInfo:
        def info() -> EngineInfo:
            data = self.client.info()
            status = dict(data.get("DriverStatus") or [])
            driver = str(data.get("Driver", ""))
            backing = str(status.get("Backing Filesystem", ""))
            # overlay2 enforces `size` only on xfs mounted with pquota; these always can.
            quota = driver in {"btrfs", "zfs", "devicemapper"} or (
                driver == "overlay2" and backing == "xfs"
            )
            return EngineInfo(
                version=str(data.get("ServerVersion", "")),
                storage_driver=driver,
                backing_filesystem=backing,
                cgroup_version=str(data.get("CgroupVersion", "1")),
                disk_quota_supported=quota,
            )

        return await self._run(info, timeout=15)

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
            for image in self.client.images.list(filters={"label": _label_filters(labels)}):
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
            nets = self.client.networks.list(filters={"label": _label_filters(labels)})
            return [(str(n.id), str(n.name), dict(n.attrs.get("Labels") or {})) for n in nets]

        return await self._run(ls)

    # -- containers -----------------------------------------------------------------------

    async def run_container(self, spec: ContainerSpec) -> ContainerInfo:
        """Create (labelled) and start; on a failed start the container is removed."""

        def run() -> ContainerInfo:
            kwargs: dict[str, Any] = {
                "name": spec.name,
                "labels": dict(spec.labels),
                "environment": dict(spec.environment),
                "network": spec.network,
                "detach": True,
                "privileged": False,
                "hostname": spec.hostname,
            }
            if spec.entrypoint is not None:
                kwargs["entrypoint"] = list(spec.entrypoint)
            if spec.nano_cpus is not None:
                kwargs["nano_cpus"] = spec.nano_cpus
            if spec.memory_bytes is not None:
                kwargs["mem_limit"] = spec.memory_bytes
                kwargs["memswap_limit"] = spec.memory_bytes  # swap == memory: no swap
            if spec.disk_bytes is not None:
                kwargs["storage_opt"] = {"size": str(spec.disk_bytes)}
            try:
                container = self.client.containers.create(spec.image, **kwargs)
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    raise NameInUse(_short(exc)) from exc
                raise
            try:
                container.start()
                container.reload()
            except BaseException:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                raise
            return _info(container.attrs, spec.network)

        return await self._run(run)

    async def inspect(self, container_id: str, network: str | None = None) -> ContainerInfo | None:
        def get() -> ContainerInfo | None:
            try:
                attrs = self.client.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return None
            return _info(attrs, network)

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
        def tail() -> list[str]:
            try:
                raw = self.client.api.logs(container_id, tail=lines, stdout=True, stderr=True)
            except docker.errors.NotFound:
                return []
            return raw.decode("utf-8", "replace").splitlines()[-lines:]

        try:
            return await self._run(tail, timeout=10)
        except DockerError:
            return []

    async def usage(self, container_id: str) -> Usage | None:
        """One sample of the container's memory and CPU throttling; None when it is gone."""

        def read() -> Usage | None:
            try:
                stats = self.client.api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.NotFound:
                return None
            memory = stats.get("memory_stats") or {}
            if "usage" not in memory:  # not running (any more)
                return None
            detail = memory.get("stats") or {}
            cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))  # v1, v2
            cpu = (stats.get("cpu_stats") or {}).get("throttling_data") or {}
            return Usage(
                max(0, int(memory["usage"]) - int(cache)), cpu.get("throttled_time", 0) / 1e9
            )

        try:
            return await self._run(read, timeout=10)
        except DockerError:
            return None

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        def ls() -> list[ContainerInfo]:
            found = self.client.api.containers(all=True, filters={"label": _label_filters(labels)})
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

    def stream_logs(self, container_id: str, on_line: Callable[[str], None]) -> Callable[[], None]:
        """Follow a container's output, calling `on_line` on the loop for each line; returns a
        function that stops it.

        On a local engine (a unix socket) the stream is read on the loop itself, in large chunks:
        the SDK reads it a frame at a time in a thread, which under a line per request costs the
        proxy half its throughput in GIL hand-offs. Elsewhere, the SDK in a thread."""
        socket_path = _unix_socket()
        if socket_path is not None:
            task = asyncio.create_task(
                _follow_unix(socket_path, container_id, on_line), name=f"logs {container_id[:12]}"
            )

            def cancel() -> None:
                task.cancel()

            return cancel
        return self._stream_logs_thread(container_id, on_line)

    def _stream_logs_thread(
        self, container_id: str, on_line: Callable[[str], None]
    ) -> Callable[[], None]:
        """Lines are handed to the loop in batches: the thread only wakes the loop when the
        previous batch has been taken."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        holder: list[Any] = []
        pending: collections.deque[str] = collections.deque()
        scheduled = threading.Event()

        def drain() -> None:
            scheduled.clear()
            while pending:
                on_line(pending.popleft())

        def follow() -> None:
            try:
                # A client of its own: no read timeout, a container may be quiet for hours.
                api = _api_client(timeout=None)
                stream = api.logs(container_id, stream=True, follow=True)
                holder.append(stream)
                buf = b""
                for chunk in stream:
                    if stop.is_set():
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    pending.extend(line.decode("utf-8", "replace") for line in lines)
                    if lines and not scheduled.is_set():
                        scheduled.set()
                        loop.call_soon_threadsafe(drain)
            except Exception:  # the container went away or the engine did: the stream just ends
                return

        threading.Thread(target=follow, name=f"emu-logs-{container_id[:12]}", daemon=True).start()

        def cancel() -> None:
            stop.set()
            for stream in holder:
                with contextlib.suppress(Exception):
                    stream.close()

        return cancel

    # -- events ---------------------------------------------------------------------------

    def watch_events(
        self,
        labels: Mapping[str, str],
        on_event: Callable[[Event], None],
        on_connection: Callable[[bool], None],
    ) -> None:
        """Deliver container events (on the loop) until `stop_events`; reconnects on its own."""
        loop = asyncio.get_running_loop()
        filters = {"type": "container", "label": _label_filters(labels)}

        stop = self._events_stop = threading.Event()  # this watch's own

        def follow() -> None:
            since = int(time.time())
            connected: bool | None = None
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
                        loop.call_soon_threadsafe(on_connection, True)
                    for raw in stream:
                        since = int(raw.get("time", since))
                        actor = raw.get("Actor") or {}
                        attrs = actor.get("Attributes") or {}
                        code = attrs.get("exitCode")
                        event = Event(
                            action=str(raw.get("Action", raw.get("status", ""))),
                            container_id=str(actor.get("ID", raw.get("id", ""))),
                            labels=attrs,
                            exit_code=int(code) if code is not None else None,
                        )
                        loop.call_soon_threadsafe(on_event, event)
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
                stop.wait(0.5)

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


def _in_daemon_thread(loop: asyncio.AbstractEventLoop, fn: Callable[[], T]) -> asyncio.Future[T]:
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # cancelled, by a timeout or Ctrl-C
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        try:
            result = fn()
        except BaseException as exc:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
                loop.call_soon_threadsafe(settle, None, exc)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=target, name="emu-docker-long", daemon=True).start()
    return future


def _unix_socket() -> str | None:
    """The engine's unix socket, when DOCKER_HOST names one or is unset."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return None


async def _follow_unix(socket_path: str, container_id: str, on_line: Callable[[str], None]) -> None:
    """Read a container's multiplexed log stream (8-byte frame headers: stream, 0, 0, 0, size)
    and hand on whole lines. Ends when the container's stream ends or the engine goes away."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=socket_path), timeout=timeout
            ) as session,
            session.get(
                f"http://docker/containers/{container_id}/logs",
                params={"follow": "1", "stdout": "1", "stderr": "1"},
            ) as resp,
        ):
            if resp.status != 200:
                return
            buf = b""
            text = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                at = 0
                while len(buf) - at >= 8:
                    size = int.from_bytes(buf[at + 4 : at + 8], "big")
                    if len(buf) - at - 8 < size:
                        break
                    text += buf[at + 8 : at + 8 + size]
                    at += 8 + size
                buf = buf[at:]
                *lines, text = text.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", "replace"))
    except (aiohttp.ClientError, OSError):
        return  # the engine went away: the stream just ends


def _api_client(timeout: int | None) -> docker.APIClient:
    """A client of its own for a long call, so that it never holds up the shared one."""
    return docker.APIClient(timeout=timeout, **docker.utils.kwargs_from_env())  # type: ignore[arg-type]


def _looks_unreachable(exc: BaseException) -> bool:
    text = str(exc)
    return (
        "Connection" in text or "No such file" in text or "Error while fetching server API" in text
    )


def _label_filters(labels: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()]


def _info(attrs: Mapping[str, Any], network: str | None) -> ContainerInfo:
    state = attrs.get("State") or {}
    nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    ip: str | None = None
    if network and network in nets:
        ip = nets[network].get("IPAddress") or None
    elif nets:
        ip = next(iter(nets.values())).get("IPAddress") or None
    status = str(state.get("Status", ""))
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        status=status,
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
        exit_code=int(state["ExitCode"]) if status in ("exited", "dead") else None,
        oom_killed=bool(state.get("OOMKilled", False)),
        ip=ip,
    )


@functools.cache
def _hash_file(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def context_digest(context: Path, dockerfile: Path, buildargs: Mapping[str, str]) -> str:
    """A hash of what `docker build` would send (honouring .dockerignore), plus the build args."""
    ignore = context / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        patterns = [
            line.strip()
            for line in ignore.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    rel_dockerfile = os.path.relpath(dockerfile, context)
    h = hashlib.sha256()
    h.update(rel_dockerfile.encode())
    for key in sorted(buildargs):
        h.update(f"\0arg {key}={buildargs[key]}".encode())
    for rel in sorted(build_utils.exclude_paths(str(context), patterns, dockerfile=rel_dockerfile)):
        full = context / rel
        try:
            st = full.lstat()
        except OSError:
            continue
        h.update(f"\0{rel}\0{st.st_mode:o}".encode())
        if full.is_symlink():
            h.update(os.readlink(full).encode())
        elif full.is_file():
            h.update(_hash_file(str(full), st.st_mtime_ns, st.st_size).encode())
    if not dockerfile.is_relative_to(context):
        h.update(dockerfile.read_bytes())
    return h.hexdigest()
