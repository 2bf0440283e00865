"""`docker stack deploy -c compose.yaml -c compose.swarm.yaml` runs emu as a Swarm service on a
manager, its instances as services: emu joins their overlay and reaches each task on its overlay
address, so a class with `enableInternet = false` (an internal overlay) is served too.
`docker stack rm` leaves no service, container or network.

One stack for every assert (a deploy and a removal cost about half a minute): the seed's
project with `enableInternet = false`, which is the case only emu on the overlay can serve."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.runs import labels
from emulator.runs.labels import project_id
from emulator.testing import WaitTimeout, wait_for
from tests.support import REPO, Project, free_port, swarm_mode

pytestmark = pytest.mark.docker

GIB = 1024**3
# What the Dockerfile copies: the image's tag is their hash, so a run builds it once.
IMAGE_INPUTS = ("Dockerfile", "pyproject.toml", "README.md", "emulator")
STACK_LABEL = "com.docker.stack.namespace"  # Docker's own, on what `stack deploy` makes


def emu_image() -> str:
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        root = REPO / name
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    tag = f"emu:stack-{digest.hexdigest()[:12]}"
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    if found.returncode != 0:
        subprocess.run(["docker", "build", "-q", "-t", tag, str(REPO)], check=True, timeout=600)
    return tag


def _docker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _override(root: Path, config: Path) -> Path:
    """The test's third compose file: the project under `root` instead of the seed, mounted at
    its own path (with the repository: the project names the executor by a relative path).
    emu's own routing (--no-worker): the test picks instances by x-emu-instance; worker mode in
    emu's image is compose's test, and on Swarm test_swarm's."""
    path = root / "compose.test.yaml"
    path.write_text(
        f"""version: "3.8"
services:
  emu:
    command: ["up", "-c", "{config}", "--host", "0.0.0.0", "--port", "8787", "--no-logs",
              "--no-worker"]
    volumes:
      - {root}:{root}:ro
      - {REPO}:{REPO}:ro
"""
    )
    return path


@pytest.fixture
def stack(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[tuple[str, str]]:
    """(URL, stack name) of emu deployed as a stack; `docker stack rm` at the end (again: the
    test runs it itself too), inside Swarm mode. Leaving Swarm removes services and overlays,
    not plain containers: emu's overlay anchors, if emu's own stop did not, are removed here."""
    image = emu_image()
    config = Project(instances=3, extra_class_body="  enableInternet = false;").write(tmp_path)
    name, port = f"emu-test-{os.getpid()}", free_port()
    test_file = _override(tmp_path, config)
    files = ["-c", "compose.yaml", "-c", "compose.swarm.yaml", "-c", str(test_file)]
    project: dict[str, str | list[str] | bool] = {
        "label": labels.docker_filter(labels.project_labels(project_id(config)))
    }
    with swarm_mode():
        try:
            env = {"EMU_PORT": str(port), "EMU_IMAGE": image}
            deployed = _docker("stack", "deploy", *files, name, env=env)
            assert deployed.returncode == 0, deployed.stderr[-2000:]
            url = f"http://127.0.0.1:{port}"
            try:
                wait_for(lambda: _serving(url), 120, "emu in the stack to serve", every=0.2)
            except WaitTimeout:
                tasks = _docker("service", "ps", "--no-trunc", f"{name}_emu").stdout
                logs = _docker("service", "logs", "--raw", f"{name}_emu")
                pytest.fail(f"emu in the stack did not serve:\n{tasks}{logs.stdout}{logs.stderr}")
            yield url, name
        finally:
            _docker("stack", "rm", name)
            with contextlib.suppress(WaitTimeout):  # emu's own stop first, as a user's would
                wait_for(lambda: not _stack_containers(docker_client, name), 60, "emu to stop")
            for leftover in docker_client.containers.list(all=True, filters=project):
                leftover.remove(force=True)


def _stack_containers(client: docker.DockerClient, stack: str) -> list[Any]:
    found = client.containers.list(all=True, filters={"label": f"{STACK_LABEL}={stack}"})
    return list(found)


def _serving(url: str) -> bool:
    try:
        return bool(requests.get(url + "/_emu/status", timeout=2).json()["serving"])
    except (requests.RequestException, ValueError):
        return False


def _made(client: docker.DockerClient, session: str, stack: str) -> list[Any]:
    """The services, containers and networks of emu's session and of the stack."""
    found: list[Any] = []
    for label in (labels.docker_filter(labels.session_filter(session)), f"{STACK_LABEL}={stack}"):
        wanted: dict[str, str | list[str] | bool] = {"label": label}
        found += client.services.list(filters=wanted)
        found += client.containers.list(all=True, filters=wanted, ignore_removed=True)
        found += client.networks.list(filters=wanted)
    return found


def test_stack_serves_on_the_overlay_internal_too_and_rm_leaves_nothing(
    stack: tuple[str, str], docker_client: docker.DockerClient
) -> None:
    url, name = stack
    session = requests.get(url + "/_emu/status", timeout=10).json()["session"]
    resp = requests.get(url + "/info", headers={"x-emu-instance": "instance-2"}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["cpu_limit_vcpu"] == 1.0
    assert resp.json()["memory_limit_bytes"] == 6 * GIB

    session_label: dict[str, str | list[str] | bool] = {
        "label": labels.docker_filter(labels.session_filter(session))
    }
    [service] = docker_client.services.list(filters=session_label)
    limits = {"NanoCPUs": 1_000_000_000, "MemoryBytes": 6 * GIB}
    assert service.attrs["Spec"]["TaskTemplate"]["Resources"]["Reservations"] == limits
    assert not service.attrs["Endpoint"].get("Ports"), "reached on the overlay: no port published"
    # Reached on its address of the session's internal overlay, which emu's container joined.
    made = docker_client.networks.list(filters=session_label)
    [net] = [n for n in made if n.attrs["Internal"]]
    assert net.attrs["Driver"] == "overlay" and net.attrs["Attachable"] is True
    subnet = ipaddress.ip_network(net.attrs["IPAM"]["Config"][0]["Subnet"])
    status = requests.get(url + "/_emu/status", timeout=10).json()
    [inst] = [i for i in status["classes"][0]["instances"] if i["name"] == "instance-2"]
    assert ipaddress.ip_address(inst["ip"]) in subnet and not inst["host_ports"]
    # The Docker socket goes to emu's container only.
    instance = {**labels.session_filter(session), labels.INSTANCE: "instance-2"}
    [task] = docker_client.containers.list(filters={"label": labels.docker_filter(instance)})
    assert not task.attrs["Mounts"]
    [front] = docker_client.containers.list(filters={"label": f"{STACK_LABEL}={name}"})
    assert "/var/run/docker.sock" in {m["Destination"] for m in front.attrs["Mounts"]}

    removed = _docker("stack", "rm", name)
    assert removed.returncode == 0, removed.stderr
    try:
        wait_for(lambda: not _made(docker_client, session, name), 60, "the stack to go", every=0.2)
    except WaitTimeout:
        left = [(type(x).__name__, x.name) for x in _made(docker_client, session, name)]
        logs = _docker("service", "logs", "--raw", f"{name}_emu")
        pytest.fail(f"left after `docker stack rm`: {left}\n{logs.stdout}{logs.stderr}")
