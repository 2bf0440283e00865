"""`--engine swarm` on two nodes: this machine's engine as the manager, and a worker that is
Debian's Docker engine in a container (engines/dind) on a network of the test's own.

The worker is driven with `docker exec node docker ...` (its socket is not exposed). Nothing
can be pulled here, so the test loads the instance image into it (`docker save | docker load`)
and names it in `image:` by reference, as a registry that every node reaches would serve it on
a real cluster.

Not `--privileged`: this machine's engine lacks CAP_SYS_RESOURCE in its bounding set, and a
privileged container fails to start (`unable to apply caps: operation not permitted`). The
node gets every other capability, no seccomp or AppArmor profile, unmasked /proc, all devices,
and a cgroup namespace of its own whose controllers its entrypoint makes writable."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from emulator.config import Overrides
from emulator.engine.choice import Engine
from emulator.options import EmulatorOptions
from emulator.runs import labels
from emulator.testing import RunningEmulator, wait_for
from tests.support import emu_cli, swarm_mode

pytestmark = pytest.mark.docker

CONTEXT = Path(__file__).parent / "dind"
JSON = {"Accept": "application/json"}
GIB = 1024**3


@dataclass(frozen=True)
class Node:
    container: Any  # docker.models.containers.Container
    hostname: str
    volume: str  # the inner engine's /var/lib/docker


def built(client: docker.DockerClient, target: str) -> str:
    """A stage of engines/dind, tagged by a hash of the folder: built once (the node's
    costs apt downloads)."""
    digest = hashlib.sha256()
    for path in sorted(CONTEXT.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    tag = f"emu-test-{target}:{digest.hexdigest()[:16]}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        client.images.build(
            path=str(CONTEXT), target=target, tag=tag, labels={labels.TEST: "dind"}, rm=True
        )
    return tag


@contextlib.contextmanager
def second_node(client: docker.DockerClient, images: list[str]) -> Iterator[Node]:
    """A node holding `images`, joined as a worker to this engine made a Swarm manager that
    is advertised on the test network's gateway; all of it removed at the end, also on
    failure."""
    own = {**labels.managed(), labels.TEST: f"swarm-nodes-{os.getpid()}"}
    name = f"emu-test-node-{os.getpid()}"
    node_image = built(client, "node")
    net = client.networks.create(name, driver="bridge", labels=own)
    try:
        node = _run_node(client, node_image, name, own)
        try:
            [volume] = [m["Name"] for m in node.attrs["Mounts"] if m["Type"] == "volume"]
            wait_for(lambda: _engine_answers(node), 60, "the node's engine to answer", every=0.1)
            for image in images:
                _ship(image, node)
            net.reload()
            gateway = net.attrs["IPAM"]["Config"][0]["Gateway"]
            with swarm_mode(gateway):
                client.swarm.reload()
                token = client.swarm.attrs["JoinTokens"]["Worker"]
                joined = node.exec_run(["docker", "swarm", "join", "--token", token, gateway])
                assert joined.exit_code == 0, joined.output.decode(errors="replace")
                wait_for(lambda: _ready(client, name), 30, "the node to be ready", every=0.1)
                yield Node(node, name, volume)
        finally:
            node.remove(force=True, v=True)
    finally:
        net.remove()


def _run_node(client: docker.DockerClient, image: str, name: str, own: dict[str, str]) -> Any:
    host_config = client.api.create_host_config(
        network_mode=name,
        cap_add=["ALL"],
        cap_drop=["SYS_RESOURCE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        device_cgroup_rules=["a *:* rwm"],
        cgroupns="private",
    )
    # `--security-opt systempaths=unconfined`, which the SDK lacks: the inner engine writes
    # /proc/sys (forwarding, bridge netfilter).
    host_config.update(MaskedPaths=[], ReadonlyPaths=[])
    created = client.api.create_container(
        image, name=name, hostname=name, labels=own, host_config=host_config
    )
    node = client.containers.get(created["Id"])
    node.start()
    return node


def _engine_answers(node: Any) -> bool:
    node.reload()
    if node.status != "running":
        raise AssertionError(f"the node exited: {node.logs(tail=20).decode(errors='replace')}")
    return bool(node.exec_run(["docker", "version"]).exit_code == 0)


def _ship(image: str, node: Any) -> None:
    """An image into the node's engine: what a registry would do on a cluster."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.run(
        ["docker", "exec", "-i", node.id, "docker", "load", "-q"],
        stdin=save.stdout,
        capture_output=True,
        timeout=120,
    )
    assert save.wait(60) == 0 and load.returncode == 0, load.stderr


