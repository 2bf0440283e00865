"""The process model, with real processes on this machine: `python -m executor.app` as PID 1 would
run it, signalled and crashed the ways a container runtime and the kernel do."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emulator.testing import wait_for as wait_until
from tests.support.executor import REPO, request

pytestmark = pytest.mark.timeout(60)


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


class Executor:
    """`python -m executor.app` on a free port, logging to a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.log_path = tmp_path / "executor.log"
        full_env = {
            **os.environ,
            "EXECUTOR_HOST": "127.0.0.1",
            "EXECUTOR_PORT": "0",
            "WORKERS": "2",
            "EXECUTOR_DIAGNOSTICS": "1",
            "EXECUTOR_SHUTDOWN_GRACE_S": "3",
            **env,
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "executor.app"],
                cwd=REPO,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so teardown can kill it and its workers as a group
            )
        self.port = 0
        self.url = ""

    def start(self) -> Executor:
        match = wait_until(self._listening, 20, "the executor to listen")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: self.request("GET", "/health")[0] == 200, 20, "/health to answer 200")
        return self

    def _listening(self) -> re.Match[str] | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"executor exited {self.proc.returncode}:\n{self.log}")
        return re.search(r"listening on http://[^:]+:(\d+)", self.log)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    @property
    def workers(self) -> set[int]:
        return children(self.proc.pid)

    def request(self, method: str, path: str) -> tuple[int, bytes]:
        return request(method, self.url + path)

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s:\n{self.log}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def run_executor(tmp_path: Path) -> Iterator[Callable[..., Executor]]:
    started: list[Executor] = []

    def run(**env: str) -> Executor:
        ex = Executor(tmp_path, env)
        started.append(ex)
        return ex.start()

    yield run
    for ex in started:
        ex.kill()


def open_stream(ex: Executor, chunks: int, interval_ms: int) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", ex.port, timeout=30)
    conn.request("GET", f"/diag/stream?chunks={chunks}&interval_ms={interval_ms}")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.readline() == b"chunk 0\n"  # the request is now in flight in a worker
    return resp


def test_serves_with_n_workers(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor(WORKERS="3")
    assert len(ex.workers) == 3
    assert ex.request("GET", "/health") == (200, b'{"status": "ok"}')


def test_sigterm_finishes_in_flight_requests_then_exits_0(
    run_executor: Callable[..., Executor],
) -> None:
    ex = run_executor()
    workers = ex.workers
    stream = open_stream(ex, chunks=3, interval_ms=500)
    ex.proc.send_signal(signal.SIGTERM)
    assert stream.read() == b"chunk 1\nchunk 2\n"
    assert ex.wait_exit(10) == 0
    assert not any(alive(pid) for pid in workers)
    assert "all workers stopped" in ex.log


def test_sigterm_grace_is_bounded(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor(EXECUTOR_SHUTDOWN_GRACE_S="0.5")
    stream = open_stream(ex, chunks=2, interval_ms=30_000)
    started = time.monotonic()
    ex.proc.send_signal(signal.SIGTERM)
    assert ex.wait_exit(10) == 0
    assert time.monotonic() - started < 3
    stream.close()


def test_worker_killed_stops_the_container_with_128_plus_signal(
    run_executor: Callable[..., Executor],
) -> None:
    """What the OOM killer does: SIGKILL one worker."""
    ex = run_executor()
    victim, *others = sorted(ex.workers)
    os.kill(victim, signal.SIGKILL)
    assert ex.wait_exit(10) == 128 + signal.SIGKILL
    assert not any(alive(pid) for pid in others)
    assert f"worker {victim} was killed by SIGKILL" in ex.log


def test_diag_exit_exits_the_container_with_that_code(
    run_executor: Callable[..., Executor],
) -> None:
    ex = run_executor()
    workers = ex.workers
    ex.request("POST", "/diag/exit?code=7")  # the answer may or may not arrive
    assert ex.wait_exit(5) == 7
    assert not any(alive(pid) for pid in workers)


def test_diag_ignore_sigterm(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor()
    assert ex.request("POST", "/diag/ignore-sigterm")[0] == 200
    wait_until(lambda: "ignoring SIGTERM from now on" in ex.log, 5, "the supervisor to hear it")
    ex.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM ignored" in ex.log, 5, "the supervisor to ignore SIGTERM")
    assert ex.request("GET", "/health")[0] == 200
    assert ex.proc.poll() is None
    assert len(ex.workers) == 2


def test_second_sigint_forces_exit(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor(EXECUTOR_SHUTDOWN_GRACE_S="30")
    stream = open_stream(ex, chunks=2, interval_ms=30_000)
    ex.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "SIGINT: stopping workers" in ex.log, 5, "the graceful stop to start")
    ex.proc.send_signal(signal.SIGINT)
    assert ex.wait_exit(5) == 128 + signal.SIGINT
    stream.close()


def test_workers_stop_when_the_supervisor_dies(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor()
    workers = ex.workers
    os.kill(ex.proc.pid, signal.SIGKILL)
    ex.proc.wait(5)
    wait_until(lambda: not any(alive(pid) for pid in workers), 10, "the orphaned workers to exit")


def test_single_worker(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor(WORKERS="1")
    assert len(ex.workers) == 1
    status, body = ex.request("GET", "/diag/pid")
    assert status == 200 and str(ex.workers.pop()).encode() in body


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"WORKERS": "zero"}, "WORKERS='zero': expected an integer"),
        ({"WORKERS": "0"}, "WORKERS='0': expected an integer between 1 and 256"),
        ({"EXECUTOR_DIAGNOSTICS": "maybe"}, "EXECUTOR_DIAGNOSTICS='maybe': expected 1 or 0"),
        (
            {"EXECUTOR_SHUTDOWN_GRACE_S": "inf"},
            "EXECUTOR_SHUTDOWN_GRACE_S='inf': expected a finite number",
        ),
    ],
)
def test_bad_settings_exit_2_in_one_line(env: dict[str, str], complaint: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "executor.app"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"executor: {complaint}"]


def test_port_in_use_exits_1_in_one_line(run_executor: Callable[..., Executor]) -> None:
    ex = run_executor()
    result = subprocess.run(
        [sys.executable, "-m", "executor.app"],
        cwd=REPO,
        env={**os.environ, "EXECUTOR_HOST": "127.0.0.1", "EXECUTOR_PORT": str(ex.port)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on 127.0.0.1" in lines[0], result.stderr
