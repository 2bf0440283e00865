"""compose.yaml runs emu itself: `docker-compose up --build` serves examples/seed on the host,
with the same limits and labels; `docker-compose down` leaves no instance and no network."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import docker
import pytest
import requests

from emulator.runs import labels
from emulator.testing import wait_for
from tests.support import REPO, free_port

pytestmark = pytest.mark.docker

GIB = 1024**3


def _compose(project: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-p", project, *args],
        cwd=REPO,
        env={**os.environ, "EMU_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def compose_up() -> Iterator[tuple[str, str, int]]:
    """(URL, compose project, port) of emu under `docker-compose up`; `docker-compose down` at
    the end (again: the test runs it itself too)."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose)")
    project, port = f"emu-compose-test-{os.getpid()}", free_port()
    try:
        # Cached: the dependencies are a layer of their own, emu's code a small one.
        up = _compose(project, port, "up", "-d", "--build")
        assert up.returncode == 0, up.stderr[-2000:]
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _serving(url), 120, "emu in compose to serve", every=0.2)
        yield url, project, port
    finally:
        down = _compose(project, port, "down")
        assert down.returncode == 0, down.stderr[-2000:]


def _serving(url: str) -> bool:
    try:
        return bool(requests.get(url + "/_emu/status", timeout=2).json()["serving"])
    except (requests.RequestException, ValueError):
        return False


def test_compose_serves_the_seed_with_limits_and_down_leaves_nothing(
    compose_up: tuple[str, str, int], docker_client: docker.DockerClient
) -> None:
    url, project, port = compose_up
    status = requests.get(url + "/_emu/status", timeout=10).json()
    session = status["session"]
    assert status["mode"] == "worker"  # the seed's Worker runs in workerd, in emu's image
    resp = requests.get(url + "/info", timeout=60)  # its getRandom picks the instance
    assert resp.status_code == 200, resp.text
    assert resp.json()["cpu_limit_vcpu"] == 1.0
    assert resp.json()["memory_limit_bytes"] == 6 * GIB
    found = labels.docker_filter(labels.session_filter(session))
    [inst] = docker_client.containers.list(filters={"label": found})
    assert inst.labels[labels.INSTANCE] == resp.json()["hostname"]
    assert inst.attrs["HostConfig"]["Memory"] == 6 * GIB
    assert not inst.attrs["Mounts"], "only emu's container gets the Docker socket"
    # Its network, and the internal one a start({enableInternet: false}) may ask for.
    assert len(docker_client.networks.list(filters={"label": found})) == 2

    down = _compose(project, port, "down")
    assert down.returncode == 0, down.stderr[-2000:]
    assert not docker_client.containers.list(all=True, filters={"label": found})
    assert not docker_client.networks.list(filters={"label": found})
