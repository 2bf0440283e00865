"""emu's proxy overhead and cold starts, as ratios against nginx hit directly in the same run.

    python -m bench.proxy [--duration 10] [--connections 16] [--out bench/results.json]

1. direct: an nginx:1.22 container started here (label emu.managed=true), hit on its bridge IP.
2. emu, 1 instance: the same image as the one Container class of a tiny wrangler project,
   through `python -m emulator up` (a child process, so the client is not inside the front).
3. emu, 4 instances: the same with --instances 4, so getRandom spreads over four containers.
   (1-3 run emu with --no-logs: they measure proxying alone.)
3b. emu, 1 instance, access log on stdout: nginx writes its access log to stdout, as the
   official image does, and emu up runs with --no-logs; the engine stores every line.
3c. the same, logs relayed: emu up relays every line (--logs, its default). 3c against 3b is
   what relaying costs, with the same container writing the same lines. Both emu up run at
   once, and --logs-rounds more runs of each are made in turns; the ratio is their median.
4. cold starts: first request to a stopped instance until its 200, for nginx and the executor.

Both sides get the same CPU and memory limits (instance type standard-3: 2 vCPU, 8 GiB), so
what differs is the front alone. Every wrk run is preceded by a short warm-up that is not counted,
and followed by a run with one connection (no queueing) that shows what one hop through the
front adds to a request's latency.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import docker
import docker.errors
import requests.exceptions

from bench.harness import (
    MIB,
    BenchError,
    WrkResult,
    answers_200,
    busy_cpu,
    cpu_seconds,
    cpu_used,
    docker_client,
    engine_pids,
    http_request,
    machine,
    main_body,
    out_option,
    proc_sample,
    require_image,
    require_wrk,
    run_wrk,
    temp_dir,
    wrk_version,
)
from emulator.runs import labels
from emulator.testing import EmuProcess, wait_for
from projects import Project

NGINX = "nginx:1.22"
INSTANCE_TYPE = "standard-3"  # 2 vCPU, 8192 MiB: the direct container gets the same limits
VCPU = 2.0
MEMORY_MIB = 8192
WRANGLER_DEV_COLD_START_S = 5.3  # measured here, see shared/docs/cloudflare-containers.md
COLD_TIMEOUT = 120.0  # one cold start; the executor's answers in about a second
CASES = {
    "direct": "direct (bridge IP)",
    "emu_1": "emu, 1 instance",
    "emu_4": "emu, 4 instances",
    "emu_1_stdout": "emu, 1, log to stdout",
    "emu_1_logs": "emu, 1, logs relayed",
}
EMU_CASES = ("emu_1", "emu_4", "emu_1_stdout", "emu_1_logs")
BUSY_WARNING = 0.15  # share of all CPUs busy before the run that makes the figures suspect


# The official nginx image sends its access log to stdout; the local stand-in writes a file.
ACCESS_LOG_TO_STDOUT = (
    '  entrypoint = ["sh", "-c", '
    "\"ln -sf /dev/stdout /var/log/nginx/access.log && exec nginx -g 'daemon off;'\"];\n"
)


def write_nginx_project(
    root: Path, max_instances: int, access_log: bool = False, instance_type: str = INSTANCE_TYPE
) -> Path:
    """One Container class serving nginx:1.22 on port 80, getRandom(env.WEB, 1); with
    `access_log`, nginx writes a line to stdout for every request, as the official image does."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(
        f"""{{
  "name": "bench-nginx",
  "main": "src/index.ts",
  "containers": [
    {{
      "class_name": "Web",
      "image": "{NGINX}",
      "max_instances": {max_instances},
      "instance_type": "{instance_type}",
    }},
  ],
  "durable_objects": {{ "bindings": [{{ "name": "WEB", "class_name": "Web" }}] }},
  "migrations": [{{ "tag": "v1", "new_sqlite_classes": ["Web"] }}],
}}
"""
    )
    entrypoint = ACCESS_LOG_TO_STDOUT if access_log else ""
    (root / "src" / "index.ts").write_text(
        """import { Container, getRandom } from "@cloudflare/containers";

export class Web extends Container {
  defaultPort = 80;
"""
        + entrypoint
        + """}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const container = await getRandom(env.WEB, 1);
    return container.fetch(request);
  },
};
"""
    )
    return root / "wrangler.jsonc"


