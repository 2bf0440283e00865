"""emu's front in no-worker mode, default flags, against a minimal aiohttp pass-through proxy.

    python -m bench.front [--rounds 3] [--duration 8] [--connections 32] [--flag=--access-log]

`python -m emulator up --no-worker` with its default flags (container logs relayed, the request
feed, x-emu-instance) on a one-class project (nginx:1.22, instance type standard-3), and the
baseline, bench/passthrough.py: one handler, one ClientSession, the same event loop and server
settings, in a process of its own, forwarding to the same nginx container (its bridge address).
Both run throughout; each round measures both in turn (A B, then B A, ...), so that load that
comes and goes on a shared machine falls on both:

- wrk with --connections (32) for --duration seconds: req/s, and the proxy process's CPU per
  request (from /proc; a busy machine sways it much less than req/s);
- wrk with one connection for --single seconds: p50, and what the hop adds to nginx hit
  directly on its bridge address (measured in the same round).

Printed: each round's figures with the load average at the time, and the medians over rounds
of emu/baseline for req/s and CPU per request, and of emu's added p50 minus the baseline's.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bench.harness import (
    LOOPBACK,
    BenchError,
    answers_200,
    busy_cpu,
    machine,
    main_body,
    out_option,
    proc_sample,
    require_wrk,
    run_wrk,
    temp_dir,
    wrk_version,
)
from bench.proxy import check_clean, warm, write_nginx_project
from emulator.testing import EmuProcess, wait_for

PASSTHROUGH = Path(__file__).resolve().parent / "passthrough.py"
LISTEN_TIMEOUT = 30.0
GOAL_RPS = 1.0  # issue 21: emu at least as fast as the minimal proxy


@contextlib.contextmanager
def baseline(upstream: str, loop: str) -> Iterator[tuple[str, int]]:
    """bench/passthrough.py in a session of its own; yields (url, pid); SIGINT on the way out."""
    proc = subprocess.Popen(
        [sys.executable, str(PASSTHROUGH), upstream, "--loop", loop],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(LISTEN_TIMEOUT):
            raise BenchError(f"the baseline proxy did not listen within {LISTEN_TIMEOUT:g} s")
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise BenchError(f"the baseline proxy did not start: {line!r}")
        url = f"http://{LOOPBACK}:{line.removeprefix('listening on ')}"
        wait_for(lambda: answers_200(url + "/"), LISTEN_TIMEOUT, "the baseline proxy")
        yield url, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def side(wrk: str, url: str, pid: int, args: dict[str, Any]) -> dict[str, Any]:
    """One proxy's turn in a round: warm-up, wrk -c N (req/s, its CPU), then one connection."""
    common = {"connections": args["connections"], "threads": args["threads"]}
    if args["warmup"] > 0:
        run_wrk(wrk, url, duration=args["warmup"], **common)
    load_before = load()
    before = proc_sample(pid)
    many = run_wrk(wrk, url, duration=args["duration"], **common)
    after = proc_sample(pid)
    check_clean(many, url)
    before_one = proc_sample(pid)
    one = run_wrk(wrk, url, duration=args["single"], connections=1, threads=1)
    after_one = proc_sample(pid)
    check_clean(one, url)
    return {
        "rps": round(many.rps, 1),
        "p50_ms": many.latency_ms["p50"],
        "p99_ms": many.latency_ms["p99"],
        "cpu_us_per_request": round((after.cpu_s - before.cpu_s) / max(1, many.requests) * 1e6, 1),
        "cpu_cores": round((after.cpu_s - before.cpu_s) / many.seconds, 2),
        "c1_p50_ms": one.latency_ms["p50"],
        "c1_p99_ms": one.latency_ms["p99"],
        "c1_cpu_us_per_request": round(
            (after_one.cpu_s - before_one.cpu_s) / max(1, one.requests) * 1e6, 1
        ),
        "load": load_before,
    }


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    rounds: list[dict[str, Any]] = []
    results: dict[str, Any] = {
        "machine": {
            **machine(),
            "wrk": wrk_version(wrk),
            "busy_cpu_before": busy_cpu(),
            "load_before": load(),
        },
        "settings": {k: v for k, v in args.items() if k != "out"},
        "rounds": rounds,
    }
    with temp_dir("emu-bench-front-") as root:
        config = write_nginx_project(root, max_instances=1)
        with EmuProcess(config, *args["flag"]) as emu:
            warm(emu, "/", ["instance-0"])
            ip = emu.instances()["instance-0"]["ip"]
            if not ip:
                raise BenchError("emu's instance has no bridge address to forward the baseline to")
            direct = f"http://{ip}/"
            with baseline(f"http://{ip}:80", args["loop"]) as (base_url, base_pid):
                sides = {"emu": (emu.url + "/", emu.pid), "baseline": (base_url + "/", base_pid)}
                for n in range(args["rounds"]):
                    order = ("baseline", "emu") if n % 2 == 0 else ("emu", "baseline")
                    got: dict[str, Any] = {}
                    for name in order:
                        click.echo(f"bench: round {n + 1}: {name} (load {load()})", err=True)
                        got[name] = side(wrk, *sides[name], args)
                    one = run_wrk(
                        wrk, direct, duration=args["single"], connections=1, threads=1, allow={ip}
                    )
                    check_clean(one, direct)
                    got["direct_c1_p50_ms"] = one.latency_ms["p50"]
                    for name in sides:
                        got[name]["c1_added_p50_ms"] = round(
                            got[name]["c1_p50_ms"] - got["direct_c1_p50_ms"], 3
                        )
                    got["ratio_rps"] = round(got["emu"]["rps"] / got["baseline"]["rps"], 3)
                    got["ratio_c1_cpu"] = round(
                        got["emu"]["c1_cpu_us_per_request"]
                        / got["baseline"]["c1_cpu_us_per_request"],
                        3,
                    )
                    got["ratio_cpu"] = round(
                        got["emu"]["cpu_us_per_request"] / got["baseline"]["cpu_us_per_request"], 3
                    )
                    got["c1_p50_diff_ms"] = round(
                        got["emu"]["c1_p50_ms"] - got["baseline"]["c1_p50_ms"], 3
                    )
                    rounds.append(got)
        results["front_problems"] = emu.problems
    results["median"] = {
        key: round(statistics.median(r[key] for r in rounds), 3)
        for key in ("ratio_rps", "ratio_cpu", "ratio_c1_cpu", "c1_p50_diff_ms")
    }
    for name in ("emu", "baseline"):
        results["median"][f"{name}_c1_added_p50_ms"] = round(
            statistics.median(r[name]["c1_added_p50_ms"] for r in rounds), 3
        )
    results["machine"]["busy_cpu_after"] = busy_cpu()
    results["machine"]["load_after"] = load()
    return results


