from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from emulator.runs.labels import MANAGED, PID, docker_filter
from tests.support import swarm_mode
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


DOCKER_HOST_AT_START = os.environ.get("DOCKER_HOST")


@pytest.fixture(autouse=True)
def _engine_left_alone(request: pytest.FixtureRequest) -> None:
    """A test that does not ask for `engine` runs on the engine the run started with: a
    module's `engine` fixture (a remote engine's DOCKER_HOST) must not outlive its tests."""
    now = os.environ.get("DOCKER_HOST")
    if "engine" not in request.fixturenames and now != DOCKER_HOST_AT_START:
        pytest.fail(f"DOCKER_HOST is {now!r}, left by another test's `engine` fixture")


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> Iterator[EngineUnderTest]:
    """The engine a test runs on, from its mark (tests/support/engines.py): once per module and
    engine, so a module's Swarm tests share one `docker swarm init`."""
    with engine_under_test(request.param) as under_test:
        yield under_test


# -- running side by side: `pytest -n 3` (.ci/run) ----------------------------------------------
# Each module is an xdist group of its own (`--dist loadgroup` in pyproject.toml), so a worker
# runs all of it and its module-scoped fixtures (a seed emu, a registry) are made once. Tests
# that share something of the engine or of the repository are one group, run one after another:
SWARM = "swarm"  # Swarm mode is the engine's: one `docker swarm init` at a time (swarm_mode)
# Worker mode keeps a project's Durable Objects in `.wrangler/state` beside its config: two
# workerd processes must not write the same SQLite files at once (examples/seed's, here).
SHARED_FOLDERS = {
    "examples/seed/.wrangler": (
        "tests/integration/worker/test_worker_mode.py",
        "tests/integration/cockpit/test_worker_cockpit.py",
        "tests/integration/load/test_load.py",
        # tests/integration/data/basic: its state, and `emu status -c` finding one emu up of it
        "tests/integration/faults/test_runtime_faults.py",
    ),
}
# The groups that take longest (minutes, one test after another): started first.
LONGEST = ("examples/seed/.wrangler", SWARM)
# What must have the engine to itself (it stops dockerd): `-m serial` runs it after the others.
SERIAL_MARKS = ("engine_restart",)
ROOT = Path(__file__).resolve().parent.parent


def _uses_swarm(item: pytest.Item) -> bool:
    """On the `swarm` engine (tests/support/engines.py), or in a module that takes swarm_mode."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("engine") == "swarm":
        return True
    module = getattr(item, "module", None)
    return getattr(module, "swarm_mode", None) is swarm_mode


def _group(item: pytest.Item) -> str:
    if _uses_swarm(item):
        return SWARM
    module = item.path.relative_to(ROOT).as_posix()
    for folder, modules in SHARED_FOLDERS.items():
        if module in modules:
            return folder
    return module


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Order(), "emu-test-order")
    # Started in the background by a shell without job control (`nohup`, `cmd &` in a script),
    # the run ignores Ctrl-C, and so would every `emu` it starts: Python keeps an ignored SIGINT
    # ignored. The tests that press Ctrl-C on an emu need it to arrive.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    missing = [m for ms in SHARED_FOLDERS.values() for m in ms if not (ROOT / m).is_file()]
    if missing:  # a renamed module would quietly run beside the others again
        raise pytest.UsageError(f"tests/conftest.py SHARED_FOLDERS names no file: {missing}")


ORDER = pytest.StashKey[tuple[int, int]]()  # (the group's rank, the module's first index)


@pytest.hookimpl(tryfirst=True)  # before -m deselects and xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test's xdist group and serial mark (examples/ too, which this conftest does not
    cover otherwise), and its place in the run (see `_run_order`)."""
    first: dict[Path, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.path, index)
        group = _group(item)
        rank = LONGEST.index(group) if group in LONGEST else len(LONGEST)
        item.stash[ORDER] = (rank, first[item.path])
        item.add_marker(pytest.mark.xdist_group(group))
        if any(item.get_closest_marker(name) for name in SERIAL_MARKS):
            item.add_marker(pytest.mark.serial)


class _Order:
    """A plugin of its own: a conftest can hold one `pytest_collection_modifyitems` only."""

    @pytest.hookimpl(trylast=True)  # after pytest's own reordering by parametrized fixtures
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        _run_order(items)


def _run_order(items: list[pytest.Item]) -> None:
    """The longest groups (LONGEST) first, so that no worker starts one near the end. In each
    module, the tests on the `engine` fixture after the others (in pytest's order, grouped by
    engine): a remote engine's DOCKER_HOST, a Swarm and a shared emu then end with the module
    instead of staying up through the rest of it. This runs after pytest's own reordering,
    which groups the tests of a module-scoped parametrized fixture and had put `[remote]`
    tests first: the ones after them then ran on the remote engine's DOCKER_HOST."""
    items.sort(key=lambda item: (*item.stash[ORDER], "engine" in getattr(item, "fixturenames", ())))


def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """With `--dist loadgroup`, each test's id as a worker sends it must end in its group: the
    scheduler reads nothing else. Where it does not (pytest 9.2 with pytest-xdist 3.8: issue
    #1386), every test is scheduled alone, and tests that share a project folder start their
    emus side by side (in CI: workerd's SQLITE_BUSY). Stop the run instead of running it so."""
    if node.config.getoption("dist") != "loadgroup":
        return
    lost = [nodeid for nodeid in ids if "@" not in nodeid.rpartition("]")[2]]
    if lost:
        pytest.exit(
            f"--dist loadgroup: {len(lost)} tests lost their xdist group (e.g. {lost[0]}): "
            f"pytest {pytest.__version__} with this pytest-xdist ignores the groups "
            "(pytest-xdist#1386); install pytest<9.2, as pyproject.toml says",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
