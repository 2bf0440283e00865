"""`--watch`: an edited image rebuilt and the running instances replaced (the new container
first, starts during the rebuild held for it), edited Worker settings applied (a bad edit keeps
the last good ones), and in worker mode an edited Worker bundled again and reloaded."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.testing import RunningEmulator, wait_for
from tests.support import Project, container_gone, dockerfile_project, events_of
from tests.support.worker import BASIC, NEEDS_NODE, WorkerEmu, start

pytestmark = pytest.mark.docker


def get(emu: RunningEmulator, name: str, path: str = "/health", **kw: Any) -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name}, timeout=60, **kw)


def test_watch_rebuilds_and_replaces_running_instances(tmp_path: Path, emu_up: EmuUp) -> None:
    path = dockerfile_project(
        tmp_path,
        "FROM python:3.11-slim\nCOPY version.txt /srv/version.txt\nWORKDIR /srv\n"
        'CMD ["python", "-m", "http.server", "8000"]\n',
        {"version.txt": "v1"},
    )
    # python as PID 1 ignores SIGTERM: the replaced instance goes after the grace.
    emu = emu_up(path, EmulatorOptions(watch=True), stop_grace="1s")
    assert requests.get(emu.url + "/version.txt", timeout=60).text == "v1"
    first = emu.instances()["instance-0"]["container_id"]
    (tmp_path / "container" / "version.txt").write_text("v2")
    wait_for(
        lambda: requests.get(emu.url + "/version.txt", timeout=60).text == "v2",
        60,
        "the rebuilt image to serve v2",
        every=0.2,
    )
    assert emu.instances()["instance-0"]["container_id"] != first
    assert any(e["event"] == "rebuilt" for e in emu.events())


def test_watch_holds_starts_for_the_rebuild_and_replaces_new_container_first(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    path = dockerfile_project(
        tmp_path,
        "FROM python:3.11-slim\nCOPY version.txt /srv/version.txt\nWORKDIR /srv\n"
        "RUN sleep 2\n"  # a rebuild that takes a while, not a wait in the test
        # python as PID 1 ignores SIGTERM: the replaced container takes its whole grace (5 s).
        'CMD ["python", "-m", "http.server", "8000"]\n',
        {"version.txt": f"v1 {uuid.uuid4().hex}"},
    )
    lines: list[str] = []
    emu = emu_up(
        path,
        EmulatorOptions(watch=True, on_output=lambda source, line: lines.append(line)),
        stop_grace="5s",
    )
    assert get(emu, "a", "/version.txt").text.startswith("v1")
    old = emu.instances()["a"]["container_id"]

    def builds() -> int:
        return sum(line.startswith("building ") for line in list(lines))

    before = builds()
    v2 = f"v2 {uuid.uuid4().hex}"  # a new image: a cached one would not be rebuilt
    (tmp_path / "container" / "version.txt").write_text(v2)
    wait_for(lambda: builds() > before, 30, "the rebuild to begin")
    # A start while the rebuild runs waits for it, and gets the new image.
    assert get(emu, "b", "/version.txt").text == v2
    rebuilt = next(e for e in emu.events() if e["event"] == "rebuilt")

    # The running one: its replacement starts first, takes the name once healthy, then the old
    # container stops. The edit is served before the old one's 5 s grace is over.
    wait_for(lambda: get(emu, "a", "/version.txt").text == v2, 30, "a to serve v2", every=0.1)
    served = time.time()
    assert served - rebuilt["time"] < 8, f"v2 served {served - rebuilt['time']:.1f} s after"
    assert not container_gone(docker_client, old)  # still stopping (it ignores SIGTERM)
    of_a = [(e["event"], e.get("reason")) for e in events_of(emu, "a")]
    healthy = [i for i, (kind, _) in enumerate(of_a) if kind == "healthy"]
    assert len(healthy) == 2 and ("stopping", "image rebuilt") in of_a[healthy[1] :], of_a
    assert emu.instances()["a"]["container_id"] not in (None, old)
    wait_for(lambda: container_gone(docker_client, old), 20, "the old container's removal")
    # a (replaced) and b: emu counts the old one out once it has seen its removal, a moment
    # after the engine (3 on a busy machine, once)
    wait_for(lambda: emu.status()["classes"][0]["running"] == 2, 10, "2 running")


def test_watch_applies_worker_setting_changes(tmp_path: Path, emu_up: EmuUp) -> None:
    path = Project(instances=2, sleep_after="15m").write(tmp_path)
    emu = emu_up(path, EmulatorOptions(watch=True), stop_grace="2s")
    assert requests.get(emu.url + "/health", timeout=60).status_code == 200
    Project(instances=3, sleep_after="7s").write(tmp_path)  # the developer edits index.ts

    def applied() -> bool:
        cls = emu.status()["classes"][0]
        return bool(cls["sleep_after_s"] == 7 and cls["instances_n"] == 3)

    wait_for(applied, 30, "the new sleepAfter and N to apply", every=0.2)
    wait_for(lambda: emu.status()["classes"][0]["running"] == 0, 30, "the old instances to go")
    event = next(e for e in emu.events() if e["event"] == "reconfigured")
    assert "sleep_after" in event["changed"] and "instances" in event["changed"]

    (tmp_path / "wrangler.jsonc").write_text("{ broken")
    wait_for(lambda: any(e["event"] == "reload_failed" for e in emu.events()), 30, "the bad edit")
    assert emu.status()["classes"][0]["sleep_after_s"] == 7  # the last good settings stay
    assert requests.get(emu.url + "/health", timeout=60).status_code == 200


@NEEDS_NODE
def test_watch_rebundles_on_a_source_change(running: list[WorkerEmu], tmp_path: Path) -> None:
    project = tmp_path / "watched"
    shutil.copytree(BASIC.parent, project, ignore=shutil.ignore_patterns("node_modules"))
    source = project / "src" / "index.ts"
    emu = start(running, project / "wrangler.jsonc", "--watch")
    assert emu.get("/").text.startswith("Call /container")
    first = emu.get("/container/w").json()

    source.write_text(source.read_text().replace("'Call /container", "'Edited: call /container"))

    def edited() -> bool:
        try:
            return emu.get("/", timeout=5).text.startswith("Edited: ")
        except requests.ConnectionError:  # workerd restarting with the new bundle
            return False

    wait_for(edited, 30, "the edited Worker to answer")
    emu.wait_line("Worker bundled again and reloaded")
    # The Durable Object is made again and finds the container its name already has.
    again = emu.get("/container/w").json()
    assert (
        again["env"]["CLOUDFLARE_DURABLE_OBJECT_ID"] == first["env"]["CLOUDFLARE_DURABLE_OBJECT_ID"]
    )
    assert emu.instances()["/container/w"]["starts"] == 1
