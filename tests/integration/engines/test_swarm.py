"""`--engine swarm` on this machine's engine made a one-node Swarm: each instance a service
with the instance type as limits and reservations, reached on its `mode=host` published port.

What holds on every engine (routing, limits inside, idle stop, one start, `max_instances`,
Ctrl-C and `kill -9` cleanup) is tested on Swarm too, in tests/integration/lifecycle/
(test_seed, test_up_down, test_reaper); here is what only Swarm has. The module runs
`docker swarm init` once and `docker swarm leave --force` at its end (the `engine` fixture), under
`tests.support.swarm_mode`'s lock (leaving a Swarm does not touch plain containers)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.config import Overrides
from emulator.options import EmulatorOptions
from emulator.runs import labels
from emulator.testing import RunningEmulator
from emulator.worker.runtime import RuntimeOptions
from tests.support import REPO, Project, emu_cli
from tests.support.engines import EngineUnderTest

pytestmark = pytest.mark.docker

GIB = 1024**3

JSON = {"Accept": "application/json"}  # emu's detail, beside the library's text


SWARM = pytest.mark.parametrize("engine", ["swarm"], indirect=True, scope="module")


def services(client: docker.DockerClient, session: str) -> list[Any]:
    found = labels.docker_filter(labels.session_filter(session))
    return list(client.services.list(filters={"label": found}))


def session_networks(client: docker.DockerClient, session: str) -> list[Any]:
    found = labels.docker_filter(labels.session_filter(session))
    return list(client.networks.list(filters={"label": found}))


@SWARM
def test_an_instance_is_a_service_with_limits_reservations_labels_and_overlay(
    tmp_path: Path, engine: EngineUnderTest, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2, max_instances=2, instance_type="basic").write(tmp_path)
    with RunningEmulator.from_path(
        path, options=EmulatorOptions(engine=engine.engine, worker=False)
    ) as emu:
        session = emu.emulator.session_id
        resp = requests.get(
            emu.url + "/health", headers={"x-emu-instance": "instance-0"}, timeout=60
        )
        assert resp.status_code == 200, resp.text
        [service] = services(docker_client, session)
        task = service.attrs["Spec"]["TaskTemplate"]
        limits = {"NanoCPUs": 250_000_000, "MemoryBytes": 1 * GIB}
        assert task["Resources"] == {"Limits": limits, "Reservations": limits}
        assert task["RestartPolicy"]["Condition"] == "none"
        assert service.attrs["Spec"]["Labels"][labels.INSTANCE] == "instance-0"
        assert task["ContainerSpec"]["Labels"][labels.INSTANCE] == "instance-0"
        [net] = session_networks(docker_client, session)
        assert net.attrs["Driver"] == "overlay" and net.attrs["Attachable"] is True
        inst = emu.instances()["instance-0"]
        assert inst["ip"] == "127.0.0.1" and inst["node"]

        listed = emu_cli("ps", "-c", str(path), "--engine", "swarm", "--json")
        assert listed.returncode == 0, listed.stderr
        [row] = json.loads(listed.stdout)
        assert row["instance"] == "instance-0" and row["node"] == inst["node"]
    assert not services(docker_client, session)
    assert not session_networks(docker_client, session)


@SWARM
def test_pending_for_memory_answers_503_with_the_schedulers_reason(
    tmp_path: Path, engine: EngineUnderTest, docker_client: docker.DockerClient
) -> None:
    # 12 GiB reserved each: this machine's node (under 24 GiB) takes one, not two.
    big = {"vcpu": 0.5, "memory_mib": 12288, "disk_mb": 2000}
    path = Project(instances=2, max_instances=2, instance_type=big).write(tmp_path)
    overrides = Overrides(start_timeout="5s")
    with RunningEmulator.from_path(
        path, overrides, EmulatorOptions(engine=engine.engine, worker=False)
    ) as emu:
        session = emu.emulator.session_id
        first = requests.get(emu.url + "/health", headers={"x-emu-instance": "one"}, timeout=60)
        assert first.status_code == 200, first.text
        began = time.monotonic()
        second = requests.get(
            emu.url + "/health", headers={"x-emu-instance": "two", **JSON}, timeout=60
        )
        took = time.monotonic() - began
        assert second.status_code == 503, second.text
        assert "insufficient resources on 1 node" in second.json()["reason"]
        assert 5 <= took < 5 + 3, f"answered after {took:.1f} s (--start-timeout 5 s)"
        assert len(services(docker_client, session)) == 1, "the pending service was removed"
        assert emu.instances()["two"]["state"] == "stopped"


@SWARM
def test_swarm_runs_the_worker(
    tmp_path: Path, engine: EngineUnderTest, docker_client: docker.DockerClient
) -> None:
    """Worker mode on Swarm: the runtime reaches each task on its published port (it answered
    'The container is not listening on port 8000' when it dialled the bridge address)."""
    seed = tmp_path / "seed"
    shutil.copytree(REPO / "examples" / "seed", seed)
    config = seed / "wrangler.jsonc"
    # Swarm reserves the limits; this 2-CPU node fits the seed only at 1/8 vCPU.
    config.write_text(
        config.read_text()
        .replace('"standard-2"', '{"vcpu": 0.125, "memory_mib": 512, "disk_mb": 2000}')
        .replace("../../executor/Dockerfile", str(REPO / "executor" / "Dockerfile"))
    )
    runtime = RuntimeOptions(persist=False)
    with RunningEmulator.from_path(
        config, options=EmulatorOptions(engine=engine.engine, runtime=runtime)
    ) as emu:
        resp = requests.get(emu.url + "/info", timeout=120)
        assert resp.status_code == 200, resp.text
        assert resp.json()["cpu_limit_vcpu"] == 0.125
        [service] = services(docker_client, emu.emulator.session_id)
        limits = service.attrs["Spec"]["TaskTemplate"]["Resources"]["Limits"]
        assert limits["NanoCPUs"] == 125_000_000
