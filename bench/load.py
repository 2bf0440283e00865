"""The issue's load run: many clients against a seed-style project for a minute; errors and memory.

    python -m bench.load [--duration 60] [--clients 50] [--instances 10] [--no-worker]

`emu up` runs as a child process on a project like the seed's (the executor image, N instance
names, max_instances N, standard-2), in worker mode (the Worker's getRandom picks the instance)
or with `--no-worker` (emu's front does). All instances are started and a short burst of load is
sent first; then wrk keeps `--clients` connections busy for `--duration` seconds with GET /health
and, every `--execute-every`-th request, a POST /execute of a one-line program. The RSS of the
front and of the runtime (workerd) is sampled throughout.

Exit status 1 when any request failed (socket error, timeout, non-200, wrong body), emu logged a
problem, the front's RSS grew by more than 20% + 10 MiB from after the warm-up to the end, the
runtime's grew by 10% or more from minute 5 to the end of a run of 10 minutes or more, or emu left
a container behind; 2 when the run could not be made.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import http.client
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import click

from bench.harness import (
    BenchError,
    ProcSample,
    Sampler,
    WrkResult,
    answers_200,
    busy_cpu,
    http_request,
    lua_string,
    machine,
    main_body,
    out_option,
    proc_sample,
    require_wrk,
    run_wrk,
    runtime_pids,
    temp_dir,
    wrk_version,
)
from emulator.testing import EmuProcess, wait_for
from projects import Project

RSS_GROWTH_FACTOR = 1.20  # allowed: 20% ...
RSS_GROWTH_SLACK_MIB = 10.0  # ... plus 10 MiB
RUNTIME_GROWTH_FACTOR = 1.10  # workerd from minute 5 to the end: it must have levelled off
RUNTIME_SETTLED_S = 300.0  # ... checked in runs of twice this or longer
START_TIMEOUT = 180.0  # all instances' cold starts, in parallel on a small machine
CODE = "print(6 * 7)"
HEALTH_BODY = '{"status": "ok"}'
EXECUTE_EXPECT = '"stdout": "42\\n"'  # as it appears in the JSON reply

# Per thread: a request mix, and counters that LUA_REPORT sums over the threads.
LUA_LOAD = """
counters = {}  -- flat: "group:key" -> count
local health, execute
local n = 0

function init(args)
  health = wrk.format("GET", "/health")
  execute = wrk.format("POST", "/execute", { ["Content-Type"] = "application/json" }, BODY)
end

function request()
  n = n + 1
  if EVERY > 0 and n % EVERY == 0 then
    return execute
  end
  return health
end

local function bump(key)
  counters[key] = (counters[key] or 0) + 1
end

function response(status, headers, body)
  bump("status:" .. status)
  bump("instance:" .. (headers["x-emu-instance"] or headers["X-Emu-Instance"] or "none"))
  if body == HEALTH then
    bump("kind:health_ok")
  elseif body:find('"exit_code"', 1, true) then
    if body:find(EXPECT, 1, true) then
      bump("kind:execute_ok")
    else
      bump("kind:execute_wrong")
    end
  else
    bump("kind:other")
  end
