"""The cockpit in worker mode, on the real engine: each request's way from the client through the
Worker to its instances (the request feed, x-emu-instance), readiness probes apart from requests,
cold starts as the client waits them, exception bodies at the user's lines, a dashboard that
starts nothing, and only the settings that apply (emulator/worker/js/shim.js, records.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
import requests
from playwright.sync_api import Browser

from emulator.testing import wait_for
from tests.integration.cockpit.test_dashboard import WAIT_MS, browser
from tests.support import DATA, containers
from tests.support.worker import NEEDS_NODE, SEED, WorkerEmu

pytestmark = [pytest.mark.docker, NEEDS_NODE]
__all__ = ["browser"]  # the fixture, shared with test_dashboard

COCKPIT = DATA / "cockpit" / "wrangler.jsonc"
ID_HEADER = "x-emu-request-id"


@pytest.fixture(scope="module")
def cockpit() -> Iterator[WorkerEmu]:
    """The getContainer Worker, once for the module (each test names its own instances)."""
    emu = WorkerEmu(COCKPIT)
    try:
        yield emu.wait_serving()
    finally:
        emu.stop()


def test_the_dashboard_starts_no_container(
    cockpit: WorkerEmu, browser: Browser, docker_client: docker.DockerClient
) -> None:
    # First in this module: nothing has reached the Worker yet.
    assert cockpit.instances() == {}
    asked: list[str] = []
    page = browser.new_page()
    page.on("request", lambda request: asked.append(request.url))
    page.goto(cockpit.url + "/_emu/")
    page.wait_for_selector("#link.ok", timeout=WAIT_MS)  # the event stream is live
    page.wait_for_function(
        "document.querySelector('#classes [data-class=\"Echo\"]') !== null", timeout=WAIT_MS
    )
    assert page.query_selector("svg.chart") is None  # no getRandom: no spread to draw
    page.reload()
    page.wait_for_selector("#link.ok", timeout=WAIT_MS)
    assert asked and all("/_emu" in url for url in asked), asked
    assert any(url.endswith("/_emu/ui/icon.svg") for url in asked), asked
    assert cockpit.instances() == {}
    assert containers(docker_client, session=cockpit.status()["session"]) == []
    page.close()


def records(emu: WorkerEmu, count: int, where: str) -> list[dict[str, Any]]:
    """The feed's records for paths starting with `where`, once there are `count` (the shim
    reports once a second)."""

    def found() -> list[dict[str, Any]] | None:
        feed = requests.get(emu.url + "/_emu/requests", timeout=10).json()
        mine = [r for r in feed if r["path"].startswith(where)]
        return mine if len(mine) >= count else None

    return wait_for(found, 15, f"{count} records of {where}")


def test_seed_requests_each_have_a_record_with_their_instance(
    docker_client: docker.DockerClient,
) -> None:
    emu = WorkerEmu(SEED).wait_serving()
    try:
        began = time.perf_counter()
        first = emu.get("/health?n=0", timeout=120)
        client_ms = (time.perf_counter() - began) * 1000
        assert first.status_code == 200, first.text
        served = {"/health?n=0": first.headers["x-emu-instance"]}
        for n in range(1, 30):
            r = emu.get(f"/health?n={n}", timeout=120)
            assert r.status_code == 200, r.text
            served[f"/health?n={n}"] = r.headers["x-emu-instance"]
        feed = records(emu, 30, "/health")
        assert len(feed) == 30
        assert {r["path"]: r["instance"] for r in feed} == served
        assert all(r["tied"] and r["status"] == 200 for r in feed)
        assert all(r["containers"][0]["port"] == 8000 for r in feed)
        assert feed[0]["cold"]

        # The library's readiness probes are counted, apart from the 30 requests.
        def counted() -> dict[str, Any] | None:
            found = emu.instances()
            return found if sum(i["requests"] for i in found.values()) == 30 else None

        instances = wait_for(counted, 10, "the 30 requests in /_emu/status")
        assert all(i["probes"] >= 1 for i in instances.values()), instances
        metrics = emu.get("/_emu/metrics").text
        assert "emu_readiness_probes_total{" in metrics
        assert 'emu_cold_start_client_seconds_count{class_name="PythonExecutorContainer"}' in (
            metrics
        )

        # The first request's cold start, as its client waited it, beside the container's own.
        inst = instances[served["/health?n=0"]]
        waited = inst["client_cold_start_ms"]
        assert abs(waited - client_ms) <= max(0.2 * client_ms, 100), (waited, client_ms)
        assert inst["cold_start_ms"] < waited
        session = emu.status()["session"]
    finally:
        emu.stop()
    assert containers(docker_client, session=session) == []


def test_a_request_reaching_two_containers_shows_both(cockpit: WorkerEmu) -> None:
    r = cockpit.get("/two", timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["x-emu-instance"] == "left, right"
    body = r.json()
    # The id that ties them never reaches the user's code or a container, nor does the header.
    assert ID_HEADER not in body["workerSaw"]
    assert ID_HEADER not in body["left"]["headers"] and ID_HEADER not in body["right"]["headers"]
    assert body["stubAnswered"] == [None, None]
    assert ID_HEADER not in body["plainSaw"]["headers"]  # nor a Durable Object of no container
    (record,) = records(cockpit, 1, "/two")
    assert record["instances"] == ["left", "right"]
    assert [(c["instance"], c["path"]) for c in record["containers"]] == [
        ("left", "/two"),
        ("right", "/b"),
    ]


def test_a_container_request_over_rpc_is_recorded_not_tied(cockpit: WorkerEmu) -> None:
    r = cockpit.get("/rpc", timeout=120)
    assert r.status_code == 200 and r.text == "200", r.text
    (alone,) = records(cockpit, 1, "/from-rpc")
    assert alone["tied"] is False and alone["instance"] == "rpc-one" and alone["cold"]
    (worker,) = records(cockpit, 1, "/rpc")
    assert worker["tied"] and worker["containers"] == [] and worker["instance"] is None


def test_a_worker_exception_body_names_the_users_file_and_line(cockpit: WorkerEmu) -> None:
    r = cockpit.get("/boom")
    assert r.status_code == 500 and "boom in the cockpit Worker" in r.text
    assert "src/index.ts:42:" in r.text, r.text  # the user's file and line, not the bundle's
    assert "__emu_worker" not in r.text


def test_a_get_container_project_names_what_it_reached_and_not_get_random(
    cockpit: WorkerEmu,
) -> None:
    assert cockpit.get("/one/solo", timeout=120).status_code == 200
    wait_for(lambda: "solo" in cls(cockpit)["reached"], 10, "solo in the status")
    status = cls(cockpit)
    assert status["instances_n"] is None
    text = subprocess.run(
        [sys.executable, "-m", "emulator", "status", "--url", cockpit.url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "solo" in text.stdout, text.stdout + text.stderr
    everything = cockpit.output + text.stdout + json.dumps(cockpit.status())
    assert "getRandom" not in everything and "spreads requests" not in everything
    assert "instance names" not in cockpit.output


def cls(emu: WorkerEmu) -> dict[str, Any]:
    return dict(emu.status()["classes"][0])
