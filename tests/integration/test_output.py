"""What `emu up` prints, as a user runs it: whole class names, events as JSON fields."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from emulator.pytest_plugin import EmuUp
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
