"""Faults of a container and around it, on the real engine: an exit during start, a port that
never answers, a crash mid-request or mid-stream, a death emu did not hear of, out of memory,
clients that hang up, bad requests, what emu exposes (loopback, no privileges, no host ports),
and the engine stopped and restarted.

Each test provokes one fault through the reference executor's diagnostics and checks what the
client gets and what emu does next. The engine restart test stops the machine's dockerd: it is
marked `engine_restart` and comes last. Containers that ignore SIGTERM: lifecycle/test_stops.py.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.config import Config, load_config
from emulator.instances.errors import DISCONNECTED, EXITED_BEFORE_HEALTHY, START_FAILED
from emulator.pytest_plugin import EmuUp
from emulator.testing import RunningEmulator, wait_for
from tests.support import (
    JSON,
    Project,
    container_gone,
    containers,
    dockerd_running,
    engine_answers,
    events_of,
    idle_stop,
    raw_request,
    start_engine,
    stop_engine,
    tcp_sockets,
)

pytestmark = pytest.mark.docker

EXECUTOR_PORT = 8000


def get(emu: RunningEmulator, path: str, name: str, **kwargs: Any) -> requests.Response:
    headers = {"x-emu-instance": name, **JSON}
    return requests.get(emu.url + path, headers=headers, timeout=60, **kwargs)


def post(emu: RunningEmulator, path: str, name: str) -> requests.Response:
    return requests.post(emu.url + path, headers={"x-emu-instance": name}, timeout=60)


def session_containers(client: docker.DockerClient, emu: RunningEmulator) -> list[Any]:
    return containers(client, session=emu.status()["session"])


# -- the container exits during start, or never answers --------------------------------------------


def test_exit_during_start_fails_at_once_with_code_and_logs(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    project = Project(
        instances=1, extra_class_body="  entrypoint = ['sh', '-c', 'echo boom >&2; exit 3'];"
    )
    emu = emu_up(project.write(tmp_path), start_timeout="20s")
    began = time.monotonic()
    resp = get(emu, "/health", "boom")
    elapsed = time.monotonic() - began
    assert resp.status_code == 500, resp.text
    assert elapsed < 5, f"answered after {elapsed:.1f} s; the start timeout is 20 s"
    body = resp.json()
    assert body["error"] == START_FAILED + EXITED_BEFORE_HEALTHY + "3"
    assert body["exit_code"] == 3
    assert any("boom" in line for line in body["logs"]), body["logs"]
    inst = emu.instances()["boom"]
    assert inst["state"] == "stopped_with_code" and inst["exit_code"] == 3
    wait_for(lambda: not session_containers(docker_client, emu), 10, "the container's removal")


def test_port_that_never_answers_fails_after_start_timeout(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    project = Project(instances=1, extra_class_body="  entrypoint = ['sleep', '300'];")
    emu = emu_up(project.write(tmp_path), start_timeout="2s")
    began = time.monotonic()
    resp = get(emu, "/health", "mute")
    elapsed = time.monotonic() - began
    assert resp.status_code == 500, resp.text
    assert 2.0 <= elapsed < 4.0, f"answered after {elapsed:.1f} s; the start timeout is 2 s"
    body = resp.json()
    assert body["error"].startswith(START_FAILED)
    assert "port 8000 did not answer" in body["reason"] and "--start-timeout" in body["reason"]
    assert emu.instances()["mute"]["state"] == "stopped"
    wait_for(lambda: not session_containers(docker_client, emu), 10, "the container's removal")


# -- the container crashes mid-request, or mid-stream ----------------------------------------------


def test_crash_mid_request_and_mid_stream(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(Project(instances=1).write(tmp_path))
    assert get(emu, "/health", "c").status_code == 200
    first = emu.instances()["c"]["container_id"]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(get, emu, "/diag/sleep?ms=10000", "c")
        wait_for(lambda: emu.instances()["c"]["inflight"] == 1, 10, "the request in flight")
        assert post(emu, "/diag/exit?code=7", "c").status_code == 200
        resp = sleeping.result(timeout=30)
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"] == DISCONNECTED and body["exit_code"] == 7, body
    inst = emu.instances()["c"]
    assert inst["state"] == "stopped_with_code" and inst["exit_code"] == 7

    assert get(emu, "/health", "c").status_code == 200
    second = emu.instances()["c"]["container_id"]
    assert second not in (None, first)

    # Mid-stream the status line is out: the client sees the body end early, never a second
    # response written into it.
    received = b""
    crashed = False
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        get(emu, "/diag/stream?chunks=100&interval_ms=100", "c", stream=True) as stream,
    ):
        assert stream.status_code == 200
        for chunk in stream.iter_content(chunk_size=None):
            received += chunk
            if not crashed and received.count(b"\n") >= 2:
                crashed = True
                assert post(emu, "/diag/exit?code=9", "c").status_code == 200
    assert received.startswith(b"chunk 0\nchunk 1\n")
    assert b"HTTP/1.1" not in received
    wait_for(
        lambda: emu.instances()["c"]["exit_code"] == 9, 10, "the exit code of the second crash"
    )
    assert emu.instances()["c"]["state"] == "stopped_with_code"
    assert any(e["event"] == "response_cut" for e in events_of(emu, "c"))
    assert get(emu, "/health", "c").status_code == 200
    assert emu.instances()["c"]["container_id"] not in (None, first, second)


def test_a_death_emu_did_not_hear_of_is_found_by_the_next_request(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    """Events can be missed (the stream was down); the failed request asks the engine."""
    emu = emu_up(Project(instances=1).write(tmp_path))
    assert get(emu, "/health", "d").status_code == 200
    cid = emu.instances()["d"]["container_id"]
    emu.emulator.docker.stop_events()  # emu hears nothing from now on
    docker_client.containers.get(cid).kill()
    resp = get(emu, "/health", "d")
    assert resp.status_code == 500
    assert resp.json()["error"] == DISCONNECTED and resp.json()["exit_code"] == 137
    assert emu.instances()["d"]["state"] == "stopped_with_code"
    wait_for(lambda: container_gone(docker_client, cid), 10, "the dead container's removal")
    assert get(emu, "/health", "d").status_code == 200
    assert emu.instances()["d"]["container_id"] not in (None, cid)


# -- out of memory ---------------------------------------------------------------------------------


def test_out_of_memory_kill_is_reported_and_the_next_request_restarts(
    tmp_path: Path, emu_up: EmuUp
) -> None:
    emu = emu_up(Project(instance_type="lite", instances=1).write(tmp_path))  # 256 MiB
    assert get(emu, "/health", "m").status_code == 200
    first = emu.instances()["m"]["container_id"]
    resp = get(emu, "/diag/alloc?mib=400", "m")
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"] == DISCONNECTED
    assert body["oom_killed"] is True and body["exit_code"] == 137, body
    assert "out of memory" in body["reason"]
    inst = emu.instances()["m"]
    assert inst["state"] == "stopped_with_code"
    assert inst["oom_killed"] is True and inst["exit_code"] == 137
    assert "out of memory" in inst["last_error"]
    exited = [e for e in events_of(emu, "m") if e["event"] == "exited"]
    assert exited and exited[-1]["oom_killed"] is True
    assert get(emu, "/health", "m").status_code == 200
    inst = emu.instances()["m"]
    assert inst["container_id"] not in (None, first)
    assert inst["oom_killed"] is False and inst["state"] == "healthy"


# -- clients that hang up --------------------------------------------------------------------------


def test_client_hanging_up_cancels_upstream_and_the_instance_still_sleeps(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    emu = emu_up(Project(instances=1, sleep_after="2s").write(tmp_path))
    assert get(emu, "/health", "h").status_code == 200
    cid = emu.instances()["h"]["container_id"]
    pid = int(docker_client.api.inspect_container(cid)["State"]["Pid"])

    def connected() -> list[tuple[str, str]]:
        """The executor's open connections (its side of them, in its network namespace); a
        connection the executor has not closed yet stays in CLOSE_WAIT."""
        return [s for s in tcp_sockets(EXECUTOR_PORT, pid) if s[1] in ("ESTABLISHED", "CLOSE_WAIT")]

    def open_upstream() -> bool:
        return any(state == "ESTABLISHED" for _, state in connected())

    host, _, port = emu.url.removeprefix("http://").partition(":")
    for path, first_bytes in (
        ("/diag/sleep?ms=3000", b""),  # hang up while waiting for the response
        ("/diag/stream?chunks=100&interval_ms=100", b"chunk 1"),  # ... and while it streams
    ):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nx-emu-instance: h\r\n\r\n".encode("ascii")
            )
            sent = time.monotonic()
            wait_for(lambda: emu.instances()["h"]["inflight"] == 1, 5, "the request in flight")
            wait_for(open_upstream, 5, "the request to reach the container")
            if first_bytes:
                got = b""
                while first_bytes not in got:
                    chunk = sock.recv(4096)
                    assert chunk, f"the stream ended early: {got!r}"
                    got += chunk
            else:
                time.sleep(0.5)  # the scenario: hang up half a second into the request
        # Hung up. emu drops the upstream request at once, long before the 3 s sleep (or the
        # 10 s stream) would end, and the executor sees it: its end of the connection closes.
        wait_for(lambda: emu.instances()["h"]["inflight"] == 0, 2, "in-flight back to 0")
        wait_for(lambda: not connected(), 2, "the executor to see the disconnect")
        assert time.monotonic() - sent < 2.5
        assert emu.status()["inflight"] == 0
    hung_up = time.time()
    assert emu.instances()["h"]["state"] == "healthy"
    wait_for(lambda: container_gone(docker_client, cid), 10, "the idle instance to sleep")
    # Timed by emu's own stop (how long the engine then takes to remove it is the engine's).
    elapsed = idle_stop(emu, "h")["time"] - hung_up
    assert elapsed <= 3.0, f"slept {elapsed:.2f} s after the last hang-up (sleepAfter 2 s)"
    assert emu.instances()["h"]["state"] == "stopped"


# -- bad requests ----------------------------------------------------------------------------------


MALFORMED = {
    "no request line": b"GARBAGE\r\n\r\n",
    "header without colon": b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "unknown version": b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    "request line over 16 KiB": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header field over 16 KiB": (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n"
    ),
    "two lengths": (
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"
    ),
    "control character": b"GET /health HTTP/1.1\r\nHost: x\r\nx-emu-instance: a\x01b\r\n\r\n",
}


def test_bad_requests_get_4xx_from_the_front_and_reach_no_container(
    tmp_path: Path,
    emu_up: EmuUp,
    docker_client: docker.DockerClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu = emu_up(Project(instances=1).write(tmp_path))
    for what, raw in MALFORMED.items():
        answer = raw_request(emu.url, raw)
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", answer), (what, answer[:200])
    # The client's mistake, answered: no error and no traceback in emu's log.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    for name in ("x" * 64, "../x", "a b", "", "-x", ".hidden", "a/b", "é"):
        resp = requests.get(
            emu.url + "/health", headers={"x-emu-instance": name.encode()}, timeout=10
        )
        assert resp.status_code == 400, (name, resp.text)
        assert "x-emu-instance" in resp.json()["error"]
    big = requests.get(emu.url + "/health", headers={"X-Big": "a" * 17_000}, timeout=10)
    assert 400 <= big.status_code < 500
    assert emu.instances() == {}
    assert session_containers(docker_client, emu) == []
    assert get(emu, "/health", "x" * 63).status_code == 200


# -- safety ----------------------------------------------------------------------------------------


def test_listens_on_loopback_and_containers_are_unprivileged_without_host_ports(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=1).write(tmp_path)
    assert Config.__dataclass_fields__["host"].default == "127.0.0.1"
    assert load_config(path).host == "127.0.0.1"
    emu = emu_up(path)  # no --host
    port = int(emu.url.rpartition(":")[2])
    listening = [ip for ip, state in tcp_sockets(port) if state == "LISTEN"]
    assert listening == ["127.0.0.1"]
    assert requests.get(emu.url + "/_emu/status", timeout=10).ok  # /_emu/ on the same socket

    assert get(emu, "/health", "s").status_code == 200
    attrs = docker_client.api.inspect_container(emu.instances()["s"]["container_id"])
    host = attrs["HostConfig"]
    assert host["Privileged"] is False
    assert not host.get("CapAdd")
    assert not host.get("Binds")
    assert not host.get("Mounts")
    assert not any("docker.sock" in str(m) for m in attrs.get("Mounts") or [])
    assert not host.get("PortBindings")
    assert host.get("PublishAllPorts") is False
    ports = attrs["NetworkSettings"]["Ports"] or {}
    assert all(not bindings for bindings in ports.values()), ports
    assert host["NetworkMode"] not in ("host", "default", "bridge")


# -- the engine stops and comes back (disruptive: keep it last) ------------------------------------


@pytest.mark.engine_restart
def test_engine_stop_and_restart(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    emu = emu_up(Project(instances=2).write(tmp_path))
    assert get(emu, "/health", "a").status_code == 200
    old = emu.instances()["a"]["container_id"]
    try:
        stop_engine()
        assert not engine_answers()
        wait_for(lambda: emu.status()["engine_up"] is False, 10, "emu to see the engine go")
        for name in ("a", "b"):  # "a" was running, "b" never was
            resp = get(emu, "/health", name)
            assert resp.status_code == 503, resp.text
            assert "Docker engine" in resp.json()["error"]
        assert requests.get(emu.url + "/_emu/status", timeout=10).ok
    finally:
        start_engine()
    assert dockerd_running()
    wait_for(lambda: emu.status()["engine_up"], 15, "emu to see the engine back")
    # Reconciled: the container the engine stopped is removed, the instance is stopped.
    wait_for(lambda: container_gone(docker_client, old), 15, "the dead container's removal")
    assert emu.instances()["a"]["state"] in ("stopped", "stopped_with_code")
    assert emu.instances()["a"]["container_id"] is None
    for name in ("a", "b"):
        resp = get(emu, "/health", name)
        assert resp.status_code == 200, resp.text
    assert emu.instances()["a"]["container_id"] not in (None, old)
    assert {e["event"] for e in emu.events()} >= {"engine_down", "engine_up"}
