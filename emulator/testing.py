"""Running emu from synchronous code (tests, scripts, benchmarks): an `Emulator` on a loop in a
thread of its own (`RunningEmulator`), `emu up` as a child process (`EmuProcess`), and
`wait_for`, which polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .blocking import MeasuredLoop, SlowCallbacks
from .config import Config, Overrides, load_config
from .engine.choice import Engine
from .instances.events import LifecycleEvent
from .options import EmulatorOptions
from .runs.sweep import sweep_session
from .session import Emulator

_log = logging.getLogger("emu")

T = TypeVar("T")


class RunningEmulator:
    """`emu up` in a background thread. Use as a context manager, or call `stop()`.

    >>> with RunningEmulator.from_path("wrangler.jsonc", Overrides(sleep_after="2s")) as emu:
    ...     requests.get(emu.url + "/health")
    """

    def __init__(
        self,
        config: Config,
        options: EmulatorOptions | None = None,
        *,
        start_timeout: float = 900.0,
        check_blocking: float | None = None,
    ) -> None:
        """`options` are the `Emulator`'s. The Worker runs in workerd, as `emu up` runs it,
        unless `options.worker` is False (`--no-worker`, emu's own getRandom-style routing);
        `worker=True` fails without a Node.js that runs it.

        With `check_blocking` (seconds), the loop runs in asyncio's debug mode and every
        callback that held it longer is recorded in `slow_callbacks`: a blocking call on the
        loop shows up there. Debug mode also refuses loop calls from other threads."""
        self._loop = MeasuredLoop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.name = f"emu-loop-{id(self):x}"
        self.slow_callbacks: list[str] = []
        self._slow_handler: logging.Handler | None = None
        if check_blocking is not None:
            self._loop.set_debug(True)
            # asyncio reports by the wall clock; SlowCallbacks takes off the waits for a CPU.
            self._loop.slow_callback_duration = check_blocking
            self._slow_handler = SlowCallbacks(
                self._loop, self._thread.name, check_blocking, self.slow_callbacks
            )
            logging.getLogger("asyncio").addHandler(self._slow_handler)
        self._thread.start()
        self._stopped = False
        try:
            # Made here, not on the loop: finding Node.js and reading the Worker's source block.
            self.emulator = Emulator(config, options)
            mode = self.emulator.mode
            if self.emulator.options.worker and not mode.worker:
                raise RuntimeError(f"worker mode: {mode.reason}; pass worker=False for --no-worker")
            self.call(self.emulator.start(), start_timeout)
        except BaseException:
            self._close_loop()
            raise

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        overrides: Overrides | None = None,
        options: EmulatorOptions | None = None,
        *,
        start_timeout: float = 900.0,
        check_blocking: float | None = None,
    ) -> RunningEmulator:
        """The config at `path` with `overrides` (port 0, a free one, unless given); its
        `reload` (for --watch) reads it again with the same overrides, unless `options` has one."""
        overrides = overrides or Overrides()
        if overrides.port is None:
            overrides = dataclasses.replace(overrides, port=0)
        config = load_config(Path(path), overrides)
        options = options or EmulatorOptions()
        if options.reload is None:
            reload = functools.partial(load_config, config.path, overrides)
            options = dataclasses.replace(options, reload=reload)
        return cls(config, options, start_timeout=start_timeout, check_blocking=check_blocking)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    @property
    def url(self) -> str:
        return self.emulator.url

    def status(self) -> dict[str, Any]:
        """`/_emu/status` (an `instances.status.Status`), open to any key for tests."""

        async def snap() -> dict[str, Any]:
            return dict[str, Any](self.emulator.status())

        return self.call(snap())

    def events(self) -> list[LifecycleEvent]:
        async def snap() -> list[LifecycleEvent]:
            return list(self.emulator.events)

        return self.call(snap())

    def instances(self, class_name: str | None = None) -> dict[str, dict[str, Any]]:
        """name -> instance snapshot, for one class (default: the first)."""
        classes = self.status()["classes"]
        cls = next(c for c in classes if class_name in (None, c["class_name"]))
        return {i["name"]: i for i in cls["instances"]}

    # -- the cockpit: faults on demand, output, the request feed --------------------------------

    def _act(self, name: str, action: str, class_name: str | None, sig: str | None = None) -> Any:
        return self.call(self.emulator.cockpit.act(class_name, name, action, sig), timeout=120)

    def kill(self, name: str, class_name: str | None = None) -> dict[str, Any]:
        """SIGKILL the instance's container, as a crash would: it becomes `stopped_with_code`
        with an `exited` event, and the next request starts a fresh one. Returns its snapshot.
        The class is the only one, unless named. EmuHTTPError (409) when nothing runs."""
        result: dict[str, Any] = self._act(name, "kill", class_name)
        return result

    def signal(self, name: str, sig: int | str, class_name: str | None = None) -> None:
        """Send a signal (a number or a name like "SIGUSR1") to the instance's container."""
        self._act(name, "signal", class_name, str(sig))

    def pause(self, name: str, class_name: str | None = None) -> None:
        """Freeze the instance's container (`docker pause`): requests to it hang until
        `unpause`, which is how to test a client's timeouts. An emu extra: the platform has no
        such state."""
        self._act(name, "pause", class_name)

    def unpause(self, name: str, class_name: str | None = None) -> None:
        self._act(name, "unpause", class_name)

    def start_instance(self, name: str, class_name: str | None = None) -> dict[str, Any]:
        """Start it (prewarm) and return once it is healthy."""
        result: dict[str, Any] = self._act(name, "start", class_name)
        return result

    def stop_instance(self, name: str, class_name: str | None = None) -> None:
        """SIGTERM, then SIGKILL after --stop-grace; returns at once (see `wait_for`)."""
        self._act(name, "stop", class_name)

    def logs(self, name: str, class_name: str | None = None, tail: int | None = None) -> list[str]:
        """The instance's output lines: its container's, or those of the last one it had."""

        async def read() -> list[str]:
            cockpit = self.emulator.cockpit
            lines = await cockpit.logs(cockpit.find(class_name, name), tail=tail)
            return [line for _, line in lines]

        return self.call(read())

    def wait_for(
        self, name: str, state: str, timeout: float = 30.0, class_name: str | None = None
    ) -> dict[str, Any]:
        """Wait until the instance is in `state` ("healthy", "stopped_with_code", ...); returns
        its snapshot. WaitTimeout (an AssertionError) when it is not within `timeout` s."""

        def now() -> dict[str, Any] | None:
            inst = self.instances(class_name).get(name)
            return inst if inst is not None and inst["state"] == state else None

        return wait_for(now, timeout, f"{name} to be {state}")

    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 requests the front answered, oldest first: time, method, path, class,
        instance, status, duration_ms, cold (it waited for a start), random (getRandom picked the
        instance). Empty with `request_feed=False`."""

        async def read() -> list[dict[str, Any]]:
            feed = self.emulator.feed
            return feed.records() if feed is not None else []

        return self.call(read())

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.call(self.emulator.stop(), timeout=120)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        if self._slow_handler is not None:
            logging.getLogger("asyncio").removeHandler(self._slow_handler)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class WaitTimeout(AssertionError):
    """A condition `wait_for` polled did not come true in time (in a test: a failure)."""


def descendants(root: int) -> list[int]:
    """The processes `root` started, and theirs, from /proc (Linux): what a stopped `emu up`
    must not leave running (node, workerd, the reaper)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # gone meanwhile
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll `check` until it returns something truthy, and return that; WaitTimeout after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)  # polling interval, not a wait for an outcome