def _ready(client: docker.DockerClient, hostname: str) -> bool:
    return any(
        n.attrs["Description"]["Hostname"] == hostname and n.attrs["Status"]["State"] == "ready"
        for n in client.nodes.list(filters={"role": "worker"})
    )


def project(root: Path, image: str) -> Path:
    """Class `Web` on `image` by reference; standard-4, capped at the engines' 2 CPUs, so
    that each instance reserves a whole node."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.ts").write_text(
        "export class Web extends Container { defaultPort = 8000; }\n"
        "const c = getRandom(env.WEB, 3);\n"
    )
    (root / "wrangler.jsonc").write_text(
        json.dumps(
            {
                "name": "two-nodes",
                "main": "src/index.ts",
                "containers": [
                    {
                        "class_name": "Web",
                        "image": image,
                        "max_instances": 3,
                        "instance_type": "standard-4",
                    }
                ],
                "durable_objects": {"bindings": [{"name": "WEB", "class_name": "Web"}]},
                "migrations": [{"tag": "v1", "new_sqlite_classes": ["Web"]}],
            }
        )
    )
    return root / "wrangler.jsonc"


def unshipped_tag(client: docker.DockerClient, image: str) -> str:
    """`image` under a name the second node does not have."""
    repository, tag = image.split(":")
    client.images.get(image).tag(repository + "-unshipped", tag)
    return f"{repository}-unshipped:{tag}"


def services(client: docker.DockerClient, session: str) -> list[Any]:
    found = labels.docker_filter(labels.session_filter(session))
    return list(client.services.list(filters={"label": found}))


def test_instances_spread_over_two_nodes_when_the_first_is_full(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    web = built(docker_client, "web")
    path = project(tmp_path, web)
    with second_node(docker_client, [web]) as node:
        overrides = Overrides(start_timeout="4s")
        with RunningEmulator.from_path(
            path, overrides, EmulatorOptions(engine=Engine.detect("swarm"), worker=False)
        ) as emu:
            for name in ("a", "b"):
                r = requests.get(
                    emu.url + "/cgi-bin/limits", headers={"x-emu-instance": name}, timeout=60
                )
                assert r.status_code == 200, r.text
                # The limits, seen inside the container, on either node.
                assert r.text.split("\n")[:2] == ["cpu 200000 100000", f"memory {12 * GIB}"]

            listed = emu_cli("ps", "-c", str(path), "--engine", "swarm", "--json")
            assert listed.returncode == 0, listed.stderr
            nodes = {row["instance"]: row["node"] for row in json.loads(listed.stdout)}
            assert sorted(nodes.values()) == sorted([docker_client.info()["Name"], node.hostname])
            assert {k: v["node"] for k, v in emu.instances().items() if v["node"]} == nodes

            # Both nodes full: the third waits for a node, then answers the scheduler's reason.
            full = requests.get(emu.url + "/", headers={"x-emu-instance": "c", **JSON}, timeout=60)
            assert full.status_code == 503, full.text
            assert "insufficient resources on 2 nodes" in full.json()["reason"]

            # An image the second node lacks (it cannot pull): the node's refusal, with the remedy.
            [on_node] = [k for k, v in nodes.items() if v == node.hostname]
            emu.stop_instance(on_node)
            unshipped = project(tmp_path / "unshipped", unshipped_tag(docker_client, web))
            with RunningEmulator.from_path(
                unshipped, options=EmulatorOptions(engine=Engine.detect("swarm"), worker=False)
            ) as other:
                r = requests.get(other.url + "/", headers={"x-emu-instance": "d", **JSON})
                assert r.status_code == 500, r.text
                assert f"node {node.hostname} rejected the task: No such image" in r.text
                assert "registry" in r.text
            session = emu.emulator.session_id
        assert not services(docker_client, session)
        cluster = docker_client.swarm.attrs["ID"]
    own = labels.docker_filter({labels.TEST: f"swarm-nodes-{os.getpid()}"})
    assert not docker_client.containers.list(all=True, filters={"label": own})
    assert not docker_client.networks.list(filters={"label": own})
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(node.volume)
    # This engine left that Swarm (another test may have made a new one since: not ours).
    assert (docker_client.info()["Swarm"].get("Cluster") or {}).get("ID") != cluster
