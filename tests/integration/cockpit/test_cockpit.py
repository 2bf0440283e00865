"""The cockpit: the control API and its refusals, loopback only, prewarm, `emu logs -f`."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pytest
import requests

from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.testing import EmuProcess, wait_for

pytestmark = pytest.mark.docker

HELLO = Path(__file__).resolve().parents[3] / "examples" / "hello" / "wrangler.jsonc"


def test_bad_control_requests_get_clear_errors_and_the_front_goes_on(emu_up: EmuUp) -> None:
    emu = emu_up(HELLO, stop_grace="5s")
    base = emu.url + "/_emu/instances"
    assert requests.get(emu.url + "/x", timeout=60).status_code == 200
    served = next(r["instance"] for r in emu.requests())

    cases = {
        f"{base}/Nope/instance-0/kill": 404,
        f"{base}/Hello/instance-77/kill": 404,
        f"{base}/Hello/{served}/explode": 400,
        f"{base}/Hello/{served}/signal?sig=999": 400,
        f"{base}/Hello/{served}/signal?sig=NOPE": 400,
        f"{base}/Hello/..%2Fx/start": 404,
    }
    for url, status in cases.items():
        resp = requests.post(url, timeout=30)
        assert resp.status_code == status, (url, resp.text)
        assert resp.json()["status"] == status and resp.json()["error"]
    assert requests.get(f"{base}/Hello/instance-77/logs", timeout=30).status_code == 404

    # A kill: the container dies as in a crash; a second kill finds nothing to kill.
    killed = requests.post(f"{base}/hello/{served}/kill", timeout=30)  # the class: any case
    assert killed.status_code == 202
    gone = emu.wait_for(served, "stopped_with_code", 30)
    assert gone["exit_code"] == 137 and "137" in gone["last_error"]
    assert [e for e in emu.events() if e["event"] == "exited" and e["instance"] == served]
    again = requests.post(f"{base}/Hello/{served}/kill", timeout=30)
    assert again.status_code == 409 and "no running container" in again.json()["error"]
    # Its output is still there after the container was removed.
    kept = requests.get(f"{base}/Hello/{served}/logs", timeout=30)
    assert "GET /x" in kept.text.splitlines()

    # A signal by number, a stop, a start (prewarm) by the API; the front serves all along.
    assert requests.post(f"{base}/Hello/instance-2/start", timeout=60).json()["state"] == "healthy"
    assert requests.post(f"{base}/Hello/instance-2/signal?sig=15", timeout=30).status_code == 202
    emu.wait_for("instance-2", "stopped_with_code", 30)  # the hello server exits 0 on SIGTERM
    assert requests.get(emu.url + "/y", timeout=60).status_code == 200
    assert emu.emulator.status()["serving"]


def test_no_worker_probes_and_cold_starts_apart_and_no_debug_headers(emu_up: EmuUp) -> None:
    emu = emu_up(HELLO, EmulatorOptions(debug_headers=False), instances=1)
    began = time.perf_counter()
    first = requests.get(emu.url + "/first", timeout=60)
    client_ms = (time.perf_counter() - began) * 1000
    assert first.status_code == 200 and "x-emu-instance" not in first.headers
    assert requests.get(emu.url + "/second", timeout=60).status_code == 200
    inst = emu.instances()["instance-0"]
    # emu's own readiness probes are counted apart from the two requests.
    assert inst["requests"] == 2 and inst["probes"] >= 1
    waited = inst["client_cold_start_ms"]
    assert abs(waited - client_ms) <= max(0.2 * client_ms, 100), (waited, client_ms)
    assert inst["cold_start_ms"] <= waited


def test_control_endpoints_answer_on_loopback_only(
    emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    """With --host 0.0.0.0, a request that arrives on another local address (the gateway of
    emu's own bridge network, an address of this machine) gets 403 from every cockpit
    endpoint, whatever its Host header says; the proxied paths and loopback still work."""
    emu = emu_up(HELLO, host="0.0.0.0")
    network = next(iter(emu.emulator.pools.values())).runtime.network
    gateway = docker_client.networks.get(network).attrs["IPAM"]["Config"][0]["Gateway"]
    outside = f"http://{gateway}:{emu.emulator.port}"
    local = emu.emulator.local_url
    cockpit = [
        ("POST", "/_emu/instances/Hello/instance-0/start"),
        ("POST", "/_emu/instances/Hello/instance-0/kill"),
        ("GET", "/_emu/instances/Hello/instance-0/logs"),
        ("GET", "/_emu/"),
        ("GET", "/_emu/ui/app.js"),
        ("GET", "/_emu/events?stream=1"),
        ("GET", "/_emu/requests"),
    ]
    for method, path in cockpit:
        resp = requests.request(method, outside + path, headers={"Host": "127.0.0.1"}, timeout=30)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "loopback" in resp.json()["error"]
    assert requests.get(outside + "/hi", timeout=60).status_code == 200
    # What only reads answers any client, as it always has: the status, the events as JSON, metrics.
    for path in ("/_emu/status", "/_emu/events", "/_emu/metrics"):
        assert requests.get(outside + path, timeout=30).status_code == 200, path
    assert not [e for e in emu.events() if e["event"] == "signalled"]  # the kill did nothing
    assert requests.get(local + "/_emu/requests", timeout=30).status_code == 200
    started = requests.post(local + "/_emu/instances/Hello/instance-0/start", timeout=60)
    assert started.status_code == 200


def test_prewarm_starts_instances_before_the_first_request() -> None:
    with EmuProcess(HELLO, "--prewarm", "3", "--no-logs") as emu:
        before = emu.instances()
        assert {n: i["state"] for n, i in before.items()} == {
            f"instance-{k}": "healthy" for k in range(3)
        }
        assert all(i["cold_start_ms"] is not None for i in before.values())
        for k in range(3):
            headers = {"x-emu-instance": f"instance-{k}"}
            assert requests.get(emu.url + "/", headers=headers, timeout=30).status_code == 200
        records = requests.get(emu.url + "/_emu/requests", timeout=30).json()
        assert [(r["instance"], r["cold"]) for r in records] == [
            (f"instance-{k}", False) for k in range(3)
        ]
        assert {n: i["starts"] for n, i in emu.instances().items()} == {
            f"instance-{k}": 1 for k in range(3)
        }


def test_emu_logs_follow_prints_new_lines_and_ends_cleanly_on_ctrl_c() -> None:
    with EmuProcess(HELLO, "--no-logs") as emu:
        follow = subprocess.Popen(
            [sys.executable, "-m", "emulator", "logs", "-f", "instance-0", "--url", emu.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=read_lines, args=(follow, lines), daemon=True)
        reader.start()
        try:
            for n in range(3):
                headers = {"x-emu-instance": "instance-0"}
                requests.get(f"{emu.url}/line-{n}", headers=headers, timeout=60)
                wait_for(functools.partial(contains, lines, f"GET /line-{n}"), 20, f"line {n}")
            follow.send_signal(signal.SIGINT)
            assert follow.wait(20) == 0
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait(10)
        reader.join(10)
        assert follow.stderr is not None
        err = follow.stderr.read()
        assert "Traceback" not in err and err.strip() == "", err
        assert lines.index("GET /line-0") < lines.index("GET /line-1") < lines.index("GET /line-2")


def contains(lines: list[str], line: str) -> bool:
    return line in lines


def read_lines(proc: subprocess.Popen[str], into: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.append(line.rstrip("\n"))
