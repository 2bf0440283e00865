"""Worker mode's egress on the real engine, with the real @cloudflare/containers: a container of
the test's own (data/egress/container/client.py) makes outbound requests to names that only emu
resolves, with clients that ignore proxy variables, and the library's rules answer them."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import docker
import pytest

from emulator.runs import labels
from tests.support import DATA, containers
from tests.support.worker import WorkerEmu

pytestmark = pytest.mark.docker

EGRESS = DATA / "egress"
REFUSED = "Origin is disallowed"
NODE = shutil.which("node")

if NODE is None:
    pytest.skip("worker mode needs Node.js", allow_module_level=True)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerEmu]:
    """One `emu up` for the module: the project copied, with this machine's `node` in the
    container's build context (Node's fetch as a client)."""
    project = tmp_path_factory.mktemp("egress") / "project"
    shutil.copytree(EGRESS, project)
    assert NODE is not None
    shutil.copy(Path(NODE).resolve(), project / "container" / "node")
    emu = WorkerEmu(project / "wrangler.jsonc")
    try:
        yield emu.wait_serving(600)
    finally:
        emu.stop()


def out(emu: WorkerEmu, who: str, client: str, url: str) -> dict[str, Any]:
    """What the container's `client` got for `url`."""
    r = emu.get(f"/{who}/out?client={client}&url={quote(url)}", timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize("client", ["py", "node", "raw"])
def test_a_denied_host_gets_the_librarys_refusal(emu: WorkerEmu, client: str) -> None:
    denied = out(emu, "denier/a", client, "http://denied.test/x")
    assert denied == {"status": 520, "body": REFUSED}, emu.output[-3000:]
    other = out(emu, "denier/a", client, "http://other.test/path")
    assert other == {"status": 200, "body": "catch-all GET other.test/path"}


def test_each_intercepted_request_is_an_outbound_record(emu: WorkerEmu) -> None:
    out(emu, "denier/feed", "py", "http://denied.test/fed")
    records = emu.get("/_emu/requests").json()
    mine = [r for r in records if r.get("outbound") and r["instance"] == "feed"]
    assert len(mine) == 1, records
    (record,) = mine
    assert record["path"] == "http://denied.test/fed" and record["method"] == "GET"
    assert record["class"] == "Denier" and record["status"] == 520
    assert record["duration_ms"] > 0


def test_denyhost_at_runtime_takes_effect(emu: WorkerEmu) -> None:
    before = out(emu, "denier/runtime", "py", "http://later.test/")
    assert before["status"] == 200 and before["body"].startswith("catch-all")
    assert emu.get("/denier/runtime/deny?host=later.test").status_code == 200
    assert out(emu, "denier/runtime", "py", "http://later.test/") == {
        "status": 520,
        "body": REFUSED,
    }
    assert out(emu, "denier/runtime", "py", "http://still.test/")["status"] == 200


def test_allowed_hosts_and_outbound_by_host(emu: WorkerEmu) -> None:
    exact = out(emu, "allower/a", "py", "http://allowed.test/e")
    assert exact == {"status": 200, "body": "exact GET allowed.test/e"}
    glob = out(emu, "allower/a", "node", "http://a.b.glob.test/g")
    assert glob == {"status": 200, "body": "glob GET a.b.glob.test/g"}
    outside = out(emu, "allower/a", "py", "http://outside.test/")
    assert outside == {"status": 520, "body": REFUSED}


def test_https_to_an_intercepted_host_is_verified_through_the_ca(emu: WorkerEmu) -> None:
    for client in ("py", "node"):
        secure = out(emu, "secure/a", client, "https://secure.test/s")
        assert secure == {"status": 200, "body": "secure GET secure.test/s"}, (client, secure)
    plain = out(emu, "secure/a", "py", "http://secure.test/p")
    assert plain == {"status": 200, "body": "secure GET secure.test/p"}


def _gateway_of(emu: WorkerEmu, who: str) -> str:
    """The host's address on the container's network, from its own routing table."""
    assert emu.get(f"/{who}/start").status_code == 200  # exec needs it running
    r = emu.get(f"/{who}/exec?cmd={quote(json.dumps(['cat', '/proc/net/route']))}")
    assert r.status_code == 200, r.text
    for line in r.json()["stdout"].splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
    raise AssertionError(f"no default route in {r.text}")


def test_without_internet_a_host_listener_is_out_of_reach(emu: WorkerEmu) -> None:
    host_side = _gateway_of(emu, "open/a")
    with socket.socket() as server:
        server.bind((host_side, 0))
        server.listen(8)
        port = server.getsockname()[1]
        accepted: list[bytes] = []

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    accepted.append(conn.recv(1024))
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nhost"
                    )

        threading.Thread(target=serve, daemon=True).start()
        url = f"http://{host_side}:{port}/"
        assert out(emu, "open/a", "raw", url) == {"status": 200, "body": "host"}
        sealed = out(emu, "sealed/a", "raw", url)
        assert "error" in sealed and "unreachable" in sealed["error"].lower(), sealed
        assert len(accepted) == 1


def test_exec_inspect_and_snapshots(emu: WorkerEmu) -> None:
    cmd = ["sh", "-c", "echo out; echo err >&2; exit 7"]
    stopped = emu.get(f"/open/x/exec?cmd={quote(json.dumps(cmd))}")
    assert stopped.status_code == 500 and "exec() requires a running container" in stopped.text
    assert emu.get("/open/x/start").status_code == 200
    r = emu.get(f"/open/x/exec?cmd={quote(json.dumps(cmd))}")
    assert r.json() == {"stdout": "out\n", "stderr": "err\n", "exitCode": 7}
    snap = emu.get("/open/x/snapshot").text
    assert snap.startswith("snapshotDirectory() is not supported locally"), snap
    inspected = emu.get("/open/x/inspect").json()
    assert inspected["running"] is True and inspected["ipAddresses"]


def _gateway(emu: WorkerEmu) -> Any:
    """The session's gateway container, which the first intercepting container's start makes:
    made here if no earlier test of the module did (the tests run in any order)."""
    assert out(emu, "denier/gateway", "py", "http://denied.test/") == {
        "status": 520,
        "body": REFUSED,
    }
    client = docker.from_env()
    (found,) = [
        c
        for c in containers(client)
        if c.labels.get(labels.ROLE) == "egress-gateway"
        and c.labels.get(labels.PID) == str(emu.proc.pid)
    ]
    return found


def test_a_gateway_removed_under_emu_is_made_again(emu: WorkerEmu) -> None:
    _gateway(emu).remove(force=True)
    again = out(emu, "denier/after-removal", "py", "http://denied.test/")
    assert again == {"status": 520, "body": REFUSED}
    assert _gateway(emu).status == "running"


def test_the_gateway_goes_with_emu(emu: WorkerEmu) -> None:
    client = docker.from_env()
    session = _gateway(emu).labels[labels.SESSION]
    emu.proc.send_signal(signal.SIGINT)
    assert emu.wait_exit(60) == 0
    assert containers(client, session=session) == []
