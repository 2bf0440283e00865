"""The projects under examples/, as the README tells a newcomer to run them."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from emulator.pytest_plugin import EmuUp
from emulator.testing import wait_for

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[3]


def test_hello_builds_offline_serves_and_stops_on_sigterm(emu_up: EmuUp) -> None:
    """examples/hello: no network to build, and a container that exits 0 on SIGTERM when its
    sleepAfter runs out (so it never waits for --stop-grace)."""
    dockerfile = (REPO / "examples" / "hello" / "container" / "Dockerfile").read_text()
    assert "pip install" not in dockerfile and "apt-get" not in dockerfile
    emu = emu_up(REPO / "examples" / "hello" / "wrangler.jsonc", sleep_after="2s", stop_grace="30s")
    # One name, back to back: it never idles between them (a request that met the container
    # shutting down would get "Container suddenly disconnected", as on the platform).
    one = {"x-emu-instance": "hello-a"}
    bodies = [requests.get(emu.url + "/hi", headers=one, timeout=60).json() for _ in range(6)]
    assert all(b["greeting"].startswith("hello from ") and b["path"] == "/hi" for b in bodies)
    assert requests.get(emu.url + "/hi", timeout=60).json()["greeting"].startswith("hello from ")

    def all_stopped() -> bool:
        return all(i["state"] == "stopped" for i in emu.instances().values())

    wait_for(all_stopped, 20, "every idle instance to stop, well before --stop-grace")
    stopped = [e for e in emu.events() if e["event"] == "stopped"]
    assert stopped and {e.get("exit_code") for e in stopped} == {0}
