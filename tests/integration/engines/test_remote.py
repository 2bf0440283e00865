"""Remote mode against this machine's own engine, exposed on tcp://127.0.0.1:<port> by socat:
instances publish their ports on that address and the front proxies there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from emulator.engine.choice import Engine, EngineKind
from emulator.options import EmulatorOptions
from emulator.testing import RunningEmulator
from emulator.worker.runtime import RuntimeOptions
from tests.support import REPO, Project, container_gone
from tests.support.engines import tcp_forward

pytestmark = pytest.mark.docker

GIB = 1024**3


@pytest.fixture
def tcp_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DOCKER_HOST=tcp://127.0.0.1:<port>, forwarded to the engine's socket for this test."""
    with tcp_forward() as url:
        monkeypatch.setenv("DOCKER_HOST", url)
        yield url


def test_detected_from_docker_host_and_forced() -> None:
    assert Engine.detect(None, "tcp://127.0.0.1:2375") == Engine(EngineKind.REMOTE, "127.0.0.1")
    assert Engine.detect(None, "ssh://me@127.0.0.1") == Engine(EngineKind.REMOTE, "127.0.0.1")
    assert Engine.detect(None, "unix:///var/run/docker.sock").kind is EngineKind.LOCAL
    assert Engine.detect(None, "").kind is EngineKind.LOCAL
    assert Engine.detect("remote", "") == Engine(EngineKind.REMOTE, "127.0.0.1")
    assert Engine.detect("local", "tcp://127.0.0.1:2375").kind is EngineKind.LOCAL


def test_remote_serves_the_seed_project_with_limits_on_published_ports(
    tmp_path: Path, tcp_engine: str, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2, max_instances=2).write(tmp_path)
    engine = Engine.detect()  # from DOCKER_HOST: remote
    assert engine == Engine(EngineKind.REMOTE, "127.0.0.1")
    with RunningEmulator.from_path(
        path, options=EmulatorOptions(engine=engine, worker=False)
    ) as emu:
        resp = requests.get(emu.url + "/info", headers={"x-emu-instance": "instance-1"}, timeout=60)
        assert resp.status_code == 200, resp.text
        info = resp.json()
        assert info["cpu_limit_vcpu"] == 1.0
        assert info["memory_limit_bytes"] == 6 * GIB
        inst = emu.instances()["instance-1"]
        assert inst["ip"] == "127.0.0.1"
        attrs = docker_client.api.inspect_container(inst["container_id"])
        host = attrs["HostConfig"]
        assert host["NanoCpus"] == 1_000_000_000
        assert host["Memory"] == host["MemorySwap"] == 6 * GIB
        [binding] = host["PortBindings"]["8000/tcp"]
        assert binding["HostIp"] == "127.0.0.1"
        published = int(attrs["NetworkSettings"]["Ports"]["8000/tcp"][0]["HostPort"])
        assert inst["host_ports"] == {"8000": published}
        # The published port is what answers (the front proxies to 127.0.0.1:published).
        direct = requests.get(f"http://127.0.0.1:{published}/health", timeout=10)
        assert direct.status_code == 200
        again = requests.get(emu.url + "/health", headers={"x-emu-instance": "instance-1"})
        assert again.status_code == 200
        assert emu.status()["engine"] == "remote"
        cid = inst["container_id"]
    assert container_gone(docker_client, cid)


def test_remote_runs_the_worker_on_published_ports(
    tcp_engine: str, docker_client: docker.DockerClient
) -> None:
    """Worker mode: the runtime reaches each container on its published port, not on a bridge
    address the client host cannot reach (once 'Container crashed while checking for ports')."""
    engine = Engine.detect()
    assert engine.kind is EngineKind.REMOTE
    seed = REPO / "examples" / "seed" / "wrangler.jsonc"
    with RunningEmulator.from_path(
        seed, options=EmulatorOptions(engine=engine, runtime=RuntimeOptions(persist=False))
    ) as emu:
        resp = requests.get(emu.url + "/info", timeout=120)  # the Worker's getRandom, then /info
        assert resp.status_code == 200, resp.text
        info = resp.json()
        assert info["cpu_limit_vcpu"] == 1.0 and info["memory_limit_bytes"] == 6 * GIB
        [inst] = emu.instances().values()
        assert inst["ip"] == "127.0.0.1" and inst["host_ports"]["8000"] > 0
        host = docker_client.api.inspect_container(inst["container_id"])["HostConfig"]
        assert host["NanoCpus"] == 1_000_000_000
