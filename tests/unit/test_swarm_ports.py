"""A Swarm task's published ports: Docker 20.10 binds each twice (0.0.0.0, then [::]), at
times on two different ephemeral ports; emu reaches the IPv4 one."""

from __future__ import annotations

from emulator.engine.swarm import _published


def test_the_first_binding_of_a_port_is_the_one_reached() -> None:
    ports = [
        {"Protocol": "tcp", "TargetPort": 8000, "PublishedPort": 32830, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 8000, "PublishedPort": 32827, "PublishMode": "host"},
        {"Protocol": "tcp", "TargetPort": 9000, "PublishedPort": 32831, "PublishMode": "host"},
    ]
    assert _published(ports) == {8000: 32830, 9000: 32831}
