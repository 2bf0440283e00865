"""Runs submitted Python code in a child process with a time limit, a memory cap and capped output.

Each execution gets its own session (so its own process group): on timeout, and after it ends,
the whole group is killed, which takes any processes the code started with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import BadRequest

# Runs first in the child: applies the address-space cap, then replaces itself with a fresh
# interpreter running the code file. The exec keeps the limit and the session, and makes the code
# run exactly as `python -I main.py` would (tracebacks show no wrapper frames). Using a wrapper
# instead of `preexec_fn` because preexec_fn is unsafe in a process that has threads.
_BOOTSTRAP = (
    "import os, resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "if limit > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "os.execv(sys.executable, [sys.executable, '-I', sys.argv[2]])\n"
)

# After the main process exits, how long to wait for its output pipes to close. Only a process
# that left the group (setsid) can keep them open past the group kill.
_DRAIN_TIMEOUT_S = 2.0
_FIELDS = ("code", "timeout_s", "stdin")


@dataclass(frozen=True)
class ExecRequest:
    code: str
    timeout_s: float
    stdin: str | None = None


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int  # negative: killed by that signal (-9 after a timeout)
    timed_out: bool
    duration_ms: float
    truncated: bool  # stdout or stderr was cut at the output limit

    def to_json(self) -> dict[str, object]:
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration_ms": self.duration_ms,
            "truncated": self.truncated,
        }


def parse_request(body: bytes, max_timeout_s: float) -> ExecRequest:
    """Validate a POST /execute body; raise BadRequest saying what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(f"body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise BadRequest('body must be a JSON object like {"code": "print(1)", "timeout_s": 5}')
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field {unknown[0]!r}; allowed: {', '.join(_FIELDS)}")
    code = data.get("code")
    if not isinstance(code, str):
        raise BadRequest(f"field 'code' is required and must be a string, got {_kind(code)}")
    timeout = data.get("timeout_s")
    # bool is an int subclass, but `true` is surely a mistake.
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise BadRequest(
            f"field 'timeout_s' is required and must be a number, got {_kind(timeout)}"
        )
    if not (math.isfinite(timeout) and 0 < timeout <= max_timeout_s):
        raise BadRequest(f"field 'timeout_s' must be > 0 and <= {max_timeout_s:g}, got {timeout}")
    stdin = data.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise BadRequest(f"field 'stdin' must be a string when given, got {_kind(stdin)}")
    for name, text in (("code", code), ("stdin", stdin or "")):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # JSON allows lone surrogates like "\ud800"; UTF-8 does not
            raise BadRequest(f"field {name!r} is not valid Unicode (lone surrogate)") from None
    return ExecRequest(code=code, timeout_s=float(timeout), stdin=stdin)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


class Sandbox:
    """Runs executions for one worker process, at most `max_concurrency` at a time."""

    def __init__(self, *, memory_bytes: int, max_concurrency: int, output_limit: int) -> None:
        self._memory_bytes = memory_bytes
        self._output_limit = output_limit
        self._slots = asyncio.Semaphore(max_concurrency)
        self._groups: set[int] = set()  # process groups of running executions

    async def run(self, req: ExecRequest) -> ExecResult:
        # Waiting for a slot does not count against the execution's time limit.
        async with self._slots:
            workdir = await asyncio.to_thread(_make_workdir, req.code)
            try:
                return await self._run_in(workdir, req)
            finally:
                await asyncio.to_thread(shutil.rmtree, workdir, True)

    def kill_all(self) -> None:
        """SIGKILL every running execution's group (on worker shutdown)."""
        for pgid in list(self._groups):
            _kill_group(pgid)

    async def _run_in(self, workdir: Path, req: ExecRequest) -> ExecResult:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        # The protocol API rather than asyncio.create_subprocess_exec: Process.wait() only
        # returns once the output pipes close, and a child the code left behind keeps them open.
        transport, proto = await loop.subprocess_exec(
            lambda: _Capture(loop, self._output_limit),
            sys.executable,
            "-I",
            "-S",
            "-c",
            _BOOTSTRAP,
            str(self._memory_bytes),
            str(workdir / "main.py"),
            stdin=subprocess.PIPE if req.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=workdir,
            start_new_session=True,
        )
        pgid = transport.get_pid()
        self._groups.add(pgid)
        try:
            stdin = transport.get_pipe_transport(0)
            if stdin is not None:
                assert isinstance(stdin, asyncio.WriteTransport)
                stdin.write((req.stdin or "").encode("utf-8"))
                stdin.close()  # after the buffered data is written
            timed_out = False
            try:
                await asyncio.wait_for(asyncio.shield(proto.exited), req.timeout_s)
            except TimeoutError:
                timed_out = True
            duration_ms = (time.monotonic() - started) * 1000
        finally:
            # Also after a normal exit: the code may have left children behind in its group.
            _kill_group(pgid)
            self._groups.discard(pgid)
            try:
                await proto.exited
                # Only a process that left the group (setsid) can keep the pipes open now.
                await asyncio.wait_for(asyncio.shield(proto.pipes_closed), _DRAIN_TIMEOUT_S)
            except TimeoutError:
                pass
            finally:
                transport.close()
        returncode = transport.get_returncode()
        assert returncode is not None
        return ExecResult(
            stdout=proto.stdout.decode("utf-8", "replace"),
            stderr=proto.stderr.decode("utf-8", "replace"),
            exit_code=returncode,
            timed_out=timed_out,
            duration_ms=round(duration_ms, 1),
            truncated=proto.truncated,
        )


class _Capture(asyncio.SubprocessProtocol):
    """Keeps up to `limit` bytes of each output stream and drops the rest, reading on so the
    child never blocks on a full pipe."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.truncated = False
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        kept = self.stdout if fd == 1 else self.stderr
        room = self._limit - len(kept)
        if room > 0:
            kept += data[:room]
        if len(data) > room:
            self.truncated = True

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _make_workdir(code: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="exec-"))
    (workdir / "main.py").write_text(code, encoding="utf-8")
    return workdir


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
