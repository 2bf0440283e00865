"""Issues 9 and 12, lifecycle points, against the real engine: an instance type larger than
the machine, emu's network removed under it, containers that ignore SIGTERM, instances killed
from outside, `emu ps` and `emu down` beside a live `emu up`, and `--watch` replacing instances."""

from __future__ import annotations

import json
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.instances.events import EventKind, LifecycleEvent
from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.runs import labels
from emulator.testing import EmuProcess, RunningEmulator, wait_for
from tests.support import (
    Project,
    container_gone,
    containers,
    dockerfile_project,
    emu_cli,
    hit,
    networks,
)

pytestmark = pytest.mark.docker


def get(emu: RunningEmulator, name: str, path: str = "/health", **kw: Any) -> requests.Response:
    return requests.get(emu.url + path, headers={"x-emu-instance": name}, timeout=60, **kw)


def post(emu: RunningEmulator, name: str, path: str) -> requests.Response:
    return requests.post(emu.url + path, headers={"x-emu-instance": name}, timeout=60)


def events_of(emu: RunningEmulator, name: str) -> list[LifecycleEvent]:
    return [e for e in emu.events() if e.get("instance") == name]


# -- an instance type larger than the machine (issue 9, defect 1) ------------------------------


def test_instance_type_above_the_engines_cpus_runs_capped_and_says_so(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    cpus = int(docker_client.info()["NCPU"])
    if cpus >= 4:
        pytest.skip("the engine has 4 CPUs or more: standard-4 fits")
    path = Project(instance_type="standard-4", instances=1).write(tmp_path)
    lines: list[str] = []
    emu = emu_up(path, EmulatorOptions(on_output=lambda source, line: lines.append(line)))
    resp = get(emu, "a")
    assert resp.status_code == 200, resp.text
    host = docker_client.api.inspect_container(emu.instances()["a"]["container_id"])["HostConfig"]
    assert host["NanoCpus"] == cpus * 10**9
    assert host["Memory"] == 12288 * 2**20  # kept
    said = [line for line in lines if "4 vCPU is more than" in line]
    assert len(said) == 1 and f"{cpus} CPUs" in said[0], lines
    note = emu.status()["classes"][0]["engine_note"]
    assert note is not None and "NanoCpus capped" in note
    shown = emu_cli("config", "-c", str(path))
    assert shown.returncode == 0 and "4 vCPU is more than" in shown.stdout, shown.stdout
    as_json = json.loads(emu_cli("config", "--json", "-c", str(path)).stdout)
    assert any("NanoCpus capped" in n for n in as_json["engine_notes"])


# -- a container that ignores SIGTERM (issue 9, defect 3; issue 12, messages) -----------------


def test_a_container_ignoring_sigterm_keeps_serving_and_is_signalled_again(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    emu = emu_up(Project(instances=1, sleep_after="1s").write(tmp_path), stop_grace="60s")
    assert get(emu, "s").status_code == 200
    cid = emu.instances()["s"]["container_id"]
    assert post(emu, "s", "/diag/ignore-sigterm").status_code == 200
    wait_for(lambda: emu.instances()["s"]["state"] == "stopping", 10, "the idle stop")
    # As on the platform: the container still runs, so it is still served; no 503.
    resp = get(emu, "s")
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-emu-instance"] == "s"
    inst = emu.instances()["s"]
    assert inst["container_id"] == cid and inst["state"] == "stopping"
    assert 50 < inst["kill_in_s"] <= 60
    # Its next idle period ends 1 s after that request: SIGTERM again, SIGKILL 60 s from then.
    wait_for(
        lambda: any(e.get("reason") == "sleepAfter expired again" for e in events_of(emu, "s")),
        10,
        "the second SIGTERM",
    )
    assert emu.instances()["s"]["kill_in_s"] > 55
    said = wait_for(
        lambda: [e for e in events_of(emu, "s") if e["event"] == "sigterm_ignored"],
        10,
        "the log to say that it ignores SIGTERM",
    )
    assert "ignores SIGTERM" in said[0]["reason"] and "--stop-grace" in said[0]["reason"]
    table = emu_cli("status", "--url", emu.url)
    assert table.returncode == 0 and "SIGKILL in" in table.stdout, table.stdout
    assert not container_gone(docker_client, cid)
    # Killed from outside while stopping: the log says so, not "sleepAfter expired".
    docker_client.containers.get(cid).kill()
    stopped = wait_for(
        lambda: [e for e in events_of(emu, "s") if e["event"] == "stopped"], 10, "the stop"
    )
    assert stopped[0]["reason"] == "killed outside emu" and stopped[0]["exit_code"] == 137


def test_still_stopping_503_names_the_cause_and_the_remedy(tmp_path: Path, emu_up: EmuUp) -> None:
    """A stop that no longer serves (a replacement during an idle stop), on a container that
    ignores SIGTERM: a request waits --start-timeout, then learns why and what to do."""
    emu = emu_up(
        Project(instances=1, sleep_after="1s").write(tmp_path), stop_grace="8s", start_timeout="2s"
    )
    assert get(emu, "s").status_code == 200
    assert post(emu, "s", "/diag/ignore-sigterm").status_code == 200
    wait_for(lambda: emu.instances()["s"]["state"] == "stopping", 10, "the idle stop")

    async def replace() -> None:
        emu.emulator.pools["PythonExecutorContainer"].replace_running("image rebuilt", 30)

    emu.call(replace())
    resp = get(emu, "s")
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert "ignored SIGTERM" in error and "handle SIGTERM" in error and "--stop-grace" in error
    assert any(e["event"] == "still_stopping" for e in events_of(emu, "s"))


# -- an instance killed from outside (issue 12, behaviour 4) ------------------------------------


def test_kill_and_removal_outside_emu_are_logged_as_such(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    lines: list[str] = []
    emu = emu_up(
        Project(instances=2).write(tmp_path),
        EmulatorOptions(on_output=lambda source, line: lines.append(line)),
    )
    for name, remove, reason in (
        ("k", False, "killed outside emu"),
        ("r", True, "removed outside emu"),
    ):
        assert get(emu, name).status_code == 200
        cid = emu.instances()[name]["container_id"]
        container = docker_client.containers.get(cid)
        if remove:
            container.remove(force=True)
        else:
            container.kill()

        def exited(name: str = name) -> list[LifecycleEvent]:
            return [e for e in events_of(emu, name) if e["event"] is EventKind.EXITED]

        found = wait_for(exited, 10, f"the exit of {name}")
        assert found[0]["reason"] == reason and found[0]["exit_code"] == 137, found
        assert reason in (emu.instances()[name]["last_error"] or "")
        assert any(f"{name} exited reason={reason}" in line for line in lines), lines[-5:]
        assert not any(e.get("reason") == "sleepAfter expired" for e in events_of(emu, name))
        wait_for(partial(container_gone, docker_client, cid), 10, "the container's removal")
        assert get(emu, name).status_code == 200  # and the next request starts a fresh one


# -- emu's network removed under a running emu up; emu down beside it (issue 9, defect 2) -------


def test_network_removed_under_emu_up_is_made_again_and_emu_down_asks_it_to_stop(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=2).write(tmp_path)
    proc = EmuProcess(path, "--no-logs").start()
    try:
        hit(proc, "a")
        # What `docker rm -f` of everything, then `docker network prune`, does to it.
        for c in containers(docker_client, session=proc.session):
            c.remove(force=True)
        for n in networks(docker_client, session=proc.session):
            n.remove()
        resp = requests.get(proc.url + "/health", headers={"x-emu-instance": "b"}, timeout=60)
        assert resp.status_code == 200, resp.text
        (net,) = networks(docker_client, session=proc.session)
        assert net.attrs["Labels"][labels.URL] == proc.url  # with its labels: emu status finds it
        assert "network_recreated" in proc.output
        hit(proc, "a")  # the one whose container was removed, too

        down = emu_cli("down", "-c", str(path))
        assert down.returncode == 0, down.stderr
        assert f"emu up (pid {proc.pid}) is running: asking it to stop (SIGTERM)" in down.stdout
        assert f"emu up (pid {proc.pid}) stopped" in down.stdout
        assert proc.wait(10) == 0, proc.tail()  # a clean stop, not resources pulled from under it
        assert "stopped; all containers and networks removed" in proc.output
        assert containers(docker_client, project=proc.project) == []
        assert networks(docker_client, project=proc.project) == []
    finally:
        proc.kill()


def test_emu_down_leaves_an_emulator_inside_another_program_alone_without_force(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=1).write(tmp_path)
    emu = emu_up(path)
    assert get(emu, "a").status_code == 200
    down = emu_cli("down", "-c", str(path))
    assert down.returncode == 1 and "inside another program" in down.stderr, down.stderr
    assert get(emu, "a").status_code == 200
    forced = emu_cli("down", "--force", "-c", str(path))
    assert forced.returncode == 0 and "from under it" in forced.stdout, forced.stdout
    assert containers(docker_client, session=emu.status()["session"]) == []


# -- emu ps: emu's state where an emu up runs, Docker's otherwise (issue 12, behaviour 5) -------


def test_emu_ps_shows_emus_state_while_emu_up_runs_and_dockers_after(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = Project(instances=1).write(tmp_path)
    proc = EmuProcess(path, "--no-logs", "--no-reaper").start()
    try:
        hit(proc, "a")
        ps = emu_cli("ps", "-c", str(path))
        assert ps.returncode == 0 and "healthy (emu)" in ps.stdout, ps.stdout
        (row,) = json.loads(emu_cli("ps", "--json", "-c", str(path)).stdout)
        assert (row["state"], row["state_from"], row["status"]) == ("healthy", "emu", "running")
        assert proc.instances()["a"]["state"] == row["state"]  # as emu status says
        proc.kill()  # no emu up any more: Docker's word is all there is
        ps = emu_cli("ps", "-c", str(path))
        assert ps.returncode == 0 and "running (docker)" in ps.stdout, ps.stdout
    finally:
        proc.kill()
        emu_cli("down", "-c", str(path))
    assert containers(docker_client, project=proc.project) == []


# -- --watch: requests during a rebuild, and replacing start-first (issue 12, behaviour 3) ------


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
    assert emu.status()["classes"][0]["running"] == 2  # a (replaced) and b