@contextlib.contextmanager
def nginx_direct(client: docker.DockerClient) -> Iterator[str]:
    """An nginx container on the default bridge, labelled before it starts; yields its IP."""
    sweep_direct(client)
    run_id = uuid.uuid4().hex[:12]
    container = client.containers.create(
        NGINX,
        name=f"emu-bench-direct-{run_id}",
        labels={**labels.managed(), labels.BENCH: run_id, labels.BENCH_PID: str(os.getpid())},
        nano_cpus=round(VCPU * 1e9),
        mem_limit=MEMORY_MIB * MIB,
    )
    try:
        container.start()
        container.reload()
        ip = str(container.attrs["NetworkSettings"]["IPAddress"])
        if not ip:
            raise BenchError("the nginx container got no IP address on the default bridge")
        wait_for(lambda: answers_200(f"http://{ip}/", allow={ip}), 30, f"nginx on {ip}")
        yield ip
    finally:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            say(f"could not remove {container.name} ({exc}); the next run removes it")


def sweep_direct(client: docker.DockerClient) -> None:
    """Remove direct containers of earlier runs whose process is gone (a killed run)."""
    for c in client.containers.list(all=True, filters={"label": labels.BENCH}, ignore_removed=True):
        pid = c.labels.get(labels.BENCH_PID, "")
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)


