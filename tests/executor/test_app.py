"""The executor's endpoints, in process, through aiohttp's test client."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from emulator.blocking import MeasuredLoop, SlowCallbacks
from executor.app.config import MIB, Settings
from executor.app.server import create_app, serve

pytestmark = pytest.mark.timeout(60)

Client = TestClient[web.Request, web.Application]


class FakeControl:
    """Stands in for the supervisor: records what the app asked of it."""

    def __init__(self) -> None:
        self.exits: list[int] = []
        self.ignoring_sigterm = False

    def request_exit(self, code: int) -> None:
        self.exits.append(code)

    def ignore_sigterm(self) -> None:
        self.ignoring_sigterm = True


MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def make_client(aiohttp_client: AiohttpClient, control: FakeControl) -> MakeClient:
    """A client for an app built with Settings(**overrides)."""

    async def make(**overrides: Any) -> Client:
        return await aiohttp_client(create_app(Settings(**overrides), control))

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


@pytest.fixture
async def diag(make_client: MakeClient) -> Client:
    return await make_client(diagnostics=True)


SLOW_STEP = 0.25  # seconds of a loop step's own time


@pytest.fixture(autouse=True)
async def _fail_on_blocking_calls() -> AsyncIterator[None]:
    """Fail a test in which any step on the event loop took long (e.g. a blocking call), not
    counting the time its thread only waited for a CPU: on a busy machine a step that waited
    its turn looks like one that blocked (a CI run saw 0.264 s for `code="pass"`)."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, MeasuredLoop)
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_STEP
    slow: list[str] = []
    handler = SlowCallbacks(loop, threading.current_thread().name, SLOW_STEP, slow)
    logger = logging.getLogger("asyncio")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not slow, f"the event loop was blocked: {slow}"