def table(results: dict[str, Any]) -> str:
    s = results["settings"]
    m = results["machine"]
    flags = " ".join(s["flag"]) or "default flags"
    lines = [
        f"no-worker front ({flags}) against a minimal aiohttp pass-through, loop {s['loop']}; "
        f"nginx:1.22 standard-3; wrk {s['connections']} connections {s['duration']:g} s, "
        f"1 connection {s['single']:g} s; {s['rounds']} rounds in turns; {m['cpus']} CPUs",
        "",
        f"{'':14} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'us/req':>7} {'cores':>6} "
        f"{'c1 p50':>7} {'added':>7} {'c1 us':>6} {'load':>6}",
    ]
    for n, r in enumerate(results["rounds"], 1):
        for name in ("baseline", "emu"):
            x = r[name]
            lines.append(
                f"{f'{n} {name}':14} {x['rps']:>8.0f} {x['p50_ms']:>7.2f} {x['p99_ms']:>7.2f} "
                f"{x['cpu_us_per_request']:>7.1f} {x['cpu_cores']:>6.2f} {x['c1_p50_ms']:>7.3f} "
                f"{x['c1_added_p50_ms']:>+7.3f} {x['c1_cpu_us_per_request']:>6.0f} "
                f"{x['load']:>6.2f}"
            )
        lines.append(
            f"{'':14} emu/baseline: req/s {r['ratio_rps']:.3f}, CPU per request "
            f"{r['ratio_cpu']:.3f} (c1 {r['ratio_c1_cpu']:.3f}), c1 p50 "
            f"{r['c1_p50_diff_ms']:+.3f} ms "
            f"(direct c1 p50 {r['direct_c1_p50_ms']:.3f} ms)"
        )
    med = results["median"]
    ok = "ok" if med["ratio_rps"] >= GOAL_RPS else "MISSED"
    ok1 = "ok" if med["c1_p50_diff_ms"] <= 0 else "MISSED"
    lines += [
        "",
        f"median over rounds: emu/baseline req/s {med['ratio_rps']:.3f} (goal >= {GOAL_RPS}: {ok})",
        f"                    emu/baseline CPU per request {med['ratio_cpu']:.3f} "
        f"(at 1 connection {med['ratio_c1_cpu']:.3f})",
        f"                    added p50 at 1 connection: emu {med['emu_c1_added_p50_ms']:+.3f} ms,"
        f" baseline {med['baseline_c1_added_p50_ms']:+.3f} ms; emu - baseline "
        f"{med['c1_p50_diff_ms']:+.3f} ms (goal <= 0: {ok1})",
        f"load average before {m['load_before']}, after {m['load_after']}; CPUs busy before "
        f"{m['busy_cpu_before']:.0%}, after {m['busy_cpu_after']:.0%}",
    ]
    if results.get("front_problems"):
        lines += ["", "emu logged problems:", *(f"  {p}" for p in results["front_problems"])]
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--rounds", default=3, show_default=True, help="Turns of each proxy.")
@click.option("--duration", default=8.0, show_default=True, help="Seconds of the wrk -c run.")
@click.option("--single", default=4.0, show_default=True, help="Seconds of the 1-connection run.")
@click.option("--connections", default=32, show_default=True, help="wrk connections.")
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--warmup", default=1.0, show_default=True, help="Seconds of load before a turn.")
@click.option(
    "--loop",
    type=click.Choice(["asyncio", "uvloop"]),
    default="asyncio",
    show_default=True,
    help="The baseline's event loop: the one emu runs on.",
)
@click.option("--flag", multiple=True, help="A flag for emu up (repeatable): --flag=--no-logs.")
@out_option("front-results.json")
def main(**args: Any) -> None:
    """Measure the no-worker front against a minimal aiohttp pass-through proxy."""
    if args["duration"] <= 0 or args["rounds"] < 1 or args["connections"] < 1:
        raise click.UsageError("--duration, --rounds and --connections must be positive")
    args["flag"] = list(args["flag"])
    main_body(run, table, args)


if __name__ == "__main__":
    main()
