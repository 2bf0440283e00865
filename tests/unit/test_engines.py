"""Choosing how instances are reached, without Docker: on the host or on the Swarm overlay,
and the refusal of `enableInternet = false` where emu cannot reach such a task."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.cli.commands import main
from emulator.engine.choice import LOOPBACK, Engine, EngineKind
from emulator.engine.swarm import INTERNAL_FROM_HOST, _overlay_address, _published
from tests.support import Project


def test_swarm_from_the_host_publishes_and_from_a_container_reaches_the_overlay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("EMU_IN_CONTAINER", raising=False)
    assert Engine.detect("swarm", "") == Engine(EngineKind.SWARM, LOOPBACK)
    monkeypatch.setenv("EMU_IN_CONTAINER", "1")
    assert Engine.detect("swarm", "") == Engine(EngineKind.SWARM, None)
    assert Engine.detect(None, "").kind is EngineKind.LOCAL  # compose.yaml alone: local


def test_enable_internet_false_is_refused_only_under_swarm_from_the_host() -> None:
    host = Engine(EngineKind.SWARM, LOOPBACK)
    assert host.refusal(["Sandbox"]) == f"Sandbox: {INTERNAL_FROM_HOST}"
    assert host.refusal([]) is None
    assert Engine(EngineKind.SWARM, None).refusal(["Sandbox"]) is None  # on the overlay
    assert Engine(EngineKind.LOCAL).refusal(["Sandbox"]) is None


@pytest.mark.parametrize("how", [["--engine", "swarm"], []])
def test_up_under_swarm_from_the_host_refuses_an_internal_class_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: list[str]
) -> None:
    monkeypatch.delenv("EMU_IN_CONTAINER", raising=False)
    path = Project(extra_class_body="  enableInternet = false;").write(tmp_path)
    env = {"EMU_ENGINE": "swarm"}  # what compose.swarm.yaml sets; a flag wins over it
    result = CliRunner().invoke(main, ["up", "-c", str(path), "--no-worker", *how], env=env)
    assert result.exit_code == 2, result.output
    assert "PythonExecutorContainer: enableInternet = false needs emu on" in result.output
    assert "Traceback" not in result.output


def test_a_tasks_overlay_address_is_its_networks_not_the_routing_meshs() -> None:
    ingress = {
        "Network": {"Spec": {"Name": "ingress", "Ingress": True}},
        "Addresses": ["10.0.0.5/24"],
    }
    own = {"Network": {"Spec": {"Name": "emu-x"}}, "Addresses": ["10.0.3.4/24"]}
    assert _overlay_address({"NetworksAttachments": [ingress, own]}) == "10.0.3.4"
    assert _overlay_address({}) is None


def test_a_port_published_twice_is_reached_on_its_ipv4_one() -> None:
    both = [
        {"TargetPort": 8000, "PublishedPort": 32895},  # 0.0.0.0
        {"TargetPort": 8000, "PublishedPort": 32892},  # [::]
    ]
    assert _published(both) == {8000: 32895}


def test_the_bridge_gateway_is_read_or_derived_from_the_subnet() -> None:
    from emulator.engine.bridge import gateway

    assert gateway([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]) == "172.18.0.1"
    # The default bridge lists only its subnet; the engine gives the host its first address.
    assert gateway([{"Subnet": "172.17.0.0/16"}]) == "172.17.0.1"
    assert gateway([{"Subnet": "fd00::/64"}]) is None and gateway([]) is None


async def test_an_address_this_host_lacks_is_an_unreachable_bridge() -> None:
    from emulator.engine.bridge import bridge_unreachable

    assert await bridge_unreachable("127.0.0.1") is None
    why = await bridge_unreachable("203.0.113.7")  # TEST-NET-3: never this host's; no traffic
    assert why is not None and "not an address of this host" in why
    assert await bridge_unreachable(None) is not None
