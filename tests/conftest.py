from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from emulator.runs.labels import MANAGED, PID, docker_filter
from tests.support.engines import EngineUnderTest, engine_under_test


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # the tests that need it cannot run: say why, loudly
        pytest.fail(f"Docker engine unreachable ({exc}); run ../shared/tools/ensure-docker")
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers() -> Iterator[None]:
    """After the whole run: anything labelled by an emu in this process is a leak; remove it
    so the machine stays clean, and fail the run so the leak gets fixed."""
    yield
    try:
        client = docker.from_env(timeout=60)
    except Exception:
        return
    mine = docker_filter({PID: str(os.getpid()), MANAGED: "true"})
    leaked = client.containers.list(all=True, filters={"label": mine}, ignore_removed=True)
    nets = client.networks.list(filters={"label": mine})
    for c in leaked:
        c.remove(force=True)
    for n in nets:
        n.remove()
    client.close()
    if leaked or nets:
        pytest.fail(f"leftovers: {[c.name for c in leaked]} {[n.name for n in nets]}")


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> Iterator[EngineUnderTest]:
    """The engine a test runs on, from its mark (tests/support/engines.py): once per module and
    engine, so a module's Swarm tests share one `docker swarm init`."""
    with engine_under_test(request.param) as under_test:
        yield under_test


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In each module, the tests on the `engine` fixture run after the others (in pytest's
    order, grouped by engine): the last engine's Swarm and shared emu then end with the module,
    instead of staying up through the rest of it."""
    first: dict[Path, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.path, index)
    items.sort(key=lambda item: (first[item.path], "engine" in getattr(item, "fixturenames", ())))