end
"""


def lua_script(execute_every: int) -> str:
    body = json.dumps({"code": CODE, "timeout_s": 10})
    return (
        f"EVERY = {execute_every}\n"
        f"BODY = {lua_string(body)}\n"
        f"HEALTH = {lua_string(HEALTH_BODY)}\n"
        f"EXPECT = {lua_string(EXECUTE_EXPECT)}\n" + LUA_LOAD
    )


def start_all(emu: EmuProcess, n: int, worker: bool) -> None:
    """Cold-start every instance name at once, as the first seconds of a real run would."""
    if worker:
        start_all_through_worker(emu, n)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        futures = [
            pool.submit(
                wait_for,
                functools.partial(
                    answers_200, emu.url + "/health", {"X-Emu-Instance": f"instance-{i}"}
                ),
                START_TIMEOUT,
                f"instance-{i} to answer",
                0.2,
            )
            for i in range(n)
        ]
        for f in futures:
            f.result()


def start_all_through_worker(emu: EmuProcess, n: int) -> None:
    """The Worker's getRandom picks the instance: bursts of requests until every name has
    answered (x-emu-instance names it)."""
    seen: set[str] = set()
    url = emu.url + "/health"

    def one(_: int) -> str | None:
        try:
            reply = http_request(url, timeout=START_TIMEOUT)
        except (OSError, http.client.HTTPException):
            return None
        return reply.headers.get("x-emu-instance") if reply.status == 200 else None

    def all_seen() -> bool:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2 * n) as pool:
            seen.update(name for name in pool.map(one, range(4 * n)) if name)
        return len(seen) >= n

    wait_for(all_seen, START_TIMEOUT, f"all {n} instances to answer through the Worker", 0.2)


def failures(result: WrkResult) -> dict[str, int]:
    """Every way a request went wrong, by kind; empty when all were fine."""
    out = {f"socket_{k}": v for k, v in result.errors.items() if k != "status" and v}
    for status, count in result.counters.get("status", {}).items():
        if status != "200":
            out[f"status_{status}"] = int(count)
    kinds = result.counters.get("kind", {})
    for kind in ("execute_wrong", "other"):
        if kinds.get(kind):
            out[kind] = int(kinds[kind])
    answered = sum(int(v) for v in result.counters.get("status", {}).values())
    if answered != result.requests:  # response() saw fewer replies than wrk counted
        out["unaccounted"] = abs(result.requests - answered)
    return out


def sample_json(s: ProcSample) -> dict[str, float]:
    return {"t": round(s.t, 1), "rss_mib": round(s.rss_mib, 1), "cpu_s": round(s.cpu_s, 2)}


def at_minutes(samples: list[ProcSample]) -> dict[str, float]:
    """RSS at minutes 1, 5 and 10 of the run (the sample nearest each), where the run lasted."""
    out = {}
    for minute in (1, 5, 10):
        t = 60.0 * minute
        if samples and samples[-1].t >= t - 5:
            nearest = min(samples, key=lambda s: abs(s.t - t))
            out[str(minute)] = round(nearest.rss_mib, 1)
    return out


def runtime_settled(samples: list[ProcSample], duration: float) -> bool | None:
    """Whether workerd grew by less than 10% from minute 5 to the end; None for a short run."""
    if duration < 2 * RUNTIME_SETTLED_S or not samples:
        return None
    at5 = min(samples, key=lambda s: abs(s.t - RUNTIME_SETTLED_S))
    return samples[-1].rss_kib < at5.rss_kib * RUNTIME_GROWTH_FACTOR


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    n = args["instances"]
    worker = args["worker"]
    results: dict[str, Any] = {
        "machine": {**machine(), "wrk": wrk_version(wrk), "busy_cpu_before": busy_cpu()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in args.items()},
    }
    with temp_dir("emu-bench-load-") as root:
        config = Project(max_instances=n, instances=n, instance_type="standard-2").write(root)
        mode = "worker mode" if worker else "--no-worker"
        say(
            f"emu up ({mode}) on a seed-style project with {n} instance names "
            "(building the image if needed)"
        )
        emu = EmuProcess(config, worker=worker)
        leftovers: list[str] = []
        runtime: Sampler | None = None
        try:
            emu.start()
            at_listen = proc_sample(emu.pid)
            workerd = runtime_pids(emu.pid) if worker else []
            if worker and len(workerd) != 1:
                raise BenchError(f"expected one workerd process under emu, found {workerd}")
            say(f"starting all {n} instances")
            start_all(emu, n, worker)
            at_started = proc_sample(emu.pid)
            script = lua_script(args["execute_every"])
            common = {"connections": args["clients"], "threads": args["threads"], "script": script}
            if args["warmup"] > 0:
                say(f"warm-up: {args['warmup']:g} s of load, not counted")
                warm = run_wrk(wrk, emu.url + "/", duration=args["warmup"], **common)
                results["warmup"] = {"requests": warm.requests, "failures": failures(warm)}
            start = proc_sample(emu.pid)
            say(f"load: {args['clients']} clients for {args['duration']:g} s")
            with contextlib.ExitStack() as sampling:
                sampler = sampling.enter_context(Sampler(emu.pid, args["sample_every"]))
                if workerd:
                    runtime = sampling.enter_context(Sampler(workerd[0], args["sample_every"]))
                result = run_wrk(wrk, emu.url + "/", duration=args["duration"], **common)
            end = proc_sample(emu.pid)
            snapshot = emu.instances()
        finally:
            say("stopping emu (SIGINT) and checking that it removed its containers")
            leftovers = emu.stop()
            if leftovers:
                say(f"emu left these behind (now removed): {', '.join(leftovers)}")
    results["leftovers"] = leftovers
    results["front_exit_code"] = emu.returncode
    problems = list(emu.problems)  # including anything logged while stopping
    results["machine"]["busy_cpu_after"] = busy_cpu()

    counts = {k: int(v) for k, v in result.counters.get("instance", {}).items()}
    spread = list(counts.values()) or [0]
    mean = statistics.fmean(spread)
    rss_limit = start.rss_mib * RSS_GROWTH_FACTOR + RSS_GROWTH_SLACK_MIB
    results.update(
        {
            "wrk": result.as_json(),
            "failures": failures(result),
            "front_problems": problems,
            "per_instance": {
                "emu_requests_incl_warmup": {k: i["requests"] for k, i in snapshot.items()},
                "emu_starts": {k: i["starts"] for k, i in snapshot.items()},
                "responses": dict(sorted(counts.items(), key=lambda kv: _order(kv[0]))),
                "min": min(spread),
                "max": max(spread),
                "stdev_pct": round(statistics.pstdev(spread) / mean * 100, 2) if mean else None,
            },
            "rss_mib": {
                "at_listen": round(at_listen.rss_mib, 1),
                "after_instances_started": round(at_started.rss_mib, 1),
                "start": round(start.rss_mib, 1),
                "end": round(end.rss_mib, 1),
                "peak": round(end.hwm_kib / 1024, 1),
                "limit": round(rss_limit, 1),
                "samples": [sample_json(s) for s in sampler.samples],
            },
            "front_cpu_cores": round((end.cpu_s - start.cpu_s) / result.seconds, 2),
        }
    )
    results["rss_mib"]["at_minutes"] = at_minutes(sampler.samples)
    settled = None
    if runtime is not None and runtime.samples:
        first, last = runtime.samples[0], runtime.samples[-1]
        settled = runtime_settled(runtime.samples, args["duration"])
        results["runtime_rss_mib"] = {
            "start": round(first.rss_mib, 1),
            "end": round(last.rss_mib, 1),
            "peak": round(last.hwm_kib / 1024, 1),
            "at_minutes": at_minutes(runtime.samples),
            "settled": settled,
            "samples": [sample_json(s) for s in runtime.samples],
        }
        results["runtime_cpu_cores"] = round((last.cpu_s - first.cpu_s) / result.seconds, 2)
    results["ok"] = (
        not results["failures"]
        and not problems
        and not leftovers
        and emu.returncode == 0
        and end.rss_mib <= rss_limit
        and settled is not False
    )
    return results


def _order(name: str) -> tuple[int, str]:
    head, _, tail = name.rpartition("-")
    return (int(tail), head) if tail.isdigit() else (1 << 30, name)


def mix_text(every: int) -> str:
    return f"every {every}th request a POST /execute" if every > 0 else "GET /health only"


def report(results: dict[str, Any]) -> str:
    s = results["settings"]
    w = results["wrk"]
    rss = results["rss_mib"]
    per = results["per_instance"]
    kinds = w["counters"].get("kind", {})
    lat = w["latency_ms"]
    mode = "worker mode" if s["worker"] else "--no-worker"
    lines = [
        f"load: {s['clients']} clients, {s['duration']:g} s, {s['instances']} instances "
        f"(executor, standard-2), {mode}, " + mix_text(s["execute_every"]),
        f"  requests      {w['requests']} in {w['seconds']:.1f} s = {w['rps']:.0f} req/s "
        f"(health {kinds.get('health_ok', 0)}, execute {kinds.get('execute_ok', 0)})",
        f"  latency       p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, "
        f"p99 {lat['p99']:.1f} ms, max {lat['max']:.0f} ms",
        f"  errors        {sum(results['failures'].values())}"
        + (f"  {results['failures']}" if results["failures"] else ""),
        f"  front log     {len(results['front_problems'])} problem line(s); exit code "
        f"{results['front_exit_code']}; containers left behind: {len(results['leftovers'])}",
        f"  per instance  min {per['min']}, max {per['max']}, stdev {per['stdev_pct']}% of mean: "
        + ", ".join(f"{k.removeprefix('instance-')}:{v}" for k, v in per["responses"].items()),
        f"  front CPU     {results['front_cpu_cores']:.2f} cores",
        f"  front RSS     at listen {rss['at_listen']} MiB, "
        f"instances up {rss['after_instances_started']} MiB, after warm-up {rss['start']} MiB, "
        f"end {rss['end']} MiB, peak {rss['peak']} MiB (limit {rss['limit']} MiB)",
        "  RSS samples   " + ", ".join(f"{x['t']:.0f}s {x['rss_mib']:.1f}" for x in rss["samples"]),
    ]
    runtime = results.get("runtime_rss_mib")
    if runtime is not None:
        minutes = ", ".join(f"min {k}: {v}" for k, v in runtime["at_minutes"].items())
        settled = {None: "", True: "; levelled off", False: "; STILL GROWING"}[runtime["settled"]]
        lines += [
            f"  runtime CPU   {results['runtime_cpu_cores']:.2f} cores (workerd)",
            f"  runtime RSS   workerd at the start {runtime['start']} MiB, end {runtime['end']} "
            f"MiB, peak {runtime['peak']} MiB" + (f" ({minutes})" if minutes else "") + settled,
            "  its samples   "
            + ", ".join(f"{x['t']:.0f}s {x['rss_mib']:.0f}" for x in runtime["samples"]),
        ]
    lines += [
        f"  machine       CPU busy before the run {results['machine']['busy_cpu_before']:.0%}, "
        f"after {results['machine']['busy_cpu_after']:.0%}",
        f"  result        {'OK' if results['ok'] else 'FAILED'}",
    ]
    return "\n".join(lines)


def say(text: str) -> None:
    click.echo(f"bench: {text}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--duration", default=60.0, show_default=True, help="Seconds of load.")
@click.option("--clients", default=50, show_default=True, help="Concurrent connections.")
@click.option("--instances", default=10, show_default=True, help="Instance names = max_instances.")
@click.option(
    "--worker/--no-worker",
    default=True,
    show_default=True,
    help="Worker mode (the Worker in workerd picks the instance), or emu's own routing.",
)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option(
    "--execute-every",
    default=50,
    show_default=True,
    help="Every Nth request is POST /execute; 0 for GET /health only.",
)
@click.option("--warmup", default=5.0, show_default=True, help="Seconds of load before counting.")
@click.option("--sample-every", default=5.0, show_default=True, help="RSS sample interval, s.")
@out_option("load-results.json")
def main(**args: Any) -> None:
    """Load emu with many clients for a while; fail on any error or on memory growth."""
    if args["duration"] <= 0 or args["clients"] < 1 or args["instances"] < 1:
        raise click.UsageError("--duration, --clients and --instances must be positive")
    results = main_body(run, report, args)
    sys.exit(0 if results["ok"] else 1)


if __name__ == "__main__":
    main()