async def execute(client: Client, **body: Any) -> dict[str, Any]:
    resp = await client.post("/execute", json=body)
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def gone(pid: int) -> bool:
    """True when `pid` has exited (a zombie counts: it runs no more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout} s"
        await asyncio.sleep(0.02)  # polling interval


# /health and /info


async def test_health(client: Client) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_info(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_LOCATION", "local")
    monkeypatch.setenv("CLOUDFLARE_DURABLE_OBJECT_ID", "ab" * 32)
    monkeypatch.setenv("GREETING", "hello")
    resp = await client.get("/info")
    assert resp.status == 200
    info = await resp.json()
    assert info["hostname"] == socket.gethostname()
    assert info["pid"] == os.getpid()
    assert 0 <= info["uptime_s"] < 60
    assert info["cloudflare"] == {
        "CLOUDFLARE_LOCATION": "local",
        "CLOUDFLARE_DURABLE_OBJECT_ID": "ab" * 32,
    }
    assert info["env"]["GREETING"] == "hello"
    assert info["cgroup_version"] in (1, 2, None)
    assert info["cpu_limit_vcpu"] is None or isinstance(info["cpu_limit_vcpu"], float)
    for key in ("memory_limit_bytes", "memory_swap_limit_bytes"):
        assert info[key] is None or isinstance(info[key], int)
    assert info["cpus_allowed"] == sorted(os.sched_getaffinity(0))
    assert info["execute"]["memory_limit_bytes"] == 512 * MIB
    assert info["workers"] == 4


# /execute


async def test_execute_prints(client: Client) -> None:
    result = await execute(client, code="print(6*7)", timeout_s=10)
    assert result["stdout"] == "42\n"
    assert result["stderr"] == ""
    assert result["exit_code"] == 0
    assert result["timed_out"] is False
    assert result["truncated"] is False
    assert 0 < result["duration_ms"] < 10_000


async def test_execute_stdin_and_exit_code(client: Client) -> None:
    code = "import sys\nprint(sys.stdin.read().upper(), end='')\nsys.exit(3)"
    result = await execute(client, code=code, timeout_s=10, stdin="héllo\n")
    assert result["stdout"] == "HÉLLO\n"
    assert result["exit_code"] == 3


async def test_execute_without_stdin_reads_eof(client: Client) -> None:
    result = await execute(client, code="import sys; print(repr(sys.stdin.read()))", timeout_s=10)
    assert result["stdout"] == "''\n"


async def test_execute_exception_traceback_shows_only_user_code(client: Client) -> None:
    result = await execute(client, code="x = 1\n1 / 0\n", timeout_s=10)
    assert result["exit_code"] == 1
    assert "ZeroDivisionError" in result["stderr"]
    assert 'main.py", line 2' in result["stderr"]
    assert "<string>" not in result["stderr"]


async def test_execute_runs_in_a_fresh_directory_that_is_removed(client: Client) -> None:
    result = await execute(client, code="import os; print(os.getcwd())", timeout_s=10)
    workdir = Path(result["stdout"].strip())
    assert workdir.name.startswith("exec-")
    assert not await asyncio.to_thread(workdir.exists)


async def test_execute_timeout_kills_the_whole_group(client: Client) -> None:
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "while True: pass\n"
    )
    started = time.monotonic()
    result = await execute(client, code=code, timeout_s=1)
    assert time.monotonic() - started < 5
    assert result["timed_out"] is True
    assert result["exit_code"] == -9
    assert 1000 <= result["duration_ms"] < 3000
    await wait_gone(int(result["stdout"]))


async def test_execute_kills_what_the_code_left_behind(client: Client) -> None:
    """A background child that keeps stdout open must not hold the answer for a minute."""
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid)\n"
    )
    started = time.monotonic()
    result = await execute(client, code=code, timeout_s=30)
    assert time.monotonic() - started < 5
    assert result["exit_code"] == 0 and result["timed_out"] is False
    await wait_gone(int(result["stdout"]))


async def test_execute_memory_cap(client: Client) -> None:
    result = await execute(client, code="x = bytearray(1024 * 1024 * 1024)", timeout_s=10)
    assert result["exit_code"] == 1
    assert "MemoryError" in result["stderr"]


async def test_execute_memory_cap_is_configurable(make_client: MakeClient) -> None:
    client = await make_client(exec_memory_bytes=0)  # 0 = no cap
    result = await execute(client, code="x = bytearray(600 * 1024 * 1024)", timeout_s=30)
    assert result["exit_code"] == 0, result["stderr"]


async def test_execute_truncates_stdout_at_one_mib(client: Client) -> None:
    result = await execute(client, code="print('x' * (2 * 1024 * 1024))", timeout_s=30)
    assert result["stdout"] == "x" * MIB
    assert result["truncated"] is True
    assert result["exit_code"] == 0


async def test_execute_truncates_stderr(make_client: MakeClient) -> None:
    client = await make_client(exec_output_limit_bytes=10)
    result = await execute(
        client, code="import sys; sys.stderr.write('e' * 100); print('ok')", timeout_s=10
    )
    assert result["stderr"] == "e" * 10
    assert result["stdout"] == "ok\n"
    assert result["truncated"] is True


async def test_execute_concurrency_is_bounded(make_client: MakeClient) -> None:
    client = await make_client(exec_max_concurrency=1)
    body = {"code": "import time; time.sleep(0.5)", "timeout_s": 10}
    started = time.monotonic()
    results = await asyncio.gather(execute(client, **body), execute(client, **body))
    assert time.monotonic() - started >= 1.0, "the two executions overlapped"
    # Time spent waiting for a slot is not part of an execution's duration.
    assert all(r["duration_ms"] < 950 for r in results), results


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b'{"code": "print(1)",', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"print(1)"', "JSON object"),
        (b'{"timeout_s": 5}', "'code' is required"),
        (b'{"code": 5, "timeout_s": 5}', "'code' is required and must be a string"),
        (b'{"code": null, "timeout_s": 5}', "'code' is required"),
        (b'{"code": "1"}', "'timeout_s' is required"),
        (b'{"code": "1", "timeout_s": "5"}', "must be a number"),
        (b'{"code": "1", "timeout_s": true}', "must be a number"),
        (b'{"code": "1", "timeout_s": 0}', "> 0 and <= 60"),
        (b'{"code": "1", "timeout_s": -1}', "> 0 and <= 60"),
        (b'{"code": "1", "timeout_s": 60.5}', "> 0 and <= 60"),
        (b'{"code": "1", "timeout_s": 1e999}', "> 0 and <= 60"),
        (b'{"code": "1", "timeout_s": NaN}', "> 0 and <= 60"),
        (b'{"code": "1", "timeout_s": 5, "stdin": 7}', "'stdin' must be a string"),
        (b'{"code": "1", "timeout_s": 5, "timeout": 9}', "unknown field 'timeout'"),
        (b'{"code": "\\ud800", "timeout_s": 5}', "not valid Unicode"),
    ],
)
async def test_execute_rejects_bad_bodies(client: Client, body: bytes, complaint: str) -> None:
    resp = await client.post("/execute", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert isinstance(error, str) and complaint in error


async def test_execute_accepts_the_maximum_timeout(client: Client) -> None:
    result = await execute(client, code="pass", timeout_s=60)
    assert result["exit_code"] == 0


async def test_execute_needs_post(client: Client) -> None:
    assert (await client.get("/execute")).status == 405


# Diagnostics

DIAG_PATHS = [
    ("GET", "/diag/cpu?ms=1"),
    ("GET", "/diag/alloc?mib=1"),
    ("GET", "/diag/sleep?ms=1"),
    ("GET", "/diag/stream?chunks=1&interval_ms=0"),
    ("GET", "/diag/ws"),
    ("POST", "/diag/exit?code=0"),
    ("POST", "/diag/ignore-sigterm"),
    ("GET", "/diag/pid"),
    ("PUT", "/diag/echo"),
]


@pytest.mark.parametrize(("method", "path"), DIAG_PATHS)
async def test_diagnostics_are_off_by_default(
    client: Client, control: FakeControl, method: str, path: str
) -> None:
    resp = await client.request(method, path)
    assert resp.status == 404
    assert control.exits == [] and not control.ignoring_sigterm


async def test_diag_echo_reports_what_arrived(diag: Client) -> None:
    body = b"x" * 100_000
    resp = await diag.put("/diag/echo?a=1&b=x%20y", data=body, headers={"X-Probe": "yes"})
    assert resp.status == 200
    seen = await resp.json()
    assert seen["method"] == "PUT"
    assert seen["path"] == "/diag/echo?a=1&b=x%20y"
    assert ["X-Probe", "yes"] in seen["headers"]
    assert seen["body_bytes"] == len(body)
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_diag_pid(diag: Client) -> None:
    assert await (await diag.get("/diag/pid")).json() == {"pid": os.getpid()}


async def test_diag_cpu_burns_while_the_server_answers(diag: Client) -> None:
    burn = asyncio.ensure_future(diag.get("/diag/cpu?ms=800"))
    await asyncio.sleep(0.2)  # let the burn start; the check below does not depend on it
    started = time.monotonic()
    assert (await diag.get("/health")).status == 200
    assert time.monotonic() - started < 0.3, "the server stalled while burning CPU"
    resp = await burn
    assert resp.status == 200
    body = await resp.json()
    assert body["ms"] == 800
    assert body["wall_ms"] >= 800
    assert 0 < body["cpu_ms"] <= body["wall_ms"] * 1.05
    assert 0 < body["cpu_share"] <= 1.05
    assert body["burner_pid"] != os.getpid()
    assert body["pid"] == os.getpid()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_diag_alloc_holds_resident_memory(diag: Client) -> None:
    before = rss_bytes()
    first = await (await diag.get("/diag/alloc?mib=64")).json()
    assert first == {"allocated_mib": 64, "held_mib": 64, "pid": os.getpid()}
    assert rss_bytes() - before >= 60 * MIB, "the block is not resident"
    second = await (await diag.get("/diag/alloc?mib=16")).json()
    assert second["held_mib"] == 80
    assert (await (await diag.get("/diag/alloc?mib=0")).json())["held_mib"] == 80


async def test_diag_sleep(diag: Client) -> None:
    started = time.monotonic()
    resp = await diag.get("/diag/sleep?ms=150")
    assert resp.status == 200
    assert time.monotonic() - started >= 0.15
    assert (await resp.json())["slept_ms"] == 150


async def test_diag_stream_sends_chunks_as_they_come(diag: Client) -> None:
    resp = await diag.get("/diag/stream?chunks=4&interval_ms=100")
    assert resp.status == 200
    assert resp.headers["Transfer-Encoding"] == "chunked"
    lines, times = [], []
    async for line in resp.content:
        lines.append(line)
        times.append(time.monotonic())
    assert lines == [b"chunk 0\n", b"chunk 1\n", b"chunk 2\n", b"chunk 3\n"]
    assert times[-1] - times[0] >= 0.25, "the chunks were not spaced out"


async def test_diag_stream_zero_chunks(diag: Client) -> None:
    resp = await diag.get("/diag/stream?chunks=0&interval_ms=100")
    assert resp.status == 200
    assert await resp.read() == b""


async def test_diag_ws_echoes_text_and_binary(diag: Client) -> None:
    async with diag.ws_connect("/diag/ws") as ws:
        await ws.send_str("hello")
        assert await ws.receive_str() == "hello"
        await ws.send_bytes(b"\x00\x01\xff")
        assert await ws.receive_bytes() == b"\x00\x01\xff"


async def test_diag_exit_asks_the_supervisor(diag: Client, control: FakeControl) -> None:
    resp = await diag.post("/diag/exit?code=3")
    assert resp.status == 200
    assert (await resp.json())["exiting"] == 3
    assert control.exits == [3]


async def test_diag_ignore_sigterm_asks_the_supervisor(diag: Client, control: FakeControl) -> None:
    resp = await diag.post("/diag/ignore-sigterm")
    assert resp.status == 200
    assert control.ignoring_sigterm


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/diag/cpu"),
        ("GET", "/diag/cpu?ms=abc"),
        ("GET", "/diag/cpu?ms=-1"),
        ("GET", "/diag/alloc?mib=1.5"),
        ("GET", "/diag/sleep?ms=3600001"),
        ("GET", "/diag/stream?chunks=2"),
        ("GET", "/diag/stream?interval_ms=2"),
        ("POST", "/diag/exit"),
        ("POST", "/diag/exit?code=256"),
    ],
)
async def test_diag_rejects_bad_parameters(
    diag: Client, control: FakeControl, method: str, path: str
) -> None:
    resp = await diag.request(method, path)
    assert resp.status == 400
    assert "query parameter" in (await resp.json())["error"]
    assert control.exits == []


# Graceful shutdown of `serve`, which each worker runs


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Task[None]]]:
    """The app (diagnostics on, 1 s grace) served on a port-0 socket until the event is set."""
    settings = dataclasses.replace(Settings(), diagnostics=True, shutdown_grace_s=1.0)
    sock = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop = asyncio.Event()
    task = asyncio.ensure_future(
        serve(create_app(settings, FakeControl()), sock, settings, stop.wait())
    )
    try:
        yield url, stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        sock.close()


async def test_shutdown_finishes_in_flight_requests_and_refuses_new_ones(
    served: tuple[str, asyncio.Event, asyncio.Task[None]],
) -> None:
    url, stop, task = served
    async with aiohttp.ClientSession() as session:
        resp = await session.get(url + "/diag/stream?chunks=3&interval_ms=200")
        assert await resp.content.readline() == b"chunk 0\n"  # the request is in flight
        stop.set()
        assert await resp.read() == b"chunk 1\nchunk 2\n"
        await asyncio.wait_for(task, 5)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/health")


async def test_shutdown_closes_websockets_and_kills_executions(
    served: tuple[str, asyncio.Event, asyncio.Task[None]], tmp_path: Path
) -> None:
    url, stop, task = served
    pid_file = tmp_path / "pid"
    code = (
        "import os, pathlib, time\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url + "/diag/ws")
        body = {"code": code, "timeout_s": 60}
        run = asyncio.ensure_future(session.post(url + "/execute", json=body))
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(pid_file.exists):
            assert time.monotonic() < deadline, "the execution did not start"
            await asyncio.sleep(0.02)  # polling interval
        pid = int(await asyncio.to_thread(pid_file.read_text))
        started = time.monotonic()
        stop.set()
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == aiohttp.WSCloseCode.GOING_AWAY
        await asyncio.wait_for(task, 5)
        # Past the 1 s grace the execution is cancelled and its process group killed.
        elapsed = time.monotonic() - started
        assert 1 <= elapsed < 2, elapsed
        await wait_gone(pid)
        with pytest.raises(aiohttp.ClientError):
            await run
        await ws.close()
