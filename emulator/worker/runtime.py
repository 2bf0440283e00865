"""The Workers runtime process: Node.js running js/runner.mjs, which bundles the generated entry
with esbuild and serves it with Miniflare (workerd) on the public port.

The runner is tied to emu by its stdin: when emu exits, it stops workerd and exits. Its process
group is also registered with emu's reaper, which kills it when emu dies without cleaning up
(kill -9), so no workerd, node or container outlives emu.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runs.live import group_alive
from ..runs.reaper import Reaper
from .health import exit_text
from .project import WorkerProject, entry_module, unexported_class
from .state import state_folder
from .toolchain import CONTAINERS_PACKAGE, NodeInfo

RUNNER = Path(__file__).resolve().parent / "js" / "runner.mjs"
BUNDLE_NAME = "__emu_worker.mjs"
READY_TIMEOUT = 60.0  # bundling and starting workerd take a second or two
STOP_TIMEOUT = 10.0
MAP_TIMEOUT = 2.0  # for the runner to map an exception's stack
KEEP_LINES = 40  # of the runtime's output, for the message when it fails to start


@dataclass(frozen=True)
class RuntimeOptions:
    """`wrangler dev`'s settings that emu takes: `--var`, `--persist-to` (default: the config's
    folder's `.wrangler/state`, as wrangler's), `--no-persist` (a folder of this run's, gone when
    it ends: a clean start), `--inspector-port`, `--test-scheduled`; and emu's own
    `--request-timeout` (seconds; None: none, as on the platform)."""

    vars: Mapping[str, str] = field(default_factory=dict)
    persist: bool = True
    persist_to: Path | None = None
    inspector_port: int | None = None
    test_scheduled: bool = False
    request_timeout: float | None = None
    # Other Workers run beside this one (`--extra-worker`, as `wrangler dev -c A -c B`), reached
    # through service bindings; emu supplies no containers to them.
    extra_workers: tuple[Path, ...] = ()
    # The project's own @cloudflare/containers where Node would not find it from the Worker
    # (a `file:` or `link:` spec that no node_modules holds); else None.
    containers_dir: Path | None = None


class WorkerError(Exception):
    """The Worker cannot run. `exit_code`: 2 for a Worker that does not bundle, else 1."""

    exit_code = 1


class BundleError(WorkerError):
    exit_code = 2


class ConfigProblem(WorkerError):
    """wrangler's own validation refused the config; its message names the field."""

    exit_code = 2


