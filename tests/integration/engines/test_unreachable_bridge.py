"""A local engine whose bridge addresses this host cannot reach (Docker Desktop on macOS and
Windows, colima, rootless Docker, a firewall): emu detects it and serves the instances through
ports published on loopback, as on a remote engine, in worker mode too.

The test makes the bridge unreachable for emu alone: emu runs with a group id of its own
(setpriv), and an iptables rule drops what that group sends to Docker's address range. The
engine's own port proxy (root's group) still reaches the containers, as Docker Desktop's does."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import docker
import pytest

from tests.support.worker import BASIC, NEEDS_NODE, WorkerEmu

pytestmark = [pytest.mark.docker, NEEDS_NODE]
GROUP = "4242"  # no group of this machine's: only emu's processes carry it
# Docker's default address pools: 172.17-31.x, then 192.168.x.
RULES = [
    ["OUTPUT", "-d", net, "-m", "owner", "--gid-owner", GROUP, "-j", "DROP"]
    for net in ("172.16.0.0/12", "192.168.0.0/16")
]


@pytest.fixture
def bridge_dropped() -> Iterator[tuple[str, ...]]:
    """The rule for the test's duration; what to run emu under to be subject to it."""
    if os.geteuid() != 0 or shutil.which("iptables") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, iptables and setpriv")
    added = []
    try:
        for rule in RULES:
            subprocess.run(["iptables", "-I", *rule], check=True)
            added.append(rule)
        yield ("setpriv", f"--regid={GROUP}", "--clear-groups")
    finally:
        for rule in added:
            subprocess.run(["iptables", "-D", *rule], check=True)


def test_an_unreachable_bridge_is_served_on_loopback_ports(
    bridge_dropped: tuple[str, ...],
    running: list[WorkerEmu],
    docker_client: docker.DockerClient,
) -> None:
    emu = WorkerEmu(BASIC, "--no-persist", prefix=bridge_dropped)
    running.append(emu)
    emu.wait_serving()
    assert "this host cannot reach the engine's bridge addresses" in emu.output
    resp = emu.get("/container/one")  # the Worker, the library, then the container
    assert resp.status_code == 200, resp.text
    assert resp.json()["hostname"] == "container-one"
    [inst] = emu.instances().values()
    assert inst["ip"] == "127.0.0.1"
    attrs = docker_client.api.inspect_container(inst["container_id"])
    [binding] = attrs["HostConfig"]["PortBindings"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    assert attrs["HostConfig"]["NanoCpus"] == 62_500_000  # lite's limit, still enforced
