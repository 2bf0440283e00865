"""`emu up` as a user runs it: Ctrl-C, kill -9, `emu down`, `emu ps`, the next `emu up`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from emulator.pytest_plugin import EmuUp
from emulator.runs.labels import SESSION
from emulator.testing import EmuProcess, wait_for
from tests.support import (
    Project,
    containers,
    dockerfile_project,
    emu_cli,
    free_port,
    hit,
    networks,
)
from tests.support.engines import LOCAL_AND_SWARM, EngineUnderTest, session_of

pytestmark = pytest.mark.docker


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    path = Project(instances=3).write(tmp_path)
    yield path
    emu_cli("down", "-c", str(path))  # whatever a failing test left behind


@pytest.fixture
def on_engine(tmp_path: Path, engine: EngineUnderTest) -> Iterator[Path]:
    """`project`, of a type the engine places three of."""
    path = Project(instances=3, instance_type=engine.instance_type).write(tmp_path)
    yield path
    emu_cli("down", "-c", str(path), *engine.flags)  # whatever a failing test left behind


@LOCAL_AND_SWARM
def test_ctrl_c_removes_every_container_and_network(
    on_engine: Path, docker_client: docker.DockerClient, engine: EngineUnderTest
) -> None:
    proc = EmuProcess(on_engine, "--no-logs", *engine.flags).start()
    try:
        hit(proc, "instance-0")
        hit(proc, "instance-1")
        pid = proc.project
        assert len(engine.live(docker_client, project=pid)) == 2
        assert networks(docker_client, project=pid)
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        out = proc.output
        assert proc.returncode == 0, out
        assert engine.leftovers(docker_client, project=pid) == []
        assert networks(docker_client, project=pid) == []
    finally:
        proc.kill()


@LOCAL_AND_SWARM
def test_kill_9_then_down_then_next_up_leave_nothing(
    on_engine: Path, docker_client: docker.DockerClient, engine: EngineUnderTest
) -> None:
    project = on_engine
    first = EmuProcess(project, "--no-logs", "--no-reaper", *engine.flags).start()
    hit(first, "a")
    pid = first.project
    first.kill()  # SIGKILL: no cleanup at all
    assert len(engine.live(docker_client, project=pid)) == 1

    # A config broken since is no reason to keep the leftovers: ps and down need only its path.
    good = project.read_text()
    assert '"max_instances": 10' in good
    project.write_text(good.replace('"max_instances": 10', '"max_instances": 0'))
    ps = emu_cli("ps", "-c", str(project), *engine.flags)
    assert ps.returncode == 0 and " a " in ps.stdout.replace("\n", " \n"), ps.stdout
    down = emu_cli("down", "-c", str(project), *engine.flags)
    assert down.returncode == 0, down.stderr
    project.write_text(good)
    assert engine.leftovers(docker_client, project=pid) == []
    assert networks(docker_client, project=pid) == []

    second = EmuProcess(project, "--no-logs", "--no-reaper", *engine.flags).start()
    hit(second, "b")
    second.kill()
    left = engine.live(docker_client, project=pid)
    assert len(left) == 1
    # The next emu up sweeps what the killed one left.
    third = EmuProcess(project, "--no-logs", *engine.flags).start()
    try:
        remaining = {session_of(x) for x in engine.leftovers(docker_client, project=pid)}
        assert session_of(left[0]) not in remaining
        assert all(
            n.attrs["Labels"][SESSION] != session_of(left[0])
            for n in networks(docker_client, project=pid)
        )
        third.send_signal(signal.SIGTERM)
        third.wait(60)
        assert third.returncode == 0
    finally:
        third.kill()
    assert engine.leftovers(docker_client, project=pid) == []
    assert networks(docker_client, project=pid) == []


def test_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    path = Project(instance_type="standard-9").write(tmp_path)
    result = emu_cli("up", "-c", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "instance_type" in result.stderr and "standard-2" in result.stderr


def test_docker_unreachable_is_one_line_and_exit_1(project: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "emulator", "up", "-c", str(project), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Docker" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2, result.stderr


def test_ctrl_c_drains_a_request_in_flight(
    project: Path, docker_client: docker.DockerClient
) -> None:
    proc = EmuProcess(project, "--no-logs").start()
    try:
        hit(proc, "slow")
        pid = proc.project
        result: dict[str, requests.Response] = {}

        def slow() -> None:
            result["r"] = requests.get(
                proc.url + "/diag/sleep?ms=1500", headers={"x-emu-instance": "slow"}, timeout=60
            )

        thread = threading.Thread(target=slow)
        thread.start()
        wait_for(
            lambda: requests.get(proc.url + "/_emu/status", timeout=5).json()["inflight"] == 1,
            10,
            "the slow request to be in flight",
        )
        proc.send_signal(signal.SIGINT)
        thread.join(30)
        assert result["r"].status_code == 200, "the request in flight was not drained"
        proc.wait(60)
        out = proc.output
        assert proc.returncode == 0, out
        assert "draining 1 request" in out
        assert containers(docker_client, project=pid) == []
    finally:
        proc.kill()


def test_down_images_removes_what_emu_built(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    path = dockerfile_project(
        tmp_path,
        f"FROM python:3.11-slim\nLABEL run={uuid.uuid4().hex}\n"
        'CMD ["python", "-m", "http.server", "8000"]\n',
    )
    emu = emu_up(path)
    tag = emu.status()["classes"][0]["image"]
    docker_client.images.get(tag)  # built
    emu.stop()
    result = emu_cli("down", "--images", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert f"removed {tag}" in result.stdout
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


def test_listens_before_the_build_and_holds_requests_until_the_image(tmp_path: Path) -> None:
    """A request during the build waits for the image instead of a 503; a failed
    build answers the requests it held at once, with the build's error."""
    good = dockerfile_project(
        tmp_path / "good",
        f"FROM python:3.11-slim\nLABEL run={uuid.uuid4().hex}\n"
        "RUN sleep 3\n"  # a build that takes a while, not a wait in the test
        'CMD ["python", "-m", "http.server", "8000"]\n',
    )
    # --stop-grace: http.server as PID 1 ignores SIGTERM, and only the exit would wait for it.
    with EmuProcess(good, "--stop-grace", "1s", wait_serving=False) as emu:
        assert emu.status()["serving"] is False
        held = requests.get(emu.url + "/", timeout=120)
        assert held.status_code == 200, held.text
        lines = list(emu.lines)
        listening = next(i for i, line in enumerate(lines) if "listening on" in line)
        assert listening < next(i for i, line in enumerate(lines) if "build Web" in line)
        assert emu.status()["serving"] is True

    bad = dockerfile_project(
        tmp_path / "bad",
        f"FROM python:3.11-slim\nLABEL run={uuid.uuid4().hex}\nRUN sleep 2 && exit 7\n",
    )
    with EmuProcess(bad, wait_serving=False) as emu:
        sent = time.monotonic()
        resp = requests.get(emu.url + "/", timeout=120)
        # Held for the build (about 2 s), then answered: not after a start timeout (20 s).
        assert time.monotonic() - sent < 15
        assert resp.status_code == 500
        assert resp.text.startswith("Failed to start container: image build failed"), resp.text
        assert emu.status()["classes"][0]["image_error"]
