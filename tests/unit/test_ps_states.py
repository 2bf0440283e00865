"""`emu ps`: emu's state where a running emu up knows the container, Docker's otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from emulator.cli.output import ps_json, ps_table
from emulator.engine.docker_types import ContainerInfo
from emulator.runs import labels
from emulator.runs.live import is_emu_up, pid_alive
from emulator.testing import wait_for


def _container(cid: str, name: str) -> ContainerInfo:
    return ContainerInfo(cid, "c-" + name, "running", {labels.CLASS: "Web", labels.INSTANCE: name})


def test_states_say_whose_they_are() -> None:
    rows = [_container("a" * 64, "a"), _container("b" * 64, "b")]
    states = {"a" * 64: "stopping"}
    table = ps_table(rows, states)
    assert "stopping (emu)" in table and "running (docker)" in table
    a, b = json.loads(ps_json(rows, states))
    assert (a["state"], a["state_from"], a["status"]) == ("stopping", "emu", "running")
    assert (b["state"], b["state_from"]) == ("running", "docker")


def test_only_an_emu_up_is_asked_to_stop() -> None:
    assert not is_emu_up(os.getpid())  # pytest: an emulator inside another program
    # argv as `emu up` has it: ["emu", ..., "up"]
    code = "import time; time.sleep(30)"
    child = subprocess.Popen(["bash", "-c", f'exec -a emu {sys.executable} -c "{code}" up'])
    try:
        assert wait_for(lambda: is_emu_up(child.pid), 10, "the child to exec")
    finally:
        child.kill()
        child.wait(30)
    assert not pid_alive(child.pid)
