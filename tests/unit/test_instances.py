"""Pure pieces of instances.py."""

from __future__ import annotations

import pytest

from emulator.instances import INSTANCE_NAME, durable_object_id, ping_target


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
