"""Pure pieces of instances/instance.py, spec.py and pool.py."""

from __future__ import annotations

import random
from typing import Any, cast

import pytest

from emulator.config import ClassConfig, InstanceType
from emulator.instances import pool as mod
from emulator.instances.instance import INSTANCE_NAME, ping_target
from emulator.instances.spec import durable_object_id


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("ping", ("ping", "/")),
        ("container/health", ("container", "/health")),
        ("localhost/a/b?x=1", ("localhost", "/a/b?x=1")),
    ],
)
def test_ping_target_splits_host_and_path_like_the_library(
    endpoint: str, target: tuple[str, str]
) -> None:
    assert ping_target(endpoint) == target


def test_durable_object_id_is_stable_64_hex_per_class_and_name() -> None:
    a = durable_object_id("Exec", "instance-0")
    assert len(a) == 64 and int(a, 16) >= 0
    assert a == durable_object_id("Exec", "instance-0")
    assert a != durable_object_id("Exec", "instance-1")
    assert a != durable_object_id("Other", "instance-0")


@pytest.mark.parametrize("name", ["instance-0", "a", "A.b_c-9", "x" * 63])
def test_instance_names_allowed(name: str) -> None:
    assert INSTANCE_NAME.match(name)


@pytest.mark.parametrize("name", ["", "-a", "../x", "a b", "x" * 64, "é", "a/b", "a\n"])
def test_instance_names_refused(name: str) -> None:
    assert not INSTANCE_NAME.match(name)


async def test_stopped_instances_beyond_the_limit_are_forgotten_oldest_first() -> None:
    cfg = ClassConfig(
        class_name="C",
        binding="C",
        name="c",
        image="x",
        dockerfile=None,
        build_context=None,
        image_vars={},
        max_instances=2,
        instance_type=InstanceType("lite", 0.0625, 256, 2000),
        default_port=80,
        required_ports=(),
        sleep_after=60.0,
        env_vars={},
        entrypoint=None,
        enable_internet=True,
        ping_endpoint="ping",
        instances=3,
    )
    pool = mod.ClassPool(cfg, cast(Any, None), random.Random(1))
    busy = pool.get("busy")
    busy.begin()  # a request in flight: never forgotten
    for k in range(mod.MAX_REMEMBERED - 1):
        pool.get(f"user-{k}").last_activity = float(k)
    assert len(pool.instances) == mod.MAX_REMEMBERED
    pool.get("newcomer")
    assert len(pool.instances) == mod.MAX_REMEMBERED // 2 + 1
    assert "busy" in pool.instances and "newcomer" in pool.instances
    assert "user-0" not in pool.instances  # the longest idle went first
    assert f"user-{mod.MAX_REMEMBERED - 2}" in pool.instances


@pytest.mark.parametrize(
    "message",
    [
        "network emu-5df3cad08fe1-5ccdc4 not found",
        # the same engine in Swarm mode words it so
        "Could not attach to network emu-5df3cad08fe1-5ccdc4: rpc error: code = NotFound "
        "desc = network emu-5df3cad08fe1-5ccdc4 not found",
    ],
)
def test_a_missing_network_is_recognised_in_either_wording(message: str) -> None:
    from emulator.engine.docker_types import network_missing

    assert network_missing(message)
    assert not network_missing("No such image: nginx:9")
