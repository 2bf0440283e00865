"""worker mode's npm packages in a cache shared by every emu (emulator/worker/toolchain.py): two
installs of one package set at once run npm once, the second waits and finds it installed, and
what a crashed install left is removed. npm is a fake here; the real one is in
tests/integration/faults/test_runtime_faults.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from emulator.worker import toolchain

# Installs node_modules/x slowly, and fails when another install runs in the same cache at once.
FAKE_NPM = """
import os, sys, time
from pathlib import Path
busy = Path(os.environ["FAKE_NPM_BUSY"])
try:
    busy.mkdir()
except FileExistsError:
    print("npm ERR! another install is running", flush=True)
    sys.exit(1)
with open(os.environ["FAKE_NPM_LOG"], "a") as log:
    log.write("install\\n")
time.sleep(0.5)
Path("node_modules/x").mkdir(parents=True)
busy.rmdir()
"""


@pytest.fixture
def npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[toolchain.NodeInfo, Path]:
    script = tmp_path / "npm.py"
    script.write_text(FAKE_NPM)
    log = tmp_path / "npm.log"
    monkeypatch.setenv("EMU_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_NPM_BUSY", str(tmp_path / "busy"))
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    return toolchain.NodeInfo(sys.executable, "v24.0.0", (sys.executable, str(script))), log


async def test_two_installs_of_one_set_at_once_run_npm_once(
    npm: tuple[toolchain.NodeInfo, Path],
) -> None:
    node, log = npm
    wanted = {"wrangler": "1.0.0"}
    said: list[str] = []
    folders = await asyncio.gather(
        toolchain.ensure_packages(node, wanted, said.append),
        toolchain.ensure_packages(node, wanted, said.append),
    )
    assert folders[0] == folders[1] == toolchain.package_dir(wanted)
    assert toolchain.installed(folders[0])
    assert log.read_text() == "install\n"
    assert sum("waiting for another emu" in line for line in said) == 1, said
    # Only the set's folder and its lock are left beside it.
    assert sorted(p.name for p in folders[0].parent.iterdir()) == [
        folders[0].name,
        folders[0].name + ".lock",
    ]


async def test_a_crashed_installs_leftovers_are_removed(
    npm: tuple[toolchain.NodeInfo, Path],
) -> None:
    node, _log = npm
    wanted = {"wrangler": "2.0.0"}
    folder = toolchain.package_dir(wanted)
    leftover = folder.parent / f"{folder.name}.k1ll3d"
    (leftover / "node_modules").mkdir(parents=True)
    await toolchain.ensure_packages(node, wanted, lambda line: None)
    assert toolchain.installed(folder)
    assert not leftover.exists()
