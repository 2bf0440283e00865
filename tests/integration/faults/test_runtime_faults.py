"""Worker mode's faults of the Workers runtime itself, on the real engine: workerd or its runner
killed (emu says so and brings it back on the same port; the containers are kept), three deaths
in a minute (emu stops, exit 1), /_emu/status while the runtime is down, a Worker that never
answers (--request-timeout), and two installs into one empty package cache at once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.testing import wait_for
from tests.support import containers
from tests.support.worker import BASIC, DIRECT, WorkerEmu, start

pytestmark = pytest.mark.docker

if shutil.which("node") is None:
    pytest.skip("worker mode needs Node.js", allow_module_level=True)

STUCK_WORKER = """import { DurableObject } from "cloudflare:workers";

export class Executor extends DurableObject {
  container: Container;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env);
    this.container = ctx.container!;
    ctx.blockConcurrencyWhile(async () => {
      if (!this.container.running) this.container.start();
    });
  }

  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).pathname === "/stuck") await new Promise(() => {}); // for ever
    return this.container.getTcpPort(8080).fetch(request.url.replace("https:", "http:"), request);
  }
}

export default {
  async fetch(request: Request, env: { EXECUTOR: DurableObjectNamespace }): Promise<Response> {
    return env.EXECUTOR.get(env.EXECUTOR.idFromName("executor")).fetch(request);
  },
};
"""


def status_url(emu: WorkerEmu) -> str:
    """The address emu printed for /_emu/status: its own port, not the Worker's."""
    line = emu.wait_line("status: http://")
    url = line.split("status: ", 1)[1].split()[0]
    assert not url.startswith(emu.url), line
    return url


