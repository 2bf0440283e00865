"""emu load's pure logic: percentiles, profiles and requests files, open-loop schedules,
settings, the cost arithmetic and the verdict; and the CLI's refusals of bad input (exit 2,
before anything starts)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.cli.commands import main
from emulator.config import Overrides, load_config
from emulator.load import cost, settings
from emulator.load.profile import (
    Profile,
    ProfileError,
    RequestSpec,
    intended_start,
    parse_ramp,
    parse_requests_file,
)
from emulator.load.report import Window, error_kind, lifetimes
from emulator.load.stats import latency_summary, percentile
from emulator.load.verdict import Reading, verdict

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "examples" / "seed" / "wrangler.jsonc"
GET = (RequestSpec("GET", "/"),)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50 and percentile(values, 90) == 90
    assert percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile([7.0], 50) == 7.0 and percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # rank ceil(0.5 * 4) = 2
    assert percentile([1.0, 2.0, 3.0], 90) == 3.0  # rank ceil(2.7) = 3
    with pytest.raises(ValueError):
        percentile(values, 0)
    summary = latency_summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary == {"p50": 3.0, "p90": 5.0, "p99": 5.0, "max": 5.0, "count": 5}


def test_open_loop_schedules_rate_and_ramp() -> None:
    rps = Profile("rps", 2.0, GET, rps=10)
    assert [intended_start(rps, k) for k in (0, 1, 19)] == [0.0, 0.1, 1.9]
    assert intended_start(rps, 20) == math.inf  # the duration's end
    ramp = Profile("ramp", 10.0, GET, ramp=(0.0, 20.0))  # r(t) = 2t: N(t) = t^2
    assert intended_start(ramp, 0) == 0.0
    assert intended_start(ramp, 25) == pytest.approx(5.0)
    assert intended_start(ramp, 100) == math.inf  # N(10) = 100: past the end
    flat = Profile("ramp", 4.0, GET, ramp=(5.0, 5.0))
    assert intended_start(flat, 10) == pytest.approx(2.0)
    assert parse_ramp("10:200") == (10.0, 200.0)
    for bad in ("10", "a:b", "-1:5", "0:0"):
        with pytest.raises(ProfileError):
            parse_ramp(bad)


def test_a_requests_file_is_weighted_lines(tmp_path: Path) -> None:
    path = tmp_path / "mix.txt"
    path.write_text(
        "# the seed's workload\n\n"
        '3 POST /execute {"code": "print(1)", "timeout_s": 5}\n'
        "1 get /health\n"
    )
    post, get = parse_requests_file(path, (("X-Test", "1"),))
    assert (post.weight, post.method, post.path) == (3.0, "POST", "/execute")
    assert post.body == '{"code": "print(1)", "timeout_s": 5}'
    assert (get.method, get.body, get.headers) == ("GET", None, (("X-Test", "1"),))


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("POST /execute", "of the 3 fields"),
        ("x GET /", "weight 'x' is not a number"),
        ("0 GET /", "must be more than 0"),
        ("1 FETCH /", "allowed: GET"),
        ("1 GET health", "must start with /"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "mix.txt"
    path.write_text(f"1 GET /\n# fine\n{line}\n")
    with pytest.raises(ProfileError) as caught:
        parse_requests_file(path, ())
    assert "mix.txt:3: " in str(caught.value) and says in str(caught.value)


def test_settings_parse_into_variants_and_overrides() -> None:
    runs = settings.variants(("env.WORKERS=8",), ("max_instances=5", "max_instances=10"))
    assert [r.label for r in runs] == ["max_instances=5", "max_instances=10"]
    assert runs[0].values == (("env.WORKERS", "8"), ("max_instances", "5"))
    alone = settings.variants((), ("instance_type=standard-3,max_instances=4",))
    assert [r.label for r in alone] == ["as configured", "instance_type=standard-3,max_instances=4"]
    over = settings.overrides(Overrides(port=0), runs[0])
    assert over.max_instances == 5 and over.env_vars == (("WORKERS", "8"),) and over.port == 0
    with pytest.raises(settings.SettingError, match="allowed: max_instances, instance_type"):
        settings.parse("max_instance=5", "--compare")
    with pytest.raises(settings.SettingError, match="write KEY=VALUE"):
        settings.parse("max_instances", "--set")
    with pytest.raises(settings.SettingError, match="getRandom's N is a literal"):
        settings.refuse_in_worker_mode(settings.Variant("x", (("instances", "3"),)))


def test_overrides_reach_the_config() -> None:
    over = Overrides(
        max_instances=4, instance_type="basic", env_vars=(("WORKERS", "8"),), instances=6
    )
    (cls,) = load_config(SEED, over).classes
    assert (cls.max_instances, cls.instance_type.name, cls.instances) == (4, "basic", 6)
    assert cls.env_vars["WORKERS"] == "8" and cls.forced_env == {"WORKERS": "8"}
    assert str(cls.origins["max_instances"]) == "emu load --set"
    with pytest.raises(Exception, match='unknown instance type "huge"'):
        load_config(SEED, Overrides(instance_type="huge"))


def test_cost_applies_the_rates_and_the_allotments() -> None:
    rates = cost.load_rates()
    c = rates["containers"]
    itype = {"T": {"instance_type": {"memory_mib": 4096, "disk_mb": 8000}}}
    inst = [
        {"class": "T", "alive_s": 100.0, "cpu_s": 20.0},
        {"class": "T", "alive_s": 50.0, "cpu_s": 5.0},
    ]
    use = cost.usage(100.0, 1000, inst, itype, rates)
    assert (use.memory_gib_s, use.disk_gb_s, use.vcpu_s) == (600.0, 1200.0, 25.0)
    assert use.do_gb_s == pytest.approx(150 * 0.128)
    run = cost.charges(use, rates, included=False)
    assert run["memory"] == pytest.approx(600 * c["memory_usd_per_gib_s"])
    assert run["cpu"] == pytest.approx(25 * c["vcpu_usd_per_s"])
    assert run["workers_requests"] == pytest.approx(1000 * 0.30 / 1e6)
    est = cost.estimate(use, rates)
    total = sum(run.values())
    assert est["without_allotments"]["per_hour"] == pytest.approx(total * 36)
    assert est["without_allotments"]["per_1000_requests"] == pytest.approx(total)
    # A month at this pace (730 h: 26,280 runs of 100 s); allotments come off each line.
    month = cost.charges(use.scaled(730 * 36), rates, included=True)
    cpu_month = 25 * 730 * 36 - 375 * 60
    assert month["cpu"] == pytest.approx(cpu_month * c["vcpu_usd_per_s"])
    assert est["with_allotments"]["per_hour"] == pytest.approx(sum(month.values()) / 730)
    small = cost.charges(use, rates, included=True)  # within every allotment
    assert sum(small.values()) == 0


def test_a_bad_rates_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rates.json"
    path.write_text('{"read": "today", "containers": {}}')
    with pytest.raises(cost.RatesError, match="not a usable rates file"):
        cost.load_rates(path)


def _reading(**kw: object) -> Reading:
    base: dict[str, object] = dict(
        no_capacity_share=0.0, failed_share=0.0, top_error=None, throttled_share=0.0,
        max_instances="10", vcpu_limits=1.0, host_cores=2, host_busy=0.3,
        generator_busy=0.05, p99_ms=12.0,
    )  # fmt: skip
    base.update(kw)
    return Reading(**base)  # type: ignore[arg-type]


def test_the_verdicts() -> None:
    capacity = verdict(_reading(no_capacity_share=0.18, failed_share=0.18))
    assert capacity["kind"] == "capacity-bound"
    assert capacity["text"].startswith(
        "capacity-bound: 18% of requests got 503 at max_instances 10"
    )
    cpu = verdict(_reading(throttled_share=0.62))
    assert cpu["kind"] == "CPU-bound" and "throttled 62% of the time" in cpu["text"]
    host = verdict(_reading(throttled_share=0.62, vcpu_limits=10, host_busy=0.97))
    assert host["kind"] == "host-bound" and "add up to 10 vCPU on this 2-core" in host["text"]
    assert verdict(_reading(throttled_share=0.62, vcpu_limits=10, host_busy=0.4))["kind"] == (
        "CPU-bound"
    )  # the host had room: the limit, not the machine, held them back
    failing = verdict(_reading(failed_share=0.3, top_error="500 Failed to start container"))
    assert failing["kind"] == "failing" and "500 Failed to start" in failing["text"]
    healthy = verdict(_reading(generator_busy=0.95))
    assert healthy["kind"] == "healthy" and "load generator used 95%" in healthy["notes"]


def test_error_kinds_and_lifetimes() -> None:
    from emulator.instances.errors import NO_INSTANCE

    assert error_kind(503, NO_INSTANCE) == "max_instances"
    assert error_kind(500, "Failed to start container: boom") == "start failed"
    assert error_kind(0, "timeout") == "no answer"
    first = {"classes": [{"class_name": "C", "instances": [{"name": "a", "state": "healthy"}]}]}
    events = [
        {"time": 12.0, "event": "starting", "class": "C", "instance": "b"},
        {"time": 15.0, "event": "stopped", "class": "C", "instance": "b"},
        {"time": 18.0, "event": "starting", "class": "C", "instance": "c"},
    ]
    alive = lifetimes(events, first, Window(10.0, 20.0))
    assert alive == {("C", "a"): 10.0, ("C", "b"): 3.0, ("C", "c"): 2.0}


def test_bad_input_exits_2_before_anything_starts(tmp_path: Path) -> None:
    runner = CliRunner()
    mix = tmp_path / "mix.txt"
    mix.write_text("1 GET /\n2 POST\n")
    bad_line = runner.invoke(main, ["load", "-c", str(SEED), "--requests", str(mix)])
    assert bad_line.exit_code == 2 and "mix.txt:2:" in bad_line.stderr
    unknown = runner.invoke(main, ["load", "-c", str(SEED), "--compare", "workers=8"])
    assert unknown.exit_code == 2
    assert "unknown setting; allowed: max_instances, instance_type, sleep_after" in unknown.stderr
    worker = runner.invoke(main, ["load", "-c", str(SEED), "--worker", "--set", "instances=3"])
    assert worker.exit_code == 2 and "getRandom's N is a literal" in worker.stderr
    config = runner.invoke(main, ["load", "-c", str(SEED), "--set", "instance_type=huge"])
    assert config.exit_code == 2 and 'unknown instance type "huge"' in config.stderr
    url = runner.invoke(main, ["load", "--url", "http://127.0.0.1:9", "--set", "max_instances=2"])
    assert url.exit_code == 2 and "need emu load's own emu" in url.stderr
    both = runner.invoke(main, ["load", "-c", str(SEED), "-n", "3", "--rps", "5"])
    assert both.exit_code == 2 and "give one of" in both.stderr
    for result in (bad_line, unknown, worker, config, url, both):
        assert "Traceback" not in result.output + result.stderr


def _sample(t: float, **instances: dict[str, object]) -> dict[str, object]:
    itype = {"name": "basic", "vcpu": 0.25, "memory_mib": 1024, "disk_mb": 4000}
    rows = [{"name": name, "state": "healthy", **fields} for name, fields in instances.items()]
    cls = {"class_name": "C", "max_instances": 2, "instance_type": itype, "instances": rows}
    return {"time": t, "status": {"classes": [cls]}}


def test_instance_usage_counts_growth_during_the_run() -> None:
    from emulator.load import usage

    def at(cpu: float, periods: int, throttled: int, **more: object) -> dict[str, object]:
        return {"cpu_s": cpu, "cpu_throttled_s": cpu / 2, "cpu_periods": periods,
                "cpu_throttled_periods": throttled, **more}  # fmt: skip

    samples = [
        _sample(0, a={"container_id": "x", "requests": 10, **at(5.0, 100, 10)}),
        _sample(1, a={"container_id": "x", "requests": 30, "inflight": 4,
                      "memory_bytes": 300 << 20, **at(6.0, 120, 25)},
                b={"container_id": "y", "requests": 3, **at(1.0, 20, 15)}),
    ]  # fmt: skip
    rows = usage.instances(samples, [], {("C", "a"): 1.0, ("C", "b"): 0.5})
    a, b = rows
    # a ran before the run: only its growth counts; b started during it: all of it.
    assert (a["requests"], a["cpu_s"], a["throttled_share"]) == (20, 1.0, 0.75)
    assert (a["peak_inflight"], a["memory_peak_mib"], a["memory_peak_share"]) == (4, 300.0, 0.293)
    assert (b["requests"], b["cpu_s"], b["throttled_share"]) == (3, 1.0, 0.75)
    assert usage.throttled_share(samples) == pytest.approx((15 + 15) / (20 + 20))


def test_docker_stats_give_cpu_used_and_periods() -> None:
    from emulator.engine.docker_types import usage_from_stats

    stats = {
        "memory_stats": {"usage": 5000, "stats": {"inactive_file": 1000}},
        "cpu_stats": {
            "cpu_usage": {"total_usage": 2_500_000_000},
            "throttling_data": {"periods": 40, "throttled_periods": 10, "throttled_time": 5e8},
        },
    }
    got = usage_from_stats(stats)
    assert got is not None
    assert (got.memory_bytes, got.cpu_s, got.cpu_throttled_s) == (4000, 2.5, 0.5)
    assert (got.cpu_periods, got.cpu_throttled_periods) == (40, 10)
