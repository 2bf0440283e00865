"""`emu load` on the real engine: the seed's executor under concurrent POSTs (both modes), a
`--compare` of max_instances 5 against 10, CPU work against its limit, the cost recomputed by
hand, and the HTML report's charts in headless Chromium. Each run lasts a few seconds."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from PIL import Image
from playwright.sync_api import sync_playwright

from emulator.cli.commands import main
from emulator.load.cost import load_rates
from emulator.pytest_plugin import EmuUp
from emulator.testing import wait_for

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "examples" / "seed" / "wrangler.jsonc"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DIAG = "env.EXECUTOR_DIAGNOSTICS=1"  # the executor's /diag/ paths: sleep, cpu
POST = '{"code": "print(sum(range(10000)))", "timeout_s": 10}'


def _drawn(png: bytes) -> float:
    """The share of a chart's pixels that its lines coloured, unlike the axes, grid and text
    (greys)."""
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = zip(*[iter(shot.tobytes())] * 3, strict=True)
    return sum(1 for rgb in pixels if max(rgb) - min(rgb) > 60) / (shot.width * shot.height)


def emu_load(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["load", "-c", str(SEED), "--json", *args])
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)
    runs: list[dict[str, Any]] = json.loads(result.stdout)["runs"]
    return runs


@pytest.mark.parametrize("mode", ["--worker", "--no-worker"])
def test_the_seed_under_concurrent_posts_is_reported(mode: str) -> None:
    (run,) = emu_load(mode, "-n", "20", "-d", "2s", "--path", "/execute", "--body", POST)
    assert run["mode"] == ("worker mode" if mode == "--worker" else "no-worker mode")
    assert run["requests"] >= 20 and run["status"] == {"200": run["requests"]}
    assert run["throughput_rps"] > 0 and run["latency_ok_ms"]["p50"] is not None
    lat = run["latency_ok_ms"]
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    # Fresh emu: the run's first requests started the instances and waited for them.
    assert run["cold_starts"]["count"] >= 1 and run["cold_starts"]["max_ms"] > 0
    assert run["instances"], run
    for inst in run["instances"]:
        assert inst["memory_limit_mib"] == 6144  # standard-2
        assert 0 < inst["memory_peak_mib"] < 6144 and inst["ooms"] == 0
        assert inst["alive_s"] > 0 and inst["cpu_s"] > 0
    assert run["host"]["vcpu_limits"] >= 1 and run["generator"]["cpu_s"] > 0
    assert run["verdict"]["kind"] in ("healthy", "host-bound"), run["verdict"]
    assert run["cost"]["without_allotments"]["per_hour"] > 0


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Any], Path]]:
    """max_instances 5 against 10, open loop, over the seed's 10 names: each request held
    300 ms without CPU. Prewarmed, so the slots are taken before the first request."""
    html = tmp_path_factory.mktemp("load") / "report.html"
    runs = emu_load(
        "--no-worker", "--seed", "7", "--prewarm", "10", "--set", DIAG,
        "--compare", "max_instances=5", "--compare", "max_instances=10",
        "--rps", "30", "-d", "3s", "--path", "/diag/sleep?ms=300", "--html", str(html),
    )  # fmt: skip
    yield runs, html


def test_compare_max_instances_5_and_10_differ_as_the_limits_predict(
    compared: tuple[list[Any], Path],
) -> None:
    five, ten = compared[0]
    assert (five["label"], ten["label"]) == ("max_instances=5", "max_instances=10")
    # getRandom spreads over 10 names; with 5 slots taken, the other 5 names' requests get 503.
    assert 0.3 < five["no_capacity_share"] < 0.7, five["status"]
    assert ten["no_capacity_share"] == 0 and ten["status"] == {"200": ten["requests"]}
    assert {e["kind"] for e in five["errors"]} == {"max_instances"}
    assert five["peak_running"] == 5 and ten["peak_running"] == 10
    # The same planned requests (an open loop): about half of them answered at 5. Counted, not
    # per second: a busy machine stretches a run's duration, and with it its rate.
    assert 0.3 < five["status"]["200"] / ten["status"]["200"] < 0.75, (
        five["status"],
        ten["status"],
    )
    assert five["verdict"]["kind"] == "capacity-bound"
    assert "503 at max_instances 5" in five["verdict"]["text"]
    assert ten["verdict"]["kind"] != "capacity-bound"
    assert ten["instance_seconds"] > 1.5 * five["instance_seconds"]


def test_the_cost_is_recomputed_by_hand_from_instance_seconds_and_rates(
    compared: tuple[list[Any], Path],
) -> None:
    rates = load_rates()
    c, w, d = rates["containers"], rates["workers"], rates["durable_objects"]
    for run in compared[0]:
        seconds = sum(i["alive_s"] for i in run["instances"])
        assert seconds == pytest.approx(run["instance_seconds"], abs=0.01)
        # standard-2: 6 GiB memory, 12 GB disk; CPU as used
        memory = seconds * 6 * c["memory_usd_per_gib_s"]
        disk = seconds * 12 * c["disk_usd_per_gb_s"]
        cpu = sum(i["cpu_s"] for i in run["instances"]) * c["vcpu_usd_per_s"]
        requests = run["requests"] * (w["usd_per_million_requests"] + d["usd_per_million_requests"])
        do = seconds * 0.128 * d["usd_per_million_gb_s"]
        total = memory + disk + cpu + (requests + do) / 1e6
        got = run["cost"]
        assert sum(got["run_usd"].values()) == pytest.approx(total, rel=1e-3)
        per_hour = total * 3600 / run["duration_s"]
        assert got["without_allotments"]["per_hour"] == pytest.approx(per_hour, rel=1e-3)
        assert got["without_allotments"]["per_1000_requests"] == pytest.approx(
            total / run["requests"] * 1000, rel=1e-3
        )
        assert got["rates_read"] == rates["read"]


def test_the_html_report_draws_its_charts_offline(compared: tuple[list[Any], Path]) -> None:
    html = compared[1]
    text = html.read_text()
    assert "<script src=" not in text.split("</head>")[0]  # no CDN: plotly.js is inside
    if not CHROMIUM.exists():
        pytest.fail(f"no {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(html.as_uri())
            for key in ("throughput", "latency", "instances"):
                chart = page.locator(f"#chart-{key}")
                page.wait_for_function(
                    f"document.querySelectorAll('#chart-{key} .trace').length > 0",
                    timeout=20_000,
                )
                assert _drawn(chart.screenshot()) > 0.002, key
        finally:
            browser.close()


@pytest.mark.serial  # throttling needs CPU to spare: beside other tests it saw none (0.0)
def test_cpu_work_against_a_small_limit_is_cpu_bound() -> None:
    (run,) = emu_load(
        "--no-worker", "--prewarm", "2",
        "--set", f"instances=2,max_instances=2,instance_type=basic,{DIAG}",
        "-n", "4", "-d", "2s", "--path", "/diag/cpu?ms=400",
    )  # fmt: skip
    assert run["classes"]["PythonExecutorContainer"]["instance_type"]["name"] == "basic"
    assert run["host"]["vcpu_limits"] == 0.5
    assert run["throttled_share"] > 0.2, run["instances"]
    assert run["verdict"]["kind"] == "CPU-bound", run["verdict"]
    assert "a larger instance type or more instances would help" in run["verdict"]["text"]


def test_compare_in_worker_mode_waits_the_librarys_retries_then_503s() -> None:
    """In worker mode the Worker's own getRandom(env, 10) routes, and the library retries a
    start for 8 s before its 503: the run waits for those answers, within --timeout."""
    five, ten = emu_load(
        "--worker", "--seed", "5", "--set", DIAG,
        "--compare", "max_instances=5", "--compare", "max_instances=10",
        "--rps", "30", "-d", "1s", "--path", "/diag/sleep?ms=100",
    )  # fmt: skip
    # The Worker's getRandom is Math.random, not emu load's --seed: over 30 requests the share
    # that meets the 5 taken slots swings (6 of 30 once in CI). Some, and not most, is the point.
    assert 0.1 <= five["no_capacity_share"] < 0.8, five["status"]
    assert five["verdict"]["kind"] == "capacity-bound" and five["peak_running"] == 5
    assert five["latency_ms"]["max"] > 7000  # the library's retries
    assert ten["no_capacity_share"] == 0 and ten["status"] == {"200": ten["requests"]}


def test_the_dashboard_draws_a_running_load(emu_up: EmuUp) -> None:
    """emu load --url posts its progress to the emu it drives; the dashboard draws it."""
    emu = emu_up(REPO / "examples" / "hello" / "wrangler.jsonc")
    outcome: dict[str, Any] = {}

    def drive() -> None:
        args = ["load", "--url", emu.url, "-n", "2", "-d", "4s", "--path", "/hi", "--json"]
        outcome["result"] = CliRunner().invoke(main, args)

    driving = threading.Thread(target=drive)
    driving.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.goto(emu.url + "/_emu/")
                page.wait_for_function(
                    "document.querySelectorAll('#load-rps .trace').length > 0", timeout=20_000
                )
                assert "running" in page.locator("#load-state").inner_text()
                # A trace with one point draws no line yet: wait for the next ones.
                chart = page.locator("#load-rps")
                wait_for(lambda: _drawn(chart.screenshot()) > 0, 20, "the throughput line")
            finally:
                browser.close()
    finally:
        driving.join(timeout=120)
    assert outcome["result"].exit_code == 0, outcome["result"].output
    (run,) = requests.get(emu.url + "/_emu/load", timeout=10).json()["runs"]
    assert run["done"] and run["points"] and run["run"].startswith("running emu ")
