"""Issue 9 (points 5 to 9) and issue 12 (points 1 and 2), against the real engine: what a client
of the front sees when something is refused or fails, and the front's own limits."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.cli_worker import describe as _describe
from emulator.errors import (
    DISCONNECTED,
    EXITED_BEFORE_HEALTHY,
    NO_INSTANCE,
    NO_PORT,
    PROXY_ERROR,
    START_FAILED,
)
from emulator.pytest_plugin import EmuUp
from emulator.testing import EmuProcess, RunningEmulator, wait_for
from emulator.worker.mode import ModeChoice
from tests.support import JSON, Project, raw_request

pytestmark = pytest.mark.docker


def get(
    emu: RunningEmulator, name: str, path: str = "/health", **headers: str
) -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name, **headers}, timeout=60)


def events(emu: RunningEmulator, kind: str) -> list[dict[str, Any]]:
    return [e for e in emu.events() if e["event"] == kind]


def is_text(resp: requests.Response) -> bool:
    return resp.headers["Content-Type"].startswith("text/plain")


# -- #9.8: the library's texts, as text; the details for JSON clients and in the events ------------


def test_a_start_failure_is_the_librarys_text_and_json_on_request(
    tmp_path: Path, emu_up: EmuUp
) -> None:
    body = "  entrypoint = ['sh', '-c', 'echo boom >&2; exit 3'];"
    emu = emu_up(Project(instances=1, extra_class_body=body).write(tmp_path))
    text = get(emu, "a")
    assert text.status_code == 500 and is_text(text)
    assert text.text == START_FAILED + EXITED_BEFORE_HEALTHY + "3"
    assert text.headers["x-emu-instance"] == "a"
    detail = get(emu, "a", **JSON)
    assert detail.status_code == 500 and detail.json()["exit_code"] == 3
    assert any("boom" in line for line in detail.json()["logs"])
    failed = events(emu, "start_failed")[-1]
    assert failed["exit_code"] == 3 and any("boom" in line for line in failed["logs"])


def test_a_crash_mid_request_is_the_librarys_text(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(Project(instances=1).write(tmp_path))
    assert get(emu, "c").status_code == 200
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(get, emu, "c", "/diag/sleep?ms=10000")
        wait_for(lambda: emu.instances()["c"]["inflight"] == 1, 10, "the request in flight")
        requests.post(emu.url + "/diag/exit?code=7", headers={"x-emu-instance": "c"}, timeout=10)
        resp = sleeping.result(timeout=30)
    assert resp.status_code == 500 and is_text(resp)
    assert resp.text == DISCONNECTED
    assert events(emu, "exited")[-1]["exit_code"] == 7


# -- #9.6: the 503 at max_instances names no other instance ---------------------------------------


def test_the_max_instances_503_names_no_other_instance(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(Project(instances=1, max_instances=1).write(tmp_path))
    assert get(emu, "alice-private-name").status_code == 200
    text = get(emu, "bob")
    assert text.status_code == 503 and is_text(text)
    assert text.text == NO_INSTANCE
    detail = get(emu, "bob", **JSON)
    assert detail.status_code == 503
    assert "alice-private-name" not in detail.text
    body = detail.json()
    assert (body["max_instances"], body["running"], body["instance"]) == (1, 1, "bob")
    # ... but the operator sees who holds the slot.
    assert events(emu, "no_capacity")[-1]["running"] == ["alice-private-name"]
    assert "alice-private-name" in emu.instances()


# -- #9.7: request targets that are not paths ------------------------------------------------------


def test_options_star_and_connect_get_emus_400_json(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(Project(instances=1).write(tmp_path))
    for request in (
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    ):
        answer = raw_request(emu.url, request)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"application/json" in head.lower()
        assert json.loads(body)["status"] == 400
    assert emu.instances() == {}


def test_a_request_that_expects_100_continue_gets_it_before_sending_its_body(
    tmp_path: Path, emu_up: EmuUp
) -> None:
    """Such a request goes through the app's router (the front's own path skips it), whose
    route answers the interim 100 before the body is read; then the body is proxied."""
    emu = emu_up(Project(instances=1).write(tmp_path))
    host, _, port = emu.url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /diag/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: 5\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim[:200]
        sock.sendall(b"hello")
        answer = interim.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"x-emu-instance: instance-0" in head.lower()
    assert json.loads(body)["body_bytes"] == 5


# -- #9.9: a closed target port -------------------------------------------------------------------


def test_a_closed_target_port_is_an_immediate_proxy_error(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(Project(instances=1).write(tmp_path))
    assert get(emu, "p").status_code == 200
    cid = emu.instances()["p"]["container_id"]
    began = time.monotonic()
    resp = get(emu, "p", **{"cf-container-target-port": "8001"})
    took = time.monotonic() - began
    assert resp.status_code == 500 and is_text(resp)
    assert resp.text.startswith(PROXY_ERROR), resp.text
    assert took < 0.5, f"answered after {took:.2f} s"
    inst = emu.instances()["p"]
    assert (inst["state"], inst["container_id"]) == ("healthy", cid)
    assert get(emu, "p").status_code == 200
    assert not events(emu, "exited")


# -- #12.2: a class without defaultPort ------------------------------------------------------------


def no_port_project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.ts").write_text(
        "export class Bare extends Container {\n"
        "  entrypoint = ['sh', '-c', 'sleep 1.5; exec python -m http.server 8080'];\n"
        "}\nconst c = getRandom(env.BARE, 1);\n"
    )
    (root / "wrangler.jsonc").write_text(
        """{"name": "bare", "main": "src/index.ts",
        "containers": [{"class_name": "Bare", "image": "python:3.11-slim"}],
        "durable_objects": {"bindings": [{"name": "BARE", "class_name": "Bare"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Bare"]}]}"""
    )
    return root / "wrangler.jsonc"


def test_no_default_port_waits_for_the_requested_port(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(no_port_project(tmp_path), start_timeout="20s", stop_grace="1s")
    lines: list[str] = []

    def out(source: str, line: str) -> None:
        lines.append(line)

    _describe(emu.emulator, out, ModeChoice(False, "--no-worker"), None)  # type: ignore[arg-type]
    assert any("no defaultPort" in line for line in lines), lines
    assert not any("port None" in line for line in lines), lines

    missing = requests.get(emu.url + "/", timeout=60)
    assert missing.status_code == 500 and missing.text == NO_PORT
    # The app listens 1.5 s after the start: the request waits for it, not for nothing.
    resp = requests.get(emu.url + "/", headers={"cf-container-target-port": "8080"}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert "Directory listing" in resp.text
    assert emu.instances()["instance-0"]["cold_start_ms"] >= 1400


# -- #9.5: client connections ---------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_sockets(url: str, n: int) -> list[socket.socket]:
    host, _, port = url.removeprefix("http://").partition(":")
    return [socket.create_connection((host, int(port)), timeout=10) for _ in range(n)]


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (what it sent before is skipped)."""
    sock.settimeout(0.0)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def test_idle_and_slow_connections_are_closed_and_bounded(tmp_path: Path) -> None:
    flags = ("--no-logs", "--header-timeout", "1s", "--keepalive-timeout", "2s")
    path = Project(instances=1).write(tmp_path)
    with EmuProcess(path, *flags, "--max-connections", "300") as emu:
        wait_for(lambda: emu.status()["serving"], 600, "the image")
        before = rss_kib(emu.pid)
        idle = open_sockets(emu.url, 150)
        slow = open_sockets(emu.url, 150)
        for sock in slow:  # slowloris: a request whose headers never end
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        over = open_sockets(emu.url, 20)  # past --max-connections: 503 and closed
        for sock in over:
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 503"), "no 503 past the bound"
        wait_for(lambda: all(closed_by_peer(s) for s in slow), 5, "slow requests closed")
        slow_after = time.monotonic() - began
        wait_for(lambda: all(closed_by_peer(s) for s in idle), 5, "idle connections closed")
        idle_after = time.monotonic() - began
        assert slow_after < idle_after, (slow_after, idle_after)
        assert 0.8 <= slow_after < 3, slow_after
        for sock in idle + slow + over:
            sock.close()
        # Room again; a request gets through.
        resp = requests.get(emu.url + "/health", timeout=60)
        assert resp.status_code == 200
        grown = rss_kib(emu.pid) - before
        assert grown < 20 * 1024, f"RSS grew by {grown} KiB"