def measure(
    wrk: str,
    url: str,
    args: dict[str, Any],
    pid: int | None = None,
    allow: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A warm-up run, then the measured run; with `pid`, the front's RSS and CPU around it."""
    common = {
        "connections": args["connections"],
        "threads": args["threads"],
        "allow": allow,
    }
    if args["warmup"] > 0:
        run_wrk(wrk, url, duration=args["warmup"], **common)
    before = proc_sample(pid) if pid is not None else None
    engine = engine_pids()
    engine_before = cpu_seconds(engine)
    result = run_wrk(wrk, url, duration=args["duration"], **common)
    out: dict[str, Any] = {"wrk": result.as_json()}
    if engine:
        used = cpu_used(engine_before, cpu_seconds(engine))
        out["engine_cpu_cores"] = round(used / result.seconds, 2)
    if pid is not None and before is not None:
        after = proc_sample(pid)
        out["front"] = {
            "rss_mib_before": round(before.rss_mib, 1),
            "rss_mib_after": round(after.rss_mib, 1),
            "rss_mib_peak": round(after.hwm_kib / 1024, 1),
            "cpu_cores": round((after.cpu_s - before.cpu_s) / result.seconds, 2),
            "cpu_us_per_request": round(
                (after.cpu_s - before.cpu_s) / max(1, result.requests) * 1e6, 1
            ),
        }
    check_clean(result, url)
    # One request at a time: latency without queueing, i.e. what one hop through the front adds.
    single = run_wrk(
        wrk, url, duration=min(5.0, args["duration"]), connections=1, threads=1, allow=allow
    )
    check_clean(single, url)
    out["one_connection"] = single.as_json()
    return out


def logs_rounds(wrk: str, quiet: str, loud: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """--no-logs and --logs measured in turns, so that other load on the machine, which comes
    and goes, weighs on both alike."""
    rounds = []
    for _ in range(args["logs_rounds"]):
        rps = {}
        for key, url in (("no_logs", quiet), ("logs", loud)):
            result = run_wrk(
                wrk,
                url,
                duration=args["duration"] / 2,
                connections=args["connections"],
                threads=args["threads"],
            )
            check_clean(result, url)
            rps[key] = round(result.rps)
        rounds.append({**rps, "ratio": round(rps["logs"] / rps["no_logs"], 3)})
    return rounds


def check_clean(result: WrkResult, url: str) -> None:
    bad = {k: v for k, v in result.errors.items() if v}
    if bad:
        raise BenchError(f"errors hitting {url}: {bad}; the figures would be meaningless")


def cold_starts(emu: EmuProcess, path: str, reps: int) -> dict[str, Any]:
    """First request to a never-started instance name (state `stopped`) until its 200."""
    runs: list[dict[str, Any]] = []
    for i in range(reps):
        name = f"cold-{i}"
        reply = http_request(emu.url + path, headers={"X-Emu-Instance": name}, timeout=COLD_TIMEOUT)
        if reply.status != 200:
            raise BenchError(f"cold start of {name} answered {reply.status}: {reply.body[:200]!r}")
        own = emu.instances()[name].get("cold_start_ms")
        runs.append({"instance": name, "ms": round(reply.seconds * 1000, 1), "emu_ms": own})
    return {
        "median_ms": round(statistics.median([r["ms"] for r in runs]), 1),
        "min_ms": min(r["ms"] for r in runs),
        "max_ms": max(r["ms"] for r in runs),
        "runs": runs,
    }


def warm(emu: EmuProcess, path: str, names: list[str]) -> None:
    for name in names:
        wait_for(
            functools.partial(answers_200, emu.url + path, {"X-Emu-Instance": name}),
            COLD_TIMEOUT,
            f"{name} to answer through emu",
            every=0.2,
        )


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    client = docker_client()
    try:
        require_image(client, NGINX)
        busy = busy_cpu()
        if busy > BUSY_WARNING:
            say(f"warning: {busy:.0%} of the CPUs are busy before the run; figures will be low")
        results: dict[str, Any] = {
            "machine": {**machine(), "wrk": wrk_version(wrk), "busy_cpu_before": busy},
            "settings": {k: v for k, v in args.items() if k != "out"},
        }
        say("direct: nginx on its bridge IP")
        with nginx_direct(client) as ip:
            results["direct"] = measure(wrk, f"http://{ip}/", args, allow=frozenset({ip}))
    finally:
        client.close()

    reps = args["cold_reps"]
    with temp_dir("emu-bench-nginx-") as root:
        config = write_nginx_project(root, max_instances=reps + 4)
        say("emu, 1 instance")
        # --no-logs: nginx logs every request, and relaying those lines is not proxying.
        with EmuProcess(config, "--no-logs") as emu:
            warm(emu, "/", ["instance-0"])
            results["emu_1"] = measure(wrk, emu.url + "/", args, pid=emu.pid)
            say("cold starts: nginx")
            results["cold_nginx"] = cold_starts(emu, "/", reps)
        problems = list(emu.problems)  # read after the exit: stopping may log some too
        say("emu, 4 instances")
        with EmuProcess(config, "--no-logs", "--instances", "4") as emu:
            warm(emu, "/", [f"instance-{i}" for i in range(4)])
            results["emu_4"] = measure(wrk, emu.url + "/", args, pid=emu.pid)
            spread = {n: i["requests"] for n, i in emu.instances().items()}
            results["emu_4"]["requests_per_instance"] = spread
        problems += emu.problems

    with temp_dir("emu-bench-nginx-quiet-") as quiet_root, temp_dir("emu-bench-logs-") as root:
        # Two projects, the same container writing a line per request: one emu up relays the
        # lines, one does not. Both run throughout, and are measured in turns.
        quiet_config = write_nginx_project(quiet_root, max_instances=1, access_log=True)
        config = write_nginx_project(root, max_instances=1, access_log=True)
        say("emu, 1 instance, nginx access log on stdout: --no-logs, then --logs, in turns")
        with EmuProcess(quiet_config, "--no-logs") as quiet, EmuProcess(config, "--logs") as emu:
            warm(quiet, "/", ["instance-0"])
            warm(emu, "/", ["instance-0"])
            results["emu_1_stdout"] = measure(wrk, quiet.url + "/", args, pid=quiet.pid)
            lines = emu.line_count
            results["emu_1_logs"] = measure(wrk, emu.url + "/", args, pid=emu.pid)
            # Lines relayed during the measured runs and the one-connection run after them.
            results["emu_1_logs"]["lines_relayed"] = emu.line_count - lines
            results["logs_rounds"] = logs_rounds(wrk, quiet.url + "/", emu.url + "/", args)
        problems += quiet.problems + emu.problems
        first = results["emu_1_logs"]["wrk"]["rps"] / results["emu_1_stdout"]["wrk"]["rps"]
        results["logs_vs_no_logs_rps"] = round(
            statistics.median([first, *(r["ratio"] for r in results["logs_rounds"])]), 3
        )

    with temp_dir("emu-bench-executor-") as root:
        config = Project(max_instances=max(10, reps), instances=1).write(root)
        say("cold starts: executor (building its image first if needed)")
        with EmuProcess(config, "--no-logs") as emu:
            results["cold_executor"] = cold_starts(emu, "/health", reps)
        problems += emu.problems
    results["front_problems"] = problems
    results["machine"]["busy_cpu_after"] = busy_cpu()
    results["cold_wrangler_dev_nginx_ms"] = WRANGLER_DEV_COLD_START_S * 1000

    for key in EMU_CASES:
        results[key]["vs_direct"] = ratios(results[key], results["direct"])
    return results


def ratios(emu: dict[str, Any], direct: dict[str, Any]) -> dict[str, float]:
    def r(a: float, b: float) -> float:
        return round(a / b, 3) if b else float("nan")

    return {
        "rps": r(emu["wrk"]["rps"], direct["wrk"]["rps"]),
        "p50": r(emu["wrk"]["latency_ms"]["p50"], direct["wrk"]["latency_ms"]["p50"]),
        "p99": r(emu["wrk"]["latency_ms"]["p99"], direct["wrk"]["latency_ms"]["p99"]),
        "single_added_p50_ms": round(
            emu["one_connection"]["latency_ms"]["p50"]
            - direct["one_connection"]["latency_ms"]["p50"],
            3,
        ),
    }


def say(text: str) -> None:
    click.echo(f"bench: {text}", err=True)


def table(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"proxy overhead: {NGINX}, wrk {s['threads']} threads, {s['connections']} connections, "
        f"{s['duration']:g} s per run, {results['machine']['cpus']} CPUs",
        "",
        f"{'':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x rps':>7} {'x p50':>7} "
        f"{'x p99':>7} {'front RSS':>10}  front CPU         engine CPU",
    ]
    for key, label in CASES.items():
        row = results[key]
        w = row["wrk"]
        vs = row.get("vs_direct")
        front = row.get("front")
        lines.append(
            f"{label:22} {w['rps']:>9.0f} {w['latency_ms']['p50']:>8.2f} "
            f"{w['latency_ms']['p99']:>8.2f} "
            + (f"{vs['rps']:>7.2f} {vs['p50']:>7.2f} {vs['p99']:>7.2f} " if vs else f"{'':>24}")
            + (
                f"{front['rss_mib_after']:>6.1f} MiB {front['cpu_cores']:>5.2f} cores "
                f"{front['cpu_us_per_request']:>4.0f} us/req"
                if front
                else ""
            )
            + (f"  {row['engine_cpu_cores']:>4.2f} cores" if "engine_cpu_cores" in row else "")
        )
    rounds = ", ".join(f"{r['ratio']:.2f}" for r in results["logs_rounds"])
    lines.append(
        f"relaying the log (--logs against --no-logs, same container): "
        f"{results['logs_vs_no_logs_rps']:.2f} x req/s (median; runs in turns: {rounds})"
    )
    lines += [
        "",
        "one connection, one request at a time (no queueing): what a hop through the front adds",
        f"{'':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8}",
    ]
    for key, label in CASES.items():
        one = results[key]["one_connection"]
        vs = results[key].get("vs_direct")
        lines.append(
            f"{label:22} {one['rps']:>9.0f} {one['latency_ms']['p50']:>8.3f} "
            f"{one['latency_ms']['p99']:>8.3f} "
            + (f"{vs['single_added_p50_ms']:>+8.3f}" if vs else "")
        )
    lines += [
        "",
        f"cold start: first request to a stopped instance until its 200 "
        f"(median of {s['cold_reps']})",
    ]
    for key, label in (("cold_nginx", NGINX), ("cold_executor", "executor (python)")):
        c = results[key]
        own = statistics.median([r["emu_ms"] or 0.0 for r in c["runs"]])
        lines.append(
            f"  {label:20} {c['median_ms']:>7.0f} ms  "
            f"(min {c['min_ms']:.0f}, max {c['max_ms']:.0f}; "
            f"emu's own start-to-healthy {own:.0f} ms)"
        )
    lines.append(
        f"  {'wrangler dev, nginx':20} {results['cold_wrangler_dev_nginx_ms']:>7.0f} ms  "
        "(measured before, not in this run: its first probe waits out a 5 s timeout)"
    )
    if results.get("front_problems"):
        lines += ["", "emu logged problems:", *(f"  {p}" for p in results["front_problems"])]
    m = results["machine"]
    lines.append(
        f"\nCPU busy before the run: {m['busy_cpu_before']:.0%}, after: {m['busy_cpu_after']:.0%} "
        "(other work on the machine lowers every figure)"
    )
    return "\n".join(line.rstrip() for line in lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--duration", default=10.0, show_default=True, help="Seconds per measured wrk run.")
@click.option("--connections", default=16, show_default=True, help="wrk connections.")
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--warmup", default=2.0, show_default=True, help="Seconds of load before each run.")
@click.option("--cold-reps", default=5, show_default=True, help="Cold starts per image.")
@click.option(
    "--logs-rounds",
    default=3,
    show_default=True,
    help="Extra runs of --no-logs and --logs in turns, half as long.",
)
@out_option("results.json")
def main(**args: Any) -> None:
    """Measure emu's proxy overhead against nginx hit directly, and cold starts."""
    if args["duration"] <= 0 or args["connections"] < 1 or args["cold_reps"] < 1:
        raise click.UsageError("--duration, --connections and --cold-reps must be positive")
    main_body(run, table, args)


if __name__ == "__main__":
    main()
