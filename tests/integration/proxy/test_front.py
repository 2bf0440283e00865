"""What a client of the front sees when something is refused or fails, on the real engine: the
library's texts (JSON with the details on request), the max_instances 503, request targets that
are not paths, a closed target port, a class without defaultPort, and the front's limits on
client connections."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from pathlib import Path

import pytest
import requests

from emulator.cli.worker import describe as _describe
from emulator.instances.errors import (
    DISCONNECTED,
    EXITED_BEFORE_HEALTHY,
    NO_INSTANCE,
    NO_PORT,
    PROXY_ERROR,
    START_FAILED,
)
from emulator.instances.events import EventKind, LifecycleEvent
from emulator.pytest_plugin import EmuUp
from emulator.testing import EmuProcess, RunningEmulator, wait_for
from tests.support import JSON, Project, accept_queue, raw_request, tcp_sockets

pytestmark = pytest.mark.docker


def get(
    emu: RunningEmulator, name: str, path: str = "/health", **headers: str
) -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name, **headers}, timeout=60)


def events(emu: RunningEmulator, kind: EventKind) -> list[LifecycleEvent]:
    return [e for e in emu.events() if e["event"] == kind]


def is_text(resp: requests.Response) -> bool:
    return resp.headers["Content-Type"].startswith("text/plain")


# -- the library's texts, as text; the details for JSON clients and in the events ------------------


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
    failed = events(emu, EventKind.START_FAILED)[-1]
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
    assert events(emu, EventKind.EXITED)[-1]["exit_code"] == 7


# -- the 503 at max_instances names no other instance ----------------------------------------------


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
    assert events(emu, EventKind.NO_CAPACITY)[-1]["running"] == ["alice-private-name"]
    assert "alice-private-name" in emu.instances()


# -- request targets that are not paths ------------------------------------------------------------


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


# -- a closed target port --------------------------------------------------------------------------


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
    assert not events(emu, EventKind.EXITED)


# -- a class without defaultPort -------------------------------------------------------------------


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

    _describe(emu.emulator, out)  # type: ignore[arg-type]
    assert any("no defaultPort" in line for line in lines), lines
    assert not any("port None" in line for line in lines), lines

    missing = requests.get(emu.url + "/", timeout=60)
    assert missing.status_code == 500 and missing.text == NO_PORT
    # The app listens 1.5 s after the start: the request waits for it, not for nothing.
    resp = requests.get(emu.url + "/", headers={"cf-container-target-port": "8080"}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert "Directory listing" in resp.text
    assert emu.instances()["instance-0"]["cold_start_ms"] >= 1400


# -- client connections ----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_sockets(url: str, n: int) -> list[socket.socket]:
    host, _, port = url.removeprefix("http://").partition(":")
    return [socket.create_connection((host, int(port)), timeout=10) for _ in range(n)]


def open_accepted(url: str, n: int, batch: int = 50) -> list[socket.socket]:
    """`n` connections, `batch` at a time, each batch accepted by emu before the next. In a
    burst past the listen backlog (128) while emu's loop waits for a CPU, SYNs are dropped and
    sent again only a second later (TCP's first retransmission): on a busy machine, opening
    300 took over a second, and the connections opened first reached their keepalive timeout
    before the last were open (this test failed once so)."""
    port = int(url.rpartition(":")[2])
    opened: list[socket.socket] = []
    while len(opened) < n:
        opened += open_sockets(url, min(batch, n - len(opened)))
        wait_for(
            lambda: (
                accept_queue(port) == 0
                and all(state != "SYN_RECV" for _, state in tcp_sockets(port))
            ),
            10,
            "emu to accept the connections",
            every=0.01,
        )
    return opened


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
    # The keepalive timeout is well past the header timeout: the idle connections, opened
    # first, must still be open when the last slow one is closed and when the bound refuses,
    # also when opening the 300 connections takes a busy machine a second or two.
    flags = ("--no-logs", "--header-timeout", "1s", "--keepalive-timeout", "5s")
    path = Project(instances=1).write(tmp_path)
    with EmuProcess(path, *flags, "--max-connections", "300") as emu:
        wait_for(lambda: emu.status()["serving"], 600, "the image")
        before = rss_kib(emu.pid)
        idle = open_accepted(emu.url, 150)
        slow = open_accepted(emu.url, 150)
        for sock in slow:  # slowloris: a request whose headers never end
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        began = time.monotonic()
        over = open_sockets(emu.url, 20)  # past --max-connections: 503 and closed
        for sock in over:
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 503"), "no 503 past the bound"
        wait_for(lambda: all(closed_by_peer(s) for s in slow), 10, "slow requests closed")
        slow_after = time.monotonic() - began
        # Closed by the header timeout, not the keepalive: the idle ones, older, are all open.
        assert not any(closed_by_peer(s) for s in idle), slow_after
        assert slow_after >= 0.8, slow_after
        wait_for(lambda: all(closed_by_peer(s) for s in idle), 15, "idle connections closed")
        idle_after = time.monotonic() - began
        assert idle_after > slow_after + 1, (slow_after, idle_after)
        for sock in idle + slow + over:
            sock.close()
        # Room again; a request gets through.
        resp = requests.get(emu.url + "/health", timeout=60)
        assert resp.status_code == 200
        grown = rss_kib(emu.pid) - before
        assert grown < 20 * 1024, f"RSS grew by {grown} KiB"
