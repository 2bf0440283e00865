"""Stopping an instance: SIGTERM, then SIGKILL after --stop-grace for a container that ignores
SIGTERM (it is still served meanwhile, signalled again after its next idle period, and a request
that cannot be served learns why), and emu's own shutdown, which does not wait a long grace."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
import requests

from emulator.pytest_plugin import EmuUp
from emulator.testing import RunningEmulator, wait_for
from tests.support import Project, container_gone, emu_cli, events_of

pytestmark = pytest.mark.docker


def get(emu: RunningEmulator, name: str, path: str = "/health") -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name}, timeout=60)


def post(emu: RunningEmulator, name: str, path: str) -> requests.Response:
    return requests.post(emu.url + path, headers={"x-emu-instance": name}, timeout=60)


def test_container_ignoring_sigterm_is_killed_after_stop_grace(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    emu = emu_up(Project(instances=1, sleep_after="1s").write(tmp_path), stop_grace="2s")
    assert get(emu, "stubborn").status_code == 200
    cid = emu.instances()["stubborn"]["container_id"]
    assert post(emu, "stubborn", "/diag/ignore-sigterm").status_code == 200
    last = time.monotonic()
    wait_for(lambda: container_gone(docker_client, cid), 10, "the container to be killed")
    elapsed = time.monotonic() - last
    assert 3.0 <= elapsed <= 4.5, f"gone {elapsed:.2f} s after the last response (1 s + 2 s)"
    history = requests.get(emu.url + "/_emu/events", timeout=10).json()
    kinds = {e["event"]: e for e in history if e.get("instance") == "stubborn"}
    assert kinds["stopping"]["reason"] == "sleepAfter expired"
    assert kinds["killing"]["reason"] == "no exit 2 s after SIGTERM"
    assert 1.9 <= kinds["killing"]["time"] - kinds["stopping"]["time"] <= 3.0
    assert kinds["stopped"]["exit_code"] == 137
    assert emu.instances()["stubborn"]["state"] == "stopped"


def test_shutdown_during_a_long_idle_stop_kills_within_the_shutdown_grace(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    """An idle stop waits --stop-grace (15 min here) for a container that ignores SIGTERM;
    stopping emu meanwhile must not wait that long: its own grace is 10 s at most."""
    emu = emu_up(Project(instances=1, sleep_after="1s").write(tmp_path), stop_grace="15m")
    assert get(emu, "stubborn").status_code == 200
    cid = emu.instances()["stubborn"]["container_id"]
    assert post(emu, "stubborn", "/diag/ignore-sigterm").status_code == 200
    wait_for(lambda: emu.instances()["stubborn"]["state"] == "stopping", 10, "the idle stop")
    began = time.monotonic()
    emu.stop()
    took = time.monotonic() - began
    assert took < 15, f"emu took {took:.1f} s to stop"
    assert container_gone(docker_client, cid)


def test_a_container_ignoring_sigterm_keeps_serving_and_is_signalled_again(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    emu = emu_up(Project(instances=1, sleep_after="1s").write(tmp_path), stop_grace="60s")
    assert get(emu, "s").status_code == 200
    cid = emu.instances()["s"]["container_id"]
    assert post(emu, "s", "/diag/ignore-sigterm").status_code == 200
    wait_for(lambda: emu.instances()["s"]["state"] == "stopping", 10, "the idle stop")
    # As on the platform: the container still runs, so it is still served; no 503.
    resp = get(emu, "s")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-emu-instance"] == "s"
    inst = emu.instances()["s"]
    assert inst["container_id"] == cid and inst["state"] == "stopping"
    assert 50 < inst["kill_in_s"] <= 60
    # Its next idle period ends 1 s after that request: SIGTERM again, SIGKILL 60 s from then.
    wait_for(
        lambda: any(e.get("reason") == "sleepAfter expired again" for e in events_of(emu, "s")),
        10,
        "the second SIGTERM",
    )
    assert emu.instances()["s"]["kill_in_s"] > 55
    said = wait_for(
        lambda: [e for e in events_of(emu, "s") if e["event"] == "sigterm_ignored"],
        10,
        "the log to say that it ignores SIGTERM",
    )
    assert "ignores SIGTERM" in said[0]["reason"] and "--stop-grace" in said[0]["reason"]
    table = emu_cli("status", "--url", emu.url)
    assert table.returncode == 0 and "SIGKILL in" in table.stdout, table.stdout
    assert not container_gone(docker_client, cid)
    # Killed from outside while stopping: the log says so, not "sleepAfter expired".
    docker_client.containers.get(cid).kill()
    stopped = wait_for(
        lambda: [e for e in events_of(emu, "s") if e["event"] == "stopped"], 10, "the stop"
    )
    assert stopped[0]["reason"] == "killed outside emu" and stopped[0]["exit_code"] == 137


def test_still_stopping_503_names_the_cause_and_the_remedy(tmp_path: Path, emu_up: EmuUp) -> None:
    """A stop that no longer serves (a replacement during an idle stop), on a container that
    ignores SIGTERM: a request waits --start-timeout, then learns why and what to do."""
    emu = emu_up(
        Project(instances=1, sleep_after="1s").write(tmp_path), stop_grace="8s", start_timeout="2s"
    )
    assert get(emu, "s").status_code == 200
    assert post(emu, "s", "/diag/ignore-sigterm").status_code == 200
    wait_for(lambda: emu.instances()["s"]["state"] == "stopping", 10, "the idle stop")

    async def replace() -> None:
        emu.emulator.pools["PythonExecutorContainer"].replace_running("image rebuilt", 30)

    emu.call(replace())
    resp = get(emu, "s")
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert "ignored SIGTERM" in error and "handle SIGTERM" in error and "--stop-grace" in error
    assert any(e["event"] == "still_stopping" for e in events_of(emu, "s"))
