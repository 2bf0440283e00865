"""The live reaper: after `kill -9` of `emu up`, its containers and network go with no command."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from emulator.runs.reaper import read_orders
from emulator.testing import EmuProcess, wait_for
from tests.support import Project, containers, emu_cli, hit, networks
from tests.support.engines import EngineUnderTest

pytestmark = pytest.mark.docker


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return Project(instances=3).write(tmp_path)


def _reaped_within_10s(
    docker_client: docker.DockerClient, project_id: str, engine: EngineUnderTest
) -> None:
    wait_for(
        lambda: (
            not engine.leftovers(docker_client, project=project_id)
            and not networks(docker_client, project=project_id)
        ),
        10,
        "the reaper to remove the session's containers and network",
        every=0.1,
    )


@pytest.mark.parametrize(
    ("engine", "how"),
    [("local", "kill -9"), ("local", "process group"), ("swarm", "kill -9")],
    indirect=["engine"],
    scope="module",
)
def test_killed_emu_up_is_reaped_without_a_command(
    tmp_path: Path, docker_client: docker.DockerClient, engine: EngineUnderTest, how: str
) -> None:
    project = Project(instances=3, instance_type=engine.instance_type).write(tmp_path)
    emu = EmuProcess(project, "--no-logs", *engine.flags).start()
    try:
        hit(emu, "instance-0")
        hit(emu, "instance-1")
        project_id = emu.project
        assert len(engine.live(docker_client, project=project_id)) == 2
        if how == "kill -9":
            emu.kill()
        else:  # what a CI runner's timeout does: the whole process group at once
            os.killpg(emu.pid, signal.SIGKILL)
            emu.wait(10)
        _reaped_within_10s(docker_client, project_id, engine)
    finally:
        emu.kill()
        emu_cli("down", "-c", str(project), *engine.flags)


def test_no_reaper_keeps_leftovers_for_emu_down(
    project: Path, docker_client: docker.DockerClient
) -> None:
    emu = EmuProcess(project, "--no-logs", "--no-reaper").start()
    try:
        hit(emu, "a")
        project_id = emu.project
        emu.kill()
        assert len(containers(docker_client, project=project_id)) == 1
    finally:
        emu.kill()
        assert emu_cli("down", "-c", str(project)).returncode == 0
    assert containers(docker_client, project=project_id) == []


def test_the_watchdog_reads_its_orders_to_eof() -> None:
    assert read_orders(io.BytesIO(b"pid 12\npid x\nclean\n")) == (True, [12])
    assert read_orders(io.BytesIO(b"pid 7\n")) == (False, [7])
    # A process group comes back negated, as os.kill takes it; 0 and 1 never.
    assert read_orders(io.BytesIO(b"group 40\ngroup 1\npid 0\n")) == (False, [-40])


def test_the_watchdog_exits_at_once_on_a_clean_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "emulator.runs.reaper", "no-such-session"],
        input=b"clean\n",
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stderr == b""
