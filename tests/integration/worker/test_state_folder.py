"""One `emu up` at a time on a Worker's state folder (emulator/worker/state.py): a second one on
the same folder is refused at once with the first one's pid, instead of its workerd failing
on the first one's SQLite locks; another folder (--persist-to) runs beside it; and a stopped
emu leaves the folder free for the next, its workerd gone (runtime.py `stop`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from emulator.worker.state import LOCK_NAME
from tests.support.worker import BASIC, NEEDS_NODE, WorkerEmu, start

pytestmark = [pytest.mark.docker, NEEDS_NODE]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of tests/integration/data/basic of this test's own: its state folder is fresh."""
    folder = tmp_path / "basic"
    shutil.copytree(
        BASIC.parent, folder, ignore=shutil.ignore_patterns("node_modules", ".wrangler")
    )
    return folder / "wrangler.jsonc"


def test_a_second_emu_on_the_same_state_folder_is_refused_with_the_first_ones_pid(
    running: list[WorkerEmu], project: Path
) -> None:
    first = start(running, project)
    second = WorkerEmu(project)
    running.append(second)
    assert second.wait_exit(120) == 1, second.output
    state = project.parent / ".wrangler" / "state"
    assert f"another emu (pid {first.proc.pid}) runs a Worker on {state}" in second.output
    assert "--persist-to DIR or --no-persist" in second.output
    assert "SQLITE" not in second.output and "Traceback" not in second.output
    # The first one is untouched: it serves, and its Durable Object's storage works.
    r = first.get("/container/after-the-refusal")
    assert r.status_code == 200, (r.text, first.output)
    assert requests.get(first.url + "/_emu/status", timeout=10).json()["serving"]
    assert (state / LOCK_NAME).read_text().strip() == str(first.proc.pid)


def test_another_state_folder_runs_beside_and_no_persist_too(
    running: list[WorkerEmu], project: Path, tmp_path: Path
) -> None:
    first = start(running, project)
    elsewhere = start(running, project, "--persist-to", str(tmp_path / "elsewhere"))
    clean = start(running, project, "--no-persist")
    for emu in (first, elsewhere, clean):
        assert emu.get("/").status_code == 200, emu.output
    assert (tmp_path / "elsewhere" / LOCK_NAME).is_file()
    assert (tmp_path / "elsewhere" / "v3" / "do").is_dir()  # the Worker's state went there


def test_emu_up_again_right_after_ctrl_c_gets_the_folder(
    running: list[WorkerEmu], project: Path
) -> None:
    for _ in range(3):
        emu = start(running, project)
        runtime = emu.descendants()
        emu.stop()
        assert emu.proc.returncode == 0, emu.output
        # stop() waited for node and workerd: none of emu's processes outlive it.
        assert [pid for pid in runtime if Path(f"/proc/{pid}").exists() and not _zombie(pid)] == []


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False