def runtime_pids(emu: WorkerEmu) -> tuple[int, int]:
    """(node, workerd) of this emu up: found among its own descendants."""

    def named(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""

    def found() -> tuple[int, int] | None:
        mine = emu.descendants()
        node = [p for p in mine if "runner.mjs" in named(p)]
        workerd = [p for p in mine if "workerd serve" in named(p)]
        return (node[0], workerd[0]) if len(node) == 1 and len(workerd) == 1 else None

    return wait_for(found, 30, "the runtime's processes")


def served(emu: WorkerEmu, path: str) -> requests.Response | None:
    try:
        r = emu.get(path, timeout=10)
    except requests.RequestException:
        return None
    return r if r.status_code == 200 else None


def test_workerd_killed_comes_back_with_its_container_and_says_so(
    running: list[WorkerEmu],
) -> None:
    emu = start(running, BASIC)
    first = emu.get("/container/k").json()
    cid = emu.instances()["/container/k"]["container_id"]
    _node, workerd = runtime_pids(emu)

    os.kill(workerd, signal.SIGKILL)
    killed = time.monotonic()
    again = wait_for(lambda: served(emu, "/container/k"), 10, "the Worker to answer again")
    assert time.monotonic() - killed < 10
    emu.wait_line("the Workers runtime died: workerd was killed by SIGKILL; restarting it")
    emu.wait_line("the Workers runtime is back (restarts: 1)")
    # The same container answers its name: a new Durable Object adopted it.
    assert again.json()["hostname"] == first["hostname"]
    inst = emu.instances()["/container/k"]
    assert (inst["container_id"], inst["starts"]) == (cid, 1)
    runtime = emu.status()["runtime"]
    assert (runtime["state"], runtime["restarts"]) == ("up", 1)


def test_runner_killed_status_says_down_then_a_fresh_one_serves(running: list[WorkerEmu]) -> None:
    emu = start(running, BASIC)
    own = status_url(emu)
    emu.get("/container/n")
    cid = emu.instances()["/container/n"]["container_id"]
    node, _workerd = runtime_pids(emu)

    os.kill(node, signal.SIGKILL)
    killed = time.monotonic()

    def down() -> dict[str, Any] | None:
        data = requests.get(own, timeout=5).json()
        return data if data["runtime"]["state"] == "down" else None

    data = wait_for(down, 5, "emu's own status to say the runtime is down", every=0.05)
    assert "Node.js process was killed by SIGKILL" in data["runtime"]["reason"]
    assert data["serving"] is False
    again = wait_for(lambda: served(emu, "/container/n"), 10, "a fresh runtime to answer")
    assert time.monotonic() - killed < 10
    assert again.json()["hostname"] == "container-n"
    assert emu.instances()["/container/n"]["container_id"] == cid
    # `emu status` finds emu's own port by itself (the network's label) and shows the runtime.
    shown = subprocess.run(
        [sys.executable, "-m", "emulator", "status", "-c", str(BASIC)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Workers runtime up (restarts: 1)" in shown.stdout, shown.stdout + shown.stderr


def test_three_deaths_in_a_minute_stop_emu_with_exit_1(
    running: list[WorkerEmu], docker_client: docker.DockerClient
) -> None:
    emu = start(running, BASIC)
    emu.get("/container/t")
    session = emu.status()["session"]
    for crash in range(3):
        _node, workerd = runtime_pids(emu)
        os.kill(workerd, signal.SIGKILL)
        if crash < 2:
            wait_for(lambda: served(emu, "/container/t"), 10, "the Worker to answer again")
    assert emu.wait_exit(60) == 1, emu.output
    assert "emu: the Workers runtime died 3 times within 60 s" in emu.output
    assert "(the last time: workerd was killed by SIGKILL)" in emu.output
    assert containers(docker_client, session=session) == []


def test_a_worker_that_never_answers_gets_a_504_and_frees_its_instance(
    running: list[WorkerEmu], tmp_path: Path
) -> None:
    project = tmp_path / "stuck"
    shutil.copytree(DIRECT.parent, project)
    (project / "src" / "index.ts").write_text(STUCK_WORKER)
    dockerfile = (BASIC.parent / "container" / "Dockerfile").resolve()
    config = project / "wrangler.jsonc"
    config.write_text(config.read_text().replace("../basic/container/Dockerfile", str(dockerfile)))
    emu = start(running, config, "--request-timeout", "2s")
    # The first request waits for the container's start, which a busy machine can stretch past
    # the 2 s (a 504, as the flag says); the start goes on, and a later request is served.
    wait_for(lambda: emu.get("/hello").status_code == 200, 60, "the container to serve /hello")

    for path in ("/hang", "/stuck"):  # the container never answers; the Durable Object awaits
        began = time.monotonic()
        late = emu.get(path, timeout=30)
        assert late.status_code == 504, late.text
        assert "no answer within --request-timeout (2 s)" in late.text
        assert 2.0 <= time.monotonic() - began < 10
        wait_for(lambda: emu.instances()["executor"]["inflight"] == 0, 10, "in-flight back at 0")
        assert emu.get("/hello").status_code == 200  # the instance serves the next request

    def feed() -> list[dict[str, Any]] | None:
        records = requests.get(emu.url + "/_emu/requests", timeout=10).json()
        late = [r for r in records if r["path"] in ("/hang", "/stuck")]
        return late if len(late) == 3 else None

    # The Worker's requests, and the container request that /hang made, given up on.
    given_up = {(r["source"], r["path"]): r for r in wait_for(feed, 10, "the feed's records")}
    assert given_up.keys() == {("worker", "/hang"), ("worker", "/stuck"), ("container", "/hang")}
    for record in given_up.values():
        assert (record["status"], record["timed_out"]) == (504, True), record


def test_request_timeout_is_worker_mode_only() -> None:
    args = ["up", "-c", str(BASIC), "--no-worker", "--request-timeout", "2s"]
    result = subprocess.run(
        [sys.executable, "-m", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--request-timeout bounds the Worker's requests: worker mode only" in result.stderr


def test_two_projects_install_into_one_empty_cache_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "EMU_CACHE_DIR": str(tmp_path / "cache")}
    installs = [
        subprocess.Popen(
            [sys.executable, "-m", "emulator", "install", "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for config in (BASIC, DIRECT)  # different projects, one package set
    ]
    try:
        outputs = [p.communicate(timeout=600)[0] for p in installs]
    finally:
        for p in installs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
    assert [p.returncode for p in installs] == [0, 0], outputs
    said = "\n".join(outputs)
    assert said.count("installing wrangler@") == 1, said  # npm ran once
    assert said.count("waiting for another emu installing into") == 1, said
    (folder,) = [p for p in (tmp_path / "cache" / "node").iterdir() if p.is_dir()]
    assert (folder / "node_modules" / ".emu-complete").is_file()
    assert (folder / "node_modules" / "wrangler" / "package.json").is_file()
    assert (folder / "node_modules" / "@cloudflare" / "containers" / "package.json").is_file()
