"""Issues 9 and 12, lifecycle points, against the real engine: an instance type larger than
the machine, emu's network removed under it, containers that ignore SIGTERM, instances killed
from outside, `emu ps` and `emu down` beside a live `emu up`, and `--watch` replacing instances."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.pytest_plugin import EmuUp
from emulator.testing import RunningEmulator, wait_for
from tests.support import Project, container_gone, emu_cli

pytestmark = pytest.mark.docker


def get(emu: RunningEmulator, name: str, path: str = "/health", **kw: Any) -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name}, timeout=60, **kw)


def post(emu: RunningEmulator, name: str, path: str) -> requests.Response:
    return requests.post(emu.url + path, headers={"x-emu-instance": name}, timeout=60)


def events_of(emu: RunningEmulator, name: str) -> list[dict[str, Any]]:
    return [e for e in emu.events() if e.get("instance") == name]


# -- an instance type larger than the machine (issue 9, defect 1) ------------------------------


def test_instance_type_above_the_engines_cpus_runs_capped_and_says_so(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    cpus = int(docker_client.info()["NCPU"])
    if cpus >= 4:
        pytest.skip("the engine has 4 CPUs or more: standard-4 fits")
    path = Project(instance_type="standard-4", instances=1).write(tmp_path)
    lines: list[str] = []
    emu = emu_up(path, on_output=lambda source, line: lines.append(line))
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
