"""`--engine swarm` on this machine's engine made a one-node Swarm: each instance a service
with the instance type as limits and reservations, reached on its `mode=host` published port.

Each test runs `docker swarm init` itself and `docker swarm leave --force` at its end, under
`tests.support.swarm_mode`'s lock (leaving a Swarm does not touch plain containers)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator import labels
from emulator.config import Overrides
from emulator.engines import Engine
from emulator.errors import NO_INSTANCE
from emulator.testing import EmuProcess, RunningEmulator, wait_for
from tests.support import Project, emu_cli, swarm_mode

pytestmark = pytest.mark.docker

GIB = 1024**3

JSON = {"Accept": "application/json"}  # emu's detail, beside the library's text


@pytest.fixture
def swarm() -> Iterator[None]:
    with swarm_mode():
        yield


def services(client: docker.DockerClient, session: str) -> list[Any]:
    found = labels.docker_filter(labels.session_filter(session))
    return list(client.services.list(filters={"label": found}))


def session_networks(client: docker.DockerClient, session: str) -> list[Any]:
    found = labels.docker_filter(labels.session_filter(session))
    return list(client.networks.list(filters={"label": found}))


def test_an_instance_is_a_service_with_limits_reservations_labels_and_overlay(
    tmp_path: Path, swarm: None, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2, max_instances=2, instance_type="basic", sleep_after="2s").write(
        tmp_path
    )
    with RunningEmulator.from_path(path, engine=Engine.detect("swarm")) as emu:
        session = emu.emulator.session_id
        resp = requests.get(emu.url + "/info", headers={"x-emu-instance": "instance-0"}, timeout=60)
        assert resp.status_code == 200, resp.text
        assert resp.json()["cpu_limit_vcpu"] == 0.25
        assert resp.json()["memory_limit_bytes"] == 1 * GIB
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

        # sleepAfter removes the service.
        wait_for(lambda: not services(docker_client, session), 10, "the idle service to go")
        wait_for(lambda: emu.instances()["instance-0"]["state"] == "stopped", 10, "the stop to end")
    assert not services(docker_client, session)
    assert not session_networks(docker_client, session)


def test_one_service_for_concurrent_requests_and_max_instances_counts_services(
    tmp_path: Path, swarm: None, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2, max_instances=1, instance_type="lite").write(tmp_path)
    with RunningEmulator.from_path(path, engine=Engine.detect("swarm")) as emu:
        session = emu.emulator.session_id
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            codes = list(
                pool.map(
                    lambda _: (
                        requests.get(
                            emu.url + "/health", headers={"x-emu-instance": "a"}, timeout=60
                        ).status_code
                    ),
                    range(100),
                )
            )
        assert codes == [200] * 100
        assert emu.instances()["a"]["starts"] == 1
        assert len(services(docker_client, session)) == 1
        full = requests.get(emu.url + "/health", headers={"x-emu-instance": "b"}, timeout=60)
        assert full.status_code == 503
        assert full.text == NO_INSTANCE  # the library's own text
        detail = requests.get(
            emu.url + "/health", headers={"x-emu-instance": "b", **JSON}, timeout=60
        )
        assert detail.status_code == 503 and detail.json()["error"] == NO_INSTANCE
        assert len(services(docker_client, session)) == 1


def test_pending_for_memory_answers_503_with_the_schedulers_reason(
    tmp_path: Path, swarm: None, docker_client: docker.DockerClient
) -> None:
    # 12 GiB reserved each: this machine's node (under 24 GiB) takes one, not two.
    big = {"vcpu": 0.5, "memory_mib": 12288, "disk_mb": 2000}
    path = Project(instances=2, max_instances=2, instance_type=big).write(tmp_path)
    overrides = Overrides(start_timeout="5s")
    with RunningEmulator.from_path(path, overrides, engine=Engine.detect("swarm")) as emu:
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


def test_kill_9_leaves_nothing_once_emu_down_runs(
    tmp_path: Path, swarm: None, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2, max_instances=2, instance_type="lite").write(tmp_path)
    emu = EmuProcess(path, "--engine", "swarm", "--no-reaper").start()
    try:
        for name in ("x", "y"):
            r = requests.get(emu.url + "/health", headers={"x-emu-instance": name}, timeout=60)
            assert r.status_code == 200, r.text
        assert len(services(docker_client, emu.session)) == 2
        emu.kill()
        assert len(services(docker_client, emu.session)) == 2
        down = emu_cli("down", "-c", str(path), "--engine", "swarm")
        assert down.returncode == 0, down.stderr
        assert not services(docker_client, emu.session)
        wait_for(lambda: not session_networks(docker_client, emu.session), 20, "the overlay to go")
    finally:
        emu.stop()
