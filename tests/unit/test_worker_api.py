"""The container runtime API that the shim behind ctx.container calls, over a fake host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from emulator.egress.plan import Plan
from emulator.worker.api import (
    TOKEN_HEADER,
    ExitState,
    NoInstance,
    Started,
    StartRequest,
    routes,
)
from emulator.worker.container_ops import ExecResult
from emulator.worker.records import Counts, untied_record, worker_record

TOKEN = "secret"


class FakeHost:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.counts: list[Counts] = []
        self.records: list[Mapping[str, Any]] = []
        self.full = False

    async def start(self, req: StartRequest) -> Started:
        self.calls.append(("start", req))
        if self.full:
            raise NoInstance("max_instances reached")
        return Started(container="c1", ip="172.18.0.5")

    async def wait_exit(
        self, class_name: str, name: str, container: str, timeout: float
    ) -> ExitState:
        self.calls.append(("monitor", (class_name, name, container)))
        return ExitState(running=False, exit_code=137, signalled=True)

    async def signal(self, class_name: str, name: str, container: str, signo: int) -> None:
        self.calls.append(("signal", (class_name, name, container, signo)))

    async def destroy(self, class_name: str, name: str, container: str, reason: str) -> None:
        self.calls.append(("destroy", (class_name, name, container, reason)))

    def report(self, class_name: str, name: str, counts: Counts) -> None:
        self.calls.append(("report", (class_name, name, counts.requests, counts.inflight)))
        self.counts.append(counts)

    def record(self, records: list[Mapping[str, Any]]) -> None:
        self.records.extend(records)

    def intercept(self, class_name: str, name: str, ip: str, plan: Plan) -> bool:
        self.calls.append(("egress", (class_name, name, ip, plan)))
        return True

    async def exec(self, class_name: str, name: str, container: str, cmd: list[str]) -> ExecResult:
        self.calls.append(("exec", (class_name, name, container, cmd)))
        return ExecResult(b"out", b"err", 3)

    async def inspect(self, class_name: str, name: str, container: str) -> dict[str, Any]:
        return {"id": container}


@pytest.fixture
async def api(aiohttp_client: Any) -> tuple[TestClient[Any, Any], FakeHost]:
    host = FakeHost()
    app = web.Application()
    app.router.add_routes(routes(host, TOKEN))
    return await aiohttp_client(app), host


async def _post(client: TestClient[Any, Any], op: str, body: Any, token: str = TOKEN) -> Any:
    r = await client.post(f"/_emu/runtime/{op}", json=body, headers={TOKEN_HEADER: token})
    return r.status, await r.json()


async def test_only_the_worker_may_call(api: tuple[TestClient[Any, Any], FakeHost]) -> None:
    client, host = api
    status, _ = await _post(client, "start", {"class": "Box", "name": "a"}, token="guess")
    assert status == 403 and host.calls == []


async def test_start_passes_what_the_worker_asked(
    api: tuple[TestClient[Any, Any], FakeHost],
) -> None:
    client, host = api
    body = {
        "class": "Box",
        "name": "/container/a",
        "id": "ab" * 32,
        "env": {"MESSAGE": "hi", "N": 3},
        "entrypoint": ["python", "-m", "app"],
        "enableInternet": False,
        "labels": None,
    }
    status, data = await _post(client, "start", body)
    assert (status, data) == (200, {"container": "c1", "ip": "172.18.0.5", "ports": {}})
    req = host.calls[0][1]
    assert req == StartRequest(
        class_name="Box",
        name="/container/a",
        durable_object_id="ab" * 32,
        env={"MESSAGE": "hi", "N": "3"},
        entrypoint=("python", "-m", "app"),
        enable_internet=False,
        labels={},
    )


async def test_no_instance_is_what_the_library_retries(
    api: tuple[TestClient[Any, Any], FakeHost],
) -> None:
    client, host = api
    host.full = True
    status, data = await _post(client, "start", {"class": "Box", "name": "a"})
    assert status == 503 and data["kind"] == "no_instance"


async def test_monitor_signal_destroy(api: tuple[TestClient[Any, Any], FakeHost]) -> None:
    client, host = api
    who = {"class": "Box", "name": "a", "container": "c1"}
    assert await _post(client, "monitor", who) == (
        200,
        {"running": False, "exit_code": 137, "signalled": True},
    )
    assert (await _post(client, "signal", {**who, "signo": 15}))[0] == 200
    assert (await _post(client, "signal", {**who, "signo": "TERM"}))[0] == 400
    assert (await _post(client, "destroy", who))[0] == 200
    assert host.calls[1:] == [
        ("signal", ("Box", "a", "c1", 15)),
        ("destroy", ("Box", "a", "c1", "destroyed by the Worker")),
    ]
    assert (await _post(client, "start", {"name": "no class"}))[0] == 400


async def test_report_takes_counts_and_refuses_non_integers(
    api: tuple[TestClient[Any, Any], FakeHost],
) -> None:
    client, host = api
    who = {"class": "Box", "name": "a"}
    assert (await _post(client, "report", {**who, "requests": 40, "inflight": 2}))[0] == 200
    assert (await _post(client, "report", {**who, "requests": "40", "inflight": 2}))[0] == 400
    assert host.calls == [("report", ("Box", "a", 40, 2))]


async def test_report_carries_probes_cold_waits_and_untied_records(
    api: tuple[TestClient[Any, Any], FakeHost],
) -> None:
    client, host = api
    one = {"class": "Box", "instance": "a", "port": 8080, "path": "/x", "status": 200, "ms": 3}
    body = {
        "class": "Box",
        "name": "a",
        "requests": 1,
        "inflight": 0,
        "probes": 4,
        "cold_waits_ms": [812],
        "records": [one],
    }
    assert (await _post(client, "report", body))[0] == 200
    assert host.counts == [Counts(1, 0, 4, (812.0,), (one,))]
    assert (await _post(client, "report", {**body, "cold_waits_ms": ["x"]}))[0] == 400
    assert (await _post(client, "requests", {"records": [{"path": "/"}]}))[0] == 200
    assert host.records == [{"path": "/"}]
    assert (await _post(client, "requests", {"records": "no"}))[0] == 400


def test_a_worker_record_names_every_instance_it_reached() -> None:
    reached = [
        {"class": "Box", "instance": "b", "port": 8080, "status": 200, "ms": 2, "cold": True},
        {"class": "Box", "instance": "a", "port": 8080, "status": None, "ms": 1},
        {"class": "Box", "instance": "b", "port": 9000, "status": 204, "ms": 1},
    ]
    record = worker_record(
        {
            "time": 5.0,
            "method": "POST",
            "path": "/x?y",
            "status": 200,
            "ms": 9,
            "containers": reached,
        }
    )
    assert record[:9] == (5.0, "POST", "/x?y", "Box", "b", 200, 9.0, True, False)
    assert record[9] is not None
    extra = record[9].fields()
    assert extra["instances"] == ["b", "a"] and extra["tied"] is True
    assert [c["status"] for c in extra["containers"]] == [200, 502, 204]  # 502: no answer
    alone = untied_record({**reached[0], "path": "/rpc", "request": None})
    assert alone[2:5] == ("/rpc", "Box", "b")
    assert alone[9] is not None and alone[9].fields()["tied"] is False


async def test_egress_plan_and_exec(api: tuple[TestClient[Any, Any], FakeHost]) -> None:
    client, host = api
    who = {"class": "Box", "name": "a", "container": "c1"}
    plan = {"hosts": ["api.test", "*.example.test"], "https": ["*"], "all": True}
    status, data = await _post(client, "egress", {**who, "ip": "172.18.0.5", "egress": plan})
    assert (status, data) == (200, {"applied": True})
    sent = host.calls[-1][1][3]
    assert sent == Plan(hosts=("api.test", "*.example.test"), https=("*",), all=True)
    bad = await _post(client, "egress", {**who, "ip": "x", "egress": {"hosts": "api.test"}})
    assert bad[0] == 400 and "egress.hosts" in bad[1]["error"]

    status, data = await _post(client, "exec", {**who, "cmd": ["sh", "-c", "exit 3"]})
    assert (status, data) == (200, {"stdout": "b3V0", "stderr": "ZXJy", "exitCode": 3})
    status, data = await _post(client, "exec", {**who, "cmd": "ls"})
    assert status == 400 and "exec()" in data["error"]