@dataclass(frozen=True)
class BundleProblem:
    text: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    line_text: str | None = None

    def describe(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        head = f"{where}: {self.text}" if where else self.text
        return head + (f"\n    {self.line_text.strip()}" if self.line_text else "")


class WorkerRuntime:
    """One runner process: its Miniflare starts workerd again when workerd dies; when the
    runner itself dies, WorkerMode starts another (emulator/worker/mode.py)."""

    def __init__(
        self,
        project: WorkerProject,
        node: NodeInfo,
        modules_dir: Path,
        *,
        host: str,
        port: int,
        session: str,
        out: Callable[[str, str], None],
        reaper: Reaper | None = None,
        options: RuntimeOptions | None = None,
        cockpit: Mapping[str, Any] | None = None,
        on_down: Callable[[str, bool], None] | None = None,
        on_up: Callable[[], None] | None = None,
    ) -> None:
        """`on_down(how, gone)` once it served and then died: `how` it ended ("workerd was
        killed by SIGKILL"), and whether the runner is `gone` too (else Miniflare starts workerd
        again by itself, and `on_up` follows)."""
        self.project = project
        self.options = options or RuntimeOptions()
        self.inspector_url: str | None = None
        self.node = node
        self.modules_dir = modules_dir
        self.host = host
        self.port = port
        self.session = session
        self._out = out
        self._reaper = reaper
        self._cockpit = dict(cockpit or {})  # wrapWorker's options: feed, debugHeaders, ...
        self._on_down = on_down
        self._on_up = on_up
        self._dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._mapping: dict[int, asyncio.Future[str]] = {}  # map_stack calls, by id
        self._recent: list[str] = []
        self._stopping = False
        self.url: str | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self, front_url: str, token: str) -> str:
        """Bundle and serve; return the public URL. Raises BundleError, WorkerError."""
        await self.bundle(front_url, token)
        self._send({"op": "serve"})
        ready = await self._next("ready", "start_error")
        if ready["t"] == "start_error":
            raise WorkerError(self._start_failure(str(ready.get("message", ""))))
        url = str(ready["url"]).rstrip("/")
        self.url = url
        self.inspector_url = ready.get("inspector")
        return url

    async def bundle(self, front_url: str, token: str) -> list[dict[str, str]]:
        """Translate and bundle (the runner then waits for `serve`): the modules workerd gets,
        the bundle first, as {"type", "path"}. Raises BundleError, ConfigProblem, WorkerError."""
        self._dir = Path(tempfile.mkdtemp(prefix=f"emu-worker-{self.session[:6]}-"))
        entry = self._dir / "entry.mjs"
        entry.write_text(
            entry_module(
                self.project,
                front_url,
                token,
                public_only=not _loopback(self.host),
                test_scheduled=self.options.test_scheduled,
                cockpit=self._cockpit,
            )
        )
        settings = self._settings(entry)
        settings_path = self._dir / "settings.json"
        settings_path.write_text(json.dumps(settings))
        self._proc = await asyncio.create_subprocess_exec(
            self.node.node,
            str(RUNNER),
            str(settings_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # wrangler's own lines (its info about .dev.vars, its warnings) would interleave
            # with the protocol; emu says what matters itself.
            env={**os.environ, "WRANGLER_LOG": "error", "WRANGLER_SEND_METRICS": "false"},
            # Its own process group: Ctrl-C is emu's to handle, and the reaper can kill node and
            # workerd together.
            start_new_session=True,
            limit=1 << 20,
        )
        if self._reaper is not None:
            self._reaper.watch_group(self._proc.pid)
        self._reader = asyncio.create_task(self._read_stdout(), name="worker stdout")
        self._stderr = asyncio.create_task(self._read_stderr(), name="worker stderr")
        first = await self._next("bundled", "bundle_error", "config_error")
        if first["t"] == "config_error":
            raise ConfigProblem(_config_problem(str(first.get("message", ""))))
        if first["t"] == "bundled":
            problem = unexported_class(self.project, list(first.get("exports") or []))
            if problem is not None:
                raise ConfigProblem(str(problem))
        if first["t"] == "bundle_error":
            problems = [_problem(e) for e in first["errors"]]
            raise BundleError(
                "the Worker does not bundle:\n" + "\n".join(p.describe() for p in problems)
            )
        return list(first.get("modules") or [])

    def _settings(self, entry: Path) -> dict[str, Any]:
        assert self._dir is not None
        opts = self.options
        node_paths = [str(self.modules_dir / "node_modules")]
        if opts.containers_dir is not None:
            # A `file:`/`link:` copy that no node_modules holds: linked where esbuild resolves
            # it as a package (its exports and conditions), ahead of emu's cache.
            link = self._dir / "node_modules" / CONTAINERS_PACKAGE
            link.parent.mkdir(parents=True)
            link.symlink_to(opts.containers_dir, target_is_directory=True)
            node_paths.insert(0, str(self._dir / "node_modules"))
        persist = state_folder(self.project.config_path, opts.persist, opts.persist_to)
        if persist is None:  # --no-persist: this run's own
            persist = self._dir / "state"
        return {
            "configPath": str(self.project.config_path),
            "env": self.project.env,
            "entry": str(entry),
            "outfile": str(self._dir / BUNDLE_NAME),
            "outdir": str(self._dir),
            "moduleName": BUNDLE_NAME,
            "projectDir": str(self.project.project_dir),
            "modulesDir": str(self.modules_dir),
            # The project's own node_modules come first; emu's cache fills in what it lacks.
            "nodePaths": node_paths,
            "alias": {},
            "vars": dict(opts.vars),
            "persistTo": str(persist),
            "inspectorPort": opts.inspector_port,
            "testScheduled": opts.test_scheduled,
            "extraWorkers": [str(p.resolve()) for p in opts.extra_workers],
            "host": self.host,
            "port": self.port,
        }

    def _start_failure(self, message: str) -> str:
        if "EADDRINUSE" in message or "Address already in use" in " ".join(self._recent):
            return f"cannot listen on {self.host}:{self.port}: the port is taken"
        uncaught = [i for i, line in enumerate(self._recent) if "Uncaught" in line]
        if uncaught:
            stack = "\n".join(self._recent[uncaught[-1] :])
            return f"the Worker threw while loading:\n{stack}"
        return f"the Workers runtime failed to start: {message}"

    async def map_stack(self, text: str) -> str:
        """A stack with the bundle's lines turned into the user's files and lines, as the log
        shows them (the runner has the bundle's source map); `text` itself when it cannot."""
        key = len(self._mapping) + 1
        while key in self._mapping:
            key += 1
        future = self._mapping[key] = asyncio.get_running_loop().create_future()
        try:
            self._send({"op": "map", "id": key, "text": text})
            return await asyncio.wait_for(future, MAP_TIMEOUT)
        except TimeoutError:
            return text
        finally:
            self._mapping.pop(key, None)

    async def reload(self) -> None:
        """Bundle again and hand the new code to workerd (--watch)."""
        self._send({"op": "reload"})

    async def stop(self) -> None:
        """Stop workerd and node (bounded)."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, OSError):
                if proc.stdin is not None:
                    proc.stdin.close()  # the runner stops on end of input
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc is not None:
            # workerd may linger a moment after node; the group goes with it, and is waited
            # for: the next emu on this state folder must not meet its SQLite locks.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if not await group_gone(proc.pid, STOP_TIMEOUT):
                self._out("emu", f"the Workers runtime's processes (group {proc.pid}) linger")
        for task in (self._reader, self._stderr):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- the runner's output ------------------------------------------------------------------

    def _send(self, command: dict[str, Any]) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and proc.returncode is None:
            proc.stdin.write(json.dumps(command).encode() + b"\n")

    async def _next(self, *kinds: str) -> dict[str, Any]:
        """The next message of one of these kinds (log lines are relayed meanwhile)."""
        while True:
            try:
                message = await asyncio.wait_for(self._messages.get(), READY_TIMEOUT)
            except TimeoutError:
                raise WorkerError(
                    f"the Workers runtime did not get ready within {READY_TIMEOUT:g} s"
                ) from None
            if message["t"] in kinds:
                return message
            if message["t"] == "exit":
                tail = "\n".join(self._recent[-KEEP_LINES:])
                raise WorkerError(
                    f"the Workers runtime exited with code {message['code']}"
                    + (f":\n{tail}" if tail else "")
                )

    def tail(self, count: int) -> list[str]:
        """The last lines the runtime printed."""
        return self._recent[-count:] if count > 0 else []

    def _line(self, line: str) -> None:
        self._recent = [*self._recent[-KEEP_LINES:], line]
        self._out("worker", line)

    async def _read_stdout(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        async for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            try:
                message = json.loads(text)
            except ValueError:
                self._line(text)
                continue
            kind = message.get("t")
            if kind == "log":
                self._line(str(message["line"]))
            elif kind == "notice":
                self._out("emu", str(message["line"]))
            elif kind == "bundle_error" and not message.get("fatal"):
                problems = [_problem(e).describe() for e in message["errors"]]
                self._out("watch", "the Worker does not bundle; the last good one keeps serving")
                for problem in problems:
                    self._out("watch", problem)
            elif kind == "reloaded":
                self._out("watch", "Worker bundled again and reloaded")
            elif kind == "mapped":
                future = self._mapping.get(int(message.get("id", 0)))
                if future is not None and not future.done():
                    future.set_result(str(message.get("text", "")))
            elif kind == "reload_error":
                self._out("watch", f"reloading the Worker failed: {message.get('message')}")
            elif kind == "runtime_exit" and self._on_down is not None:
                how = exit_text(message.get("code"), message.get("signal"))
                self._on_down(f"workerd {how}", False)
            elif kind == "runtime_back" and self._on_up is not None:
                self._on_up()
            else:
                self._messages.put_nowait(message)
        code = await proc.wait()
        if not self._stopping:
            if self.url is not None and self._on_down is not None:
                self._on_down(f"its Node.js process {exit_text(code)}", True)
            else:
                self._out("emu", f"the Workers runtime exited with code {code}")
        self._messages.put_nowait({"t": "exit", "code": code})

    async def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        async for raw in proc.stderr:
            self._line(raw.decode(errors="replace").rstrip("\n"))


async def group_gone(pgid: int, timeout: float) -> bool:
    """Whether every process of the group has ended (zombies count as ended) within `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while await asyncio.to_thread(group_alive, pgid):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)  # polling the group's end, with the deadline above
    return True


IMAGE_REFUSED = "does not appear to be a valid path to a Dockerfile, or a valid image registry"


def _config_problem(message: str) -> str:
    """wrangler's own refusal, with what emu adds where its words alone leave the user stuck."""
    message = message.strip()
    if IMAGE_REFUSED in message:
        message += (
            "\n  (worker mode validates the config as wrangler does: name an image with its "
            "registry, e.g. docker.io/library/nginx:1.22, which emu finds locally as nginx:1.22)"
        )
    return message


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it is reachable from elsewhere


def _problem(data: dict[str, Any]) -> BundleProblem:
    return BundleProblem(
        text=str(data.get("text", "")),
        file=data.get("file"),
        line=data.get("line"),
        column=data.get("column"),
        line_text=data.get("lineText"),
    )
