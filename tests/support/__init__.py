"""Helpers shared by the integration tests: a seed-style project on disk, Docker look-ups.
`wait_for` and `EmuProcess` are emu's own, in emulator/testing.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import docker
import requests

from emulator.instances.events import LifecycleEvent
from emulator.runs import labels
from emulator.testing import EmuProcess, RunningEmulator, wait_for
from emulator.testing import free_port as free_port
from projects import EXECUTOR as EXECUTOR
from projects import Project as Project

REPO = Path(__file__).resolve().parents[2]
# The test projects of the integration tests (their Workers, containers and data).
DATA = REPO / "tests" / "integration" / "data"
# emu answers an error that has the platform library's text as that text alone (text/plain);
# a client that sends this header gets the JSON with the details instead.
JSON = {"Accept": "application/json"}

T = TypeVar("T")


def dockerfile_project(
    root: Path,
    dockerfile: str,
    files: Mapping[str, str] = {},
    image_vars: Mapping[str, str] = {},
) -> Path:
    """The smallest project around a Dockerfile of its own: one class `Web` on port 8000 with one
    instance name; `files` go into the build context beside the Dockerfile."""
    context = root / "container"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (context / name).write_text(text)
    (root / "src").mkdir()
    (root / "src" / "index.ts").write_text(
        "export class Web extends Container { defaultPort = 8000; }\n"
        "const c = getRandom(env.WEB, 1);\n"
    )
    (root / "wrangler.jsonc").write_text(
        """{"name": "small", "main": "src/index.ts",
        "containers": [{"class_name": "Web", "image": "./container/Dockerfile",
                        "image_vars": IMAGE_VARS}],
        "durable_objects": {"bindings": [{"name": "WEB", "class_name": "Web"}]},
        "migrations": [{"tag": "v1", "new_sqlite_classes": ["Web"]}]}""".replace(
            "IMAGE_VARS", json.dumps(dict(image_vars))
        )
    )
    return root / "wrangler.jsonc"


def _filter(short_names: Mapping[str, str]) -> list[str]:
    """emu's label filter for `project=...` and the like; a name that is no label of emu's is
    an error, not a filter that quietly matches nothing."""
    wanted = {labels.named(k): v for k, v in short_names.items()}
    return labels.docker_filter({**labels.managed(), **wanted})


def containers(client: docker.DockerClient, **short_names: str) -> list[Any]:
    found = client.containers.list(
        all=True, filters={"label": _filter(short_names)}, ignore_removed=True
    )
    return list(found)


def networks(client: docker.DockerClient, **short_names: str) -> list[Any]:
    return list(client.networks.list(filters={"label": _filter(short_names)}))


def services(client: docker.DockerClient, **short_names: str) -> list[Any]:
    """Swarm services, as `containers` (this engine must be a Swarm manager)."""
    return list(client.services.list(filters={"label": _filter(short_names)}))


def container_gone(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        return True
    return False


# States in /proc/net/tcp (include/net/tcp_states.h).
TCP_STATES = {"01": "ESTABLISHED", "03": "SYN_RECV", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def tcp_sockets(port: int, pid: int | None = None) -> list[tuple[str, str]]:
    """(local IPv4 address, state) of the TCP sockets on local `port`, in the network namespace
    of process `pid` (default: this one's). States not in TCP_STATES show as their hex code."""
    table = Path(f"/proc/{pid}/net/tcp") if pid is not None else Path("/proc/net/tcp")
    found = []
    for line in table.read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        address, _, hex_port = local.partition(":")
        if int(hex_port, 16) == port:
            ip = socket.inet_ntoa(bytes.fromhex(address)[::-1])
            found.append((ip, TCP_STATES.get(state, state)))
    return found


def accept_queue(port: int) -> int:
    """Connections to the listening socket on local `port` that the kernel has completed and
    the server has not accepted yet (its Recv-Q in `ss -lt`); 0 when nothing listens there."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].partition(":")[2], 16) == port and fields[3] == "0A":
            return int(fields[4].partition(":")[2], 16)
    return 0


def raw_request(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data` as is to emu's port and read until the server closes or `timeout`."""
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


# The Docker engine of this machine, for the test that stops and restarts it. It was started by
# ../shared/tools/ensure-docker as `setsid nohup dockerd >>/var/log/dockerd.log 2>&1 &`.
DOCKERD_START = "setsid nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &"


def engine_answers() -> bool:
    try:
        client = docker.from_env(timeout=2)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:  # any failure to answer is "no"
        return False
    finally:
        client.close()


def dockerd_running() -> bool:
    return subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True).returncode == 0


def stop_engine(timeout: float = 60.0) -> None:
    """SIGTERM dockerd (it stops the containers) and wait until the process is gone."""
    subprocess.run(["pkill", "-x", "dockerd"], check=False)
    wait_for(lambda: not dockerd_running(), timeout, "dockerd to exit", every=0.1)


def start_engine(timeout: float = 60.0) -> None:
    """Start dockerd as ensure-docker does, unless one runs already, and wait until it answers.
    A start that fails (e.g. the old one's pid file still there) is retried."""

    def up() -> bool:
        if engine_answers():
            return True
        if not dockerd_running():
            subprocess.run(DOCKERD_START, shell=True, check=False)
        return False

    wait_for(up, timeout, "the Docker engine to answer", every=0.5)


def hit(emu: EmuProcess, name: str) -> None:
    r = requests.get(emu.url + "/health", headers={"x-emu-instance": name}, timeout=60)
    assert r.status_code == 200, r.text


def events_of(emu: RunningEmulator, name: str) -> list[LifecycleEvent]:
    """The lifecycle events of one instance, oldest first."""
    return [e for e in emu.events() if e.get("instance") == name]


def emu_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run an `emu` command to its end."""
    return subprocess.run(
        [sys.executable, "-m", "emulator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


# Swarm mode is the engine's, not a test's: two tests (or two pytest runs on this machine) that
# init and leave it at once would pull it from under each other. They take this lock first.
SWARM_LOCK = Path("/tmp/emu-tests-swarm.lock")


@contextlib.contextmanager
def swarm_mode(advertise_addr: str = "127.0.0.1") -> Iterator[None]:
    """This engine as a one-node Swarm manager for the block, then out of Swarm again (leaving
    does not touch plain containers). Held by one test on this machine at a time."""
    with SWARM_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)
            subprocess.run(
                ["docker", "swarm", "init", "--advertise-addr", advertise_addr],
                check=True,
                capture_output=True,
            )
            yield
        finally:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def idle_stop(emu: RunningEmulator, name: str) -> LifecycleEvent:
    """The one `stopping` event of instance `name`, for sleepAfter."""
    [stop] = [e for e in emu.events() if e.get("instance") == name and e["event"] == "stopping"]
    assert stop["reason"] == "sleepAfter expired", stop
    return stop