# Below Linux's default range of ephemeral ports (32768-60999): the kernel gives those to every
# outgoing connection, so a port picked there and bound a moment later may have been taken by
# one meanwhile (a test run opens thousands of connections a second beside an `emu up` starting).
PICK_RANGE = (20000, 32768)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for an `emu up --port`), picked at random below the
    ephemeral range, so that no outgoing connection takes it before emu binds it."""
    for _ in range(100):
        port = random.randrange(*PICK_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # that range full: any free port
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmuProcessError(AssertionError):
    """`emu up` did not start, or did not stop cleanly; `str()` is the line to print."""


# Lines of emu's output that mean something went wrong inside it, even if every client got a 200.
PROBLEM_MARKERS = (
    "Traceback",
    "Error handling request",
    "Exception in callback",
    "exception was never retrieved",
    "Unclosed client session",
    "Unclosed connection",
    "start_failed",
    "failed:",
)
STOP_TIMEOUT = 90.0  # SIGINT to exit of `emu up`; it stops its instances with a 10 s grace


class EmuProcess:
    """`python -m emulator up -c CONFIG --port 0 FLAGS...` as a user runs it, in a session of
    its own (so that a Ctrl-C of the caller reaches only the caller, whose `finally` then stops
    emu with one SIGINT).

    `start()` returns once it serves. Its output is kept (the last lines), counted, and
    scanned for PROBLEM_MARKERS. Without `worker`, it runs `--no-worker`: emu's own routing.
    """

    def __init__(
        self,
        config: Path,
        *flags: str,
        start_timeout: float = 900.0,
        worker: bool = False,
        wait_serving: bool = True,
    ) -> None:
        self.config = config
        self.wait_serving = wait_serving  # False: return at "listening on", before the builds
        self.flags = flags if worker else ("--no-worker", *flags)
        self.start_timeout = start_timeout
        self.url = ""
        self.project = ""
        self.session = ""
        self.lines: collections.deque[str] = collections.deque(maxlen=2000)
        self.line_count = 0  # all lines read so far
        self.problems: list[str] = []
        self.returncode: int | None = None
        self._listening = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> EmuProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            print("emu's last lines:", *list(self.lines)[-15:], sep="\n  ", file=sys.stderr)
        leftovers = self.stop()
        if leftovers:
            message = f"emu left these behind (now removed): {', '.join(leftovers)}"
            if exc_type is None:
                raise EmuProcessError(message)
            print(message, file=sys.stderr)

    def start(self) -> EmuProcess:
        """Start it and wait until it serves; on failure it is stopped again."""
        cmd = [sys.executable, "-m", "emulator", "up", "-c", str(self.config), "--port", "0"]
        self._proc = subprocess.Popen(
            [*cmd, *self.flags],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="emu-output", daemon=True)
        self._reader.start()
        try:
            deadline = time.monotonic() + self.start_timeout
            while not self._listening.wait(0.1):
                if self._proc.poll() is not None:
                    self.wait(10)
                    raise EmuProcessError(f"emu up exited with {self.returncode}: {self.tail()}")
                if time.monotonic() > deadline:
                    raise EmuProcessError(f"emu up did not listen within {self.start_timeout:g} s")
            status = self.status()
            while self.wait_serving and not status["serving"]:  # images built, prewarm done
                if self._proc.poll() is not None:
                    self.wait(10)
                    raise EmuProcessError(f"emu up exited with {self.returncode}: {self.tail()}")
                if time.monotonic() > deadline:
                    raise EmuProcessError(f"emu up did not serve within {self.start_timeout:g} s")
                time.sleep(0.05)
                status = self.status()
        except BaseException:
            self.stop()
            raise
        self.project = str(status["project"])
        self.session = str(status["session"])
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.rstrip("\n")
            self.lines.append(line)
            self.line_count += 1
            if any(marker in line for marker in PROBLEM_MARKERS):
                self.problems.append(line)
            if not self._listening.is_set() and "listening on http://" in line:
                if line.startswith("{"):  # --json-logs
                    line = str(json.loads(line).get("line", ""))
                self.url = line.rsplit("listening on ", 1)[1].strip()
                self._listening.set()

    def tail(self, n: int = 8) -> str:
        return " | ".join(list(self.lines)[-n:])

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_emu/status", timeout=10) as resp:
            data: dict[str, Any] = json.load(resp)
        return data

    def instances(self) -> dict[str, dict[str, Any]]:
        """name -> snapshot, for the first class."""
        return {i["name"]: i for i in self.status()["classes"][0]["instances"]}

    def send_signal(self, sig: int) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the exit and the last of its output; returns the exit code."""
        assert self._proc is not None
        self.returncode = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=10)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL: emu gets no chance to clean up (what a crash leaves)."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self.wait(30)

    def stop(self) -> list[str]:
        """SIGINT, wait (a second SIGINT forces); then remove anything of its session that is
        still there. Returns what was left, empty when emu cleaned up after itself."""
        proc = self._proc
        if proc is None:
            return []
        self.send_signal(signal.SIGINT)
        try:
            self.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGINT)  # the second Ctrl-C: emu removes all and exits
            try:
                self.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None
        return asyncio.run(_sweep(self.session, self._engine())) if self.session else []

    def _engine(self) -> Engine:
        """As its `--engine` flag says: a Swarm's leftovers are services."""
        flags = list(self.flags)
        for i, flag in enumerate(flags):
            if flag.startswith("--engine="):
                return Engine.detect(flag.partition("=")[2])
            if flag == "--engine" and i + 1 < len(flags):
                return Engine.detect(flags[i + 1])
        return Engine.detect()


async def _sweep(session: str, engine: Engine) -> list[str]:
    async with engine.backend(start_timeout=20.0, stop_grace=10.0) as docker:
        return await sweep_session(docker, session)
