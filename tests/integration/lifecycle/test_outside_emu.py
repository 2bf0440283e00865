"""Instances and emu when things change outside emu, on the real engine: an instance type larger
than the machine, instances killed or removed from outside, emu's network removed under it,
`emu ps` and `emu down` beside a live `emu up`."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.instances.events import EventKind, LifecycleEvent
from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.runs import labels
from emulator.testing import EmuProcess, RunningEmulator, wait_for
from tests.support import (
    Project,
    container_gone,
    containers,
    emu_cli,
    events_of,
    hit,
    networks,
)

pytestmark = pytest.mark.docker


def get(emu: RunningEmulator, name: str, path: str = "/health", **kw: Any) -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name}, timeout=60, **kw)


def post(emu: RunningEmulator, name: str, path: str) -> requests.Response:
    return requests.post(emu.url + path, headers={"x-emu-instance": name}, timeout=60)


# -- an instance type larger than the machine ------------------------------------------------------


def test_instance_type_above_the_engines_cpus_runs_capped_and_says_so(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    cpus = int(docker_client.info()["NCPU"])
    if cpus >= 4:
        pytest.skip("the engine has 4 CPUs or more: standard-4 fits")
    path = Project(instance_type="standard-4", instances=1).write(tmp_path)
    lines: list[str] = []
    emu = emu_up(path, EmulatorOptions(on_output=lambda source, line: lines.append(line)))
    resp = get(emu, "a")
    assert resp.status_code == 200, resp.text
    host = docker_client.api.inspect_container(emu.instances()["a"]["container_id"])["HostConfig"]
    assert host["NanoCpus"] == cpus * 10**9
    assert host["Memory"] == 12288 * 2**20  # kept
    said = [line for line in lines if "4 vCPU is more than" in line]
    assert len(said) == 1 and f"{cpus} CPUs" in said[0], lines
    note = emu.status()["classes"][0]["engine_note"]
    assert note is not None and "NanoCpus capped" in note
    shown = emu_cli("config", "-c", str(path))
    assert shown.returncode == 0 and "4 vCPU is more than" in shown.stdout, shown.stdout
    as_json = json.loads(emu_cli("config", "--json", "-c", str(path)).stdout)
    assert any("NanoCpus capped" in n for n in as_json["engine_notes"])


# -- an instance killed from outside ---------------------------------------------------------------


def test_kill_and_removal_outside_emu_are_logged_as_such(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    lines: list[str] = []
    emu = emu_up(
        Project(instances=2).write(tmp_path),
        EmulatorOptions(on_output=lambda source, line: lines.append(line)),
    )
    for name, remove, reason in (
        ("k", False, "killed outside emu"),
        ("r", True, "removed outside emu"),
    ):
        assert get(emu, name).status_code == 200
        cid = emu.instances()[name]["container_id"]
        container = docker_client.containers.get(cid)
        if remove:
            container.remove(force=True)
        else:
            container.kill()

        def exited(name: str = name) -> list[LifecycleEvent]:
            return [e for e in events_of(emu, name) if e["event"] is EventKind.EXITED]

        found = wait_for(exited, 10, f"the exit of {name}")
        assert found[0]["reason"] == reason and found[0]["exit_code"] == 137, found
        assert reason in (emu.instances()[name]["last_error"] or "")
        assert any(f"{name} exited reason={reason}" in line for line in lines), lines[-5:]
        assert not any(e.get("reason") == "sleepAfter expired" for e in events_of(emu, name))
        wait_for(partial(container_gone, docker_client, cid), 10, "the container's removal")
        assert get(emu, name).status_code == 200  # and the next request starts a fresh one


# -- emu's network removed under a running emu up; emu down beside it ------------------------------


def test_network_removed_under_emu_up_is_made_again_and_emu_down_asks_it_to_stop(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2).write(tmp_path)
    proc = EmuProcess(path, "--no-logs").start()
    try:
        hit(proc, "a")
        # What `docker rm -f` of everything, then `docker network prune`, does to it.
        for c in containers(docker_client, session=proc.session):
            c.remove(force=True)
        for n in networks(docker_client, session=proc.session):
            n.remove()
        resp = requests.get(proc.url + "/health", headers={"x-emu-instance": "b"}, timeout=60)
        assert resp.status_code == 200, resp.text
        (net,) = networks(docker_client, session=proc.session)
        assert net.attrs["Labels"][labels.URL] == proc.url  # with its labels: emu status finds it
        assert "network_recreated" in proc.output
        hit(proc, "a")  # the one whose container was removed, too

        down = emu_cli("down", "-c", str(path))
        assert down.returncode == 0, down.stderr
        assert f"emu up (pid {proc.pid}) is running: asking it to stop (SIGTERM)" in down.stdout
        assert f"emu up (pid {proc.pid}) stopped" in down.stdout
        assert proc.wait(10) == 0, proc.tail()  # a clean stop, not resources pulled from under it
        assert "stopped; all containers and networks removed" in proc.output
        assert containers(docker_client, project=proc.project) == []
        assert networks(docker_client, project=proc.project) == []
    finally:
        proc.kill()


def test_emu_down_leaves_an_emulator_inside_another_program_alone_without_force(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=1).write(tmp_path)
    emu = emu_up(path)
    assert get(emu, "a").status_code == 200
    down = emu_cli("down", "-c", str(path))
    assert down.returncode == 1 and "inside another program" in down.stderr, down.stderr
    assert get(emu, "a").status_code == 200
    forced = emu_cli("down", "--force", "-c", str(path))
    assert forced.returncode == 0 and "from under it" in forced.stdout, forced.stdout
    assert containers(docker_client, session=emu.status()["session"]) == []


# -- emu ps: emu's state where an emu up runs, Docker's otherwise ----------------------------------


def test_emu_ps_shows_emus_state_while_emu_up_runs_and_dockers_after(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=1).write(tmp_path)
    proc = EmuProcess(path, "--no-logs", "--no-reaper").start()
    try:
        hit(proc, "a")
        ps = emu_cli("ps", "-c", str(path))
        assert ps.returncode == 0 and "healthy (emu)" in ps.stdout, ps.stdout
        (row,) = json.loads(emu_cli("ps", "--json", "-c", str(path)).stdout)
        assert (row["state"], row["state_from"], row["status"]) == ("healthy", "emu", "running")
        assert proc.instances()["a"]["state"] == row["state"]  # as emu status says
        proc.kill()  # no emu up any more: Docker's word is all there is
        ps = emu_cli("ps", "-c", str(path))
        assert ps.returncode == 0 and "running (docker)" in ps.stdout, ps.stdout
    finally:
        proc.kill()
        emu_cli("down", "-c", str(path))
    assert containers(docker_client, project=proc.project) == []
