"""What `emu up` prints, as a user runs it: whole class names, events as JSON fields."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import docker
import pytest
import requests

from emulator.engine import docker_logs
from emulator.engine.docker_backend import DockerBackend
from emulator.pytest_plugin import EmuUp
from emulator.runs import labels
from emulator.testing import EmuProcess
from tests.support import Project


def test_build_lines_carry_the_whole_class_name(tmp_path: Path) -> None:
    with EmuProcess(Project(instances=1).write(tmp_path), "--no-logs") as emu:
        pass
    build = [line for line in emu.lines if " build " in line.split("|")[0]]
    assert build, emu.output
    assert all(line[9:].startswith("build PythonExecutorContainer | ") for line in build), build


def test_json_logs_give_lifecycle_events_as_fields(tmp_path: Path) -> None:
    with EmuProcess(Project(instances=1).write(tmp_path), "--json-logs", "--no-logs") as emu:
        reply = requests.get(emu.url + "/health", timeout=60)
        assert reply.status_code == 200
    records = [json.loads(line) for line in emu.lines]
    events = {r["event"]: r for r in records if "event" in r}
    assert events["healthy"]["class"] == "PythonExecutorContainer"
    assert events["healthy"]["instance"] == "instance-0"
    assert events["stopped"]["reason"] == "emu is shutting down"
    assert events["stopped"]["exit_code"] == 0
    assert all("line" not in r for r in events.values())
    assert any(r.get("line", "").startswith("listening on http://") for r in records)


def test_emu_up_takes_a_relative_path_from_the_test_files_folder(
    tmp_path: Path, emu_up: EmuUp, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Project(instances=1).write(tmp_path / "project")
    relative = os.path.relpath(config, Path(__file__).parent)
    # A working directory deep enough that the same relative path leads nowhere from it.
    elsewhere = tmp_path.joinpath(*["elsewhere"] * relative.count(".."))
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert not Path(relative).exists()
    emu = emu_up(relative)
    assert emu.emulator.config.path == config.resolve()
    assert requests.get(emu.url + "/health", timeout=60).status_code == 200


async def test_a_local_engines_json_file_log_is_read_straight_from_its_file(
    docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the engine keeps json-file logs that emu may read (root, local engine), a
    container's output is tailed from that file, not streamed through the engine."""
    async with DockerBackend() as backend:
        info = await backend.connect()
    if info.logging_driver != "json-file" or os.geteuid() != 0:
        pytest.skip("the engine's logs are not json-file files this process can read")
    folder = docker_logs.log_files_dir(info.root_dir, info.logging_driver)
    assert folder, "a root process on the local json-file engine reads its log files"
    script = "import time\nfor i in range(3):\n    print('line', i, flush=True)\ntime.sleep(60)"
    container = docker_client.containers.run(
        "python:3.11-slim", ["python", "-c", script], detach=True, labels=labels.managed()
    )
    got: list[str] = []
    # The engine's stream, were it used, leads nowhere now: only the file can give the lines.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")

    def engine_stream() -> docker_logs.ByteStream:
        raise AssertionError("followed through the engine, not from its file")

    stop = docker_logs.follow(container.id or "", got.append, engine_stream, log_files=folder)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while got != ["line 0", "line 1", "line 2"]:
            assert loop.time() < deadline, got
            await asyncio.sleep(0.02)
    finally:
        stop()
        container.remove(force=True)
