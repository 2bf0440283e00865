"""The engines the integration tests run over (`--engine local|remote|swarm`), and what differs
in checking them: where an instance's container is, what "gone" means, what one node places.

A test takes the `engine` fixture (tests/conftest.py) and one of the marks below; the engine
is module-scoped, so a module's tests on one engine share one Swarm (or one TCP forward)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from emulator.config.model import INSTANCE_TYPES
from emulator.engine.choice import Engine, EngineKind
from emulator.engine.swarm import SERVICE_LABEL
from emulator.runs import labels
from emulator.testing import wait_for
from tests.support import containers, free_port, services, swarm_mode

# Remote mode is cheap (this engine behind a TCP forward): where a test is cheap, it runs too.
ALL_ENGINES = pytest.mark.parametrize(
    "engine", ["local", "remote", "swarm"], indirect=True, scope="module"
)
LOCAL_AND_SWARM = pytest.mark.parametrize(
    "engine", ["local", "swarm"], indirect=True, scope="module"
)
LOCAL_ONLY = pytest.mark.parametrize("engine", ["local"], indirect=True, scope="module")


@dataclass(frozen=True)
class EngineUnderTest:
    kind: EngineKind

    @property
    def engine(self) -> Engine:
        """For `RunningEmulator` and `emu_up(..., engine=...)`."""
        return Engine.detect(str(self.kind))

    @property
    def flags(self) -> tuple[str, ...]:
        """For `emu up`, `emu ps` and `emu down`."""
        return ("--engine", str(self.kind))

    @property
    def instance_type(self) -> str:
        """For a test's own project: the seed's, or on Swarm, which reserves the limits (this
        2-CPU node places two `standard-2` at most), `basic` (1/4 vCPU)."""
        return "basic" if self.kind is EngineKind.SWARM else "standard-2"

    @property
    def seed_type(self) -> str | dict[str, Any]:
        """For the shared seed, up while other tests run: on Swarm 1/8 vCPU, so that ten fit
        beside two `basic` (at 1/16, `lite`, the executor takes 4 s to start)."""
        if self.kind is EngineKind.SWARM:
            return {"vcpu": 0.125, "memory_mib": 1024, "disk_mb": 4000}
        return self.instance_type

    def live(self, client: docker.DockerClient, **short_names: str) -> list[Any]:
        """What the instances run as: Swarm services, else containers."""
        if self.kind is EngineKind.SWARM:
            return services(client, **short_names)
        return containers(client, **short_names)

    def leftovers(self, client: docker.DockerClient, **short_names: str) -> list[Any]:
        """Services and containers (a task's container carries the labels too)."""
        found = containers(client, **short_names)
        return found + services(client, **short_names) if self.kind is EngineKind.SWARM else found

    def container_attrs(self, client: docker.DockerClient, instance_id: str) -> dict[str, Any]:
        """`docker inspect` of the container that runs an instance: on Swarm, its task's."""
        if self.kind is EngineKind.SWARM:
            [instance_id] = [c.id for c in _task_containers(client, instance_id)]
        return dict(client.api.inspect_container(instance_id))

    def gone(self, client: docker.DockerClient, instance_id: str) -> bool:
        """The instance's container removed; on Swarm, its service (an instance's id) and its
        task's container, which emu removes last."""
        if self.kind is EngineKind.SWARM:
            service = client.services.list(filters={"id": instance_id})
            return not service and not _task_containers(client, instance_id)
        try:
            client.api.inspect_container(instance_id)
        except docker.errors.NotFound:
            return True
        return False


def _task_containers(client: docker.DockerClient, service_id: str) -> list[Any]:
    found = client.containers.list(
        all=True, filters={"label": [f"{SERVICE_LABEL}={service_id}"]}, ignore_removed=True
    )
    return list(found)


@contextlib.contextmanager
def engine_under_test(kind: str) -> Iterator[EngineUnderTest]:
    """Swarm mode, or a TCP forward as DOCKER_HOST, for the block."""
    under_test = EngineUnderTest(EngineKind(kind))
    if under_test.kind is EngineKind.SWARM:
        with swarm_mode():
            yield under_test
    elif under_test.kind is EngineKind.REMOTE:
        with tcp_forward() as url, pytest.MonkeyPatch.context() as env:
            env.setenv("DOCKER_HOST", url)
            yield under_test
    else:
        yield under_test


@contextlib.contextmanager
def tcp_forward() -> Iterator[str]:
    """This engine's socket forwarded on tcp://127.0.0.1:<port> (socat), for the block."""
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed (apt-get install socat; .ci/run installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            "UNIX-CONNECT:/var/run/docker.sock",
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        url = f"tcp://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), 10, "socat to forward the engine")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        client = docker.DockerClient(base_url=url, timeout=5)
    except docker.errors.DockerException:  # not listening yet
        return False
    try:
        return bool(client.ping())
    finally:
        client.close()


def session_of(found: Any) -> str:
    """The session of what `live` or `leftovers` found: a container or a service."""
    spec = found.attrs.get("Spec")
    return str((spec["Labels"] if spec else found.labels)[labels.SESSION])


def type_limits(instance_type: str | dict[str, Any]) -> tuple[str, float, int]:
    """(name, vCPU, memory in bytes) of an instance type as a config gives it."""
    if isinstance(instance_type, str):
        found = INSTANCE_TYPES[instance_type]
        return found.name, found.vcpu, found.memory_mib * 2**20
    return "custom", instance_type["vcpu"], instance_type["memory_mib"] * 2**20
