"""`emu up` in worker mode as a user runs it (WorkerEmu), for the tests of worker mode, its
cockpit, its faults and its engines. The `running` fixture (tests/integration/conftest.py) stops
every WorkerEmu a test starts.
NEEDS_NODE marks the tests that skip where there is no Node.js."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator.testing import descendants, wait_for
from tests.support import DATA, REPO, free_port

BASIC = DATA / "basic" / "wrangler.jsonc"
DIRECT = DATA / "direct" / "wrangler.jsonc"
SEED = REPO / "examples" / "seed" / "wrangler.jsonc"

NEEDS_NODE = pytest.mark.skipif(shutil.which("node") is None, reason="worker mode needs Node.js")


class WorkerEmu:
    """`emu up` in worker mode, as a user runs it; its output is collected as it comes."""

    def __init__(
        self,
        config: Path,
        *args: str,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        command = [*prefix, sys.executable, "-m", "emulator", "up", "-c", str(config)]
        self.proc = subprocess.Popen(
            [*command, "--port", str(self.port), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_serving(self, timeout: float = 300) -> WorkerEmu:
        def serving() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"emu up exited {self.proc.returncode}:\n{self.output}")
            try:
                r = requests.get(self.url + "/_emu/status", timeout=2)
                return r.ok and bool(r.json()["serving"])
            except requests.RequestException:
                return False

        wait_for(serving, timeout, "emu up to serve the Worker")
        return self

    def status(self) -> dict[str, Any]:
        return dict(requests.get(self.url + "/_emu/status", timeout=10).json())

    def instances(self) -> dict[str, dict[str, Any]]:
        return {i["name"]: i for c in self.status()["classes"] for i in c["instances"]}

    def get(self, path: str, timeout: float = 60) -> requests.Response:
        return requests.get(self.url + path, timeout=timeout)

    def wait_line(self, text: str, timeout: float = 30) -> str:
        return wait_for(
            lambda: next((line for line in self.lines if text in line), None), timeout, repr(text)
        )

    def descendants(self) -> list[int]:
        """The processes emu started (node, workerd, the guard), found through /proc."""
        return descendants(self.proc.pid)

    def wait_exit(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        """Ctrl-C, then kill if it has not ended within a minute; nothing if it has ended."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def start(running: list[WorkerEmu], config: Path, *args: str, **kw: Any) -> WorkerEmu:
    """A WorkerEmu in `running` (the fixture), once it serves."""
    emu = WorkerEmu(config, *args, **kw)
    running.append(emu)
    return emu.wait_serving()
