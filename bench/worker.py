"""Worker mode's throughput, cold start and memory, each against a baseline in the same run.

    python -m bench.worker [--duration 10] [--connections 16] [--cold-reps 8]

1. throughput at 16 connections, nginx:1.22 behind one Container class (instance type standard-3),
   worker mode and --no-worker running side by side and taking turns (--rounds: the best of each,
   and the ratio as the median of each round's worker-mode run over the --no-worker run after it):
   - worker mode, through the Worker and its Durable Object (getRandom(env.WEB, 1)) straight to
     the container;
   - worker mode, a path the Worker answers itself (no Durable Object, no container);
   - `--no-worker`, emu's own front proxying to the same container;
   - worker mode with `--no-request-feed --no-debug-headers`: the shim follows no request (the
     cost of the request feed and x-emu-instance is the first line against this one), and with
     `--no-debug-headers` only (the request feed's own cost, without the header's response copy);
   (against `wrangler dev` itself: bench/anchor.py, which measures it in the same run).
2. cold start in worker mode: first request to a new name (getContainer) until its 200, median of
   --cold-reps; against a bare `docker run` of the same image with the same limits, from the
   create call to its first 200 on the bridge address, once on the default bridge and once on a
   bridge network of its own (as emu's instances are: the engine takes about 60 ms longer to
   start a container on one here); the three take turns.
3. RSS of the front (emu's Python process) and of the runtime (node and workerd), after the runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import click
import docker
import docker.errors

from bench.harness import (
    MIB,
    BenchError,
    answers_200,
    busy_cpu,
    docker_client,
    http_request,
    machine,
    main_body,
    out_option,
    proc_sample,
    require_image,
    require_wrk,
    run_wrk,
    runtime_pids,
    temp_dir,
    wrk_version,
)
from emulator.runs import labels
from emulator.testing import EmuProcess, descendants, wait_for

NGINX = "nginx:1.22"
INSTANCE_TYPE = "standard-3"
VCPU, MEMORY_MIB = 2.0, 8192
COLD_LIMIT = 1.3  # worker-mode cold start within this many bare docker runs
COLD_TIMEOUT = 60.0


def write_project(root: Path, max_instances: int) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.jsonc").write_text(
        f"""{{
  "name": "bench-worker",
  "main": "src/index.ts",
  "compatibility_date": "2025-10-01",
  "containers": [{{ "class_name": "Web", "image": "docker.io/library/{NGINX}",
                    "max_instances": {max_instances}, "instance_type": "{INSTANCE_TYPE}" }}],
  "durable_objects": {{ "bindings": [{{ "name": "WEB", "class_name": "Web" }}] }},
  "migrations": [{{ "tag": "v1", "new_sqlite_classes": ["Web"] }}],
}}
"""
    )
    (root / "src" / "index.ts").write_text(
        """import { Container, getContainer, getRandom } from "@cloudflare/containers";

export class Web extends Container {
  defaultPort = 80;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (path === "/worker-only") return new Response("answered by the Worker\\n");
    if (path.startsWith("/cold/")) {
      // A new name, so a new container; nginx gets "/", which it has.
      return getContainer(env.WEB, path).fetch(new Request(new URL("/", request.url), request));
    }
    return (await getRandom(env.WEB, 1)).fetch(request);
  },
};
"""
    )
    return root / "wrangler.jsonc"


def own_state(config: Path, side: str) -> tuple[str, str]:
    """`--persist-to` a folder of this side's own: emus side by side on one project may not
    share its `.wrangler/state` (one workerd at a time on its SQLite files)."""
    return ("--persist-to", str(config.parent / f"state-{side}"))


def say(text: str) -> None:
    click.echo(f"bench: {text}", err=True)


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += proc_sample(pid).cpu_s
    return total


def wrk_rps(wrk: str, url: str, args: dict[str, Any], emu: EmuProcess) -> dict[str, Any]:
    """req/s and latency; and the CPU that the runtime (workerd) and emu's front spent per
    request, which a busy machine sways much less than it sways req/s."""
    shape = {"connections": args["connections"], "threads": args["threads"]}
    run_wrk(wrk, url, duration=2, **shape)  # warm-up, not counted
    runtime = runtime_pids(emu.pid)
    before = cpu_s(runtime), cpu_s([emu.pid])
    result = run_wrk(wrk, url, duration=args["duration"], **shape)
    after = cpu_s(runtime), cpu_s([emu.pid])
    bad = {k: v for k, v in result.errors.items() if v}
    if bad or result.counters.get("status", {}).keys() - {"200"}:
        raise BenchError(f"errors hitting {url}: {bad} {result.counters}")
    per = 1e6 / max(result.requests, 1)
    return {
        "rps": round(result.rps),
        "latency_ms": result.latency_ms,
        "runtime_cpu_us": round((after[0] - before[0]) * per, 1),
        "front_cpu_us": round((after[1] - before[1]) * per, 1),
    }


def memory(emu_pid: int) -> dict[str, float]:
    """RSS in MiB: the front, and each process of the runtime by its name."""
    out = {"front": round(proc_sample(emu_pid).rss_mib, 1)}
    for pid in descendants(emu_pid):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            name = "reaper" if b"emulator.runs.reaper" in cmd else Path(cmd[0].decode()).name
            out[name] = round(out.get(name, 0.0) + proc_sample(pid).rss_mib, 1)
    out["runtime"] = round(out.get("node", 0.0) + out.get("workerd", 0.0), 1)
    return out


def summary(ms: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "runs_ms": [round(m, 1) for m in ms],
    }


def cold_worker(emu: EmuProcess, i: int) -> float:
    reply = http_request(f"{emu.url}/cold/{i}", timeout=COLD_TIMEOUT)
    if reply.status != 200:
        raise BenchError(f"cold start {i} answered {reply.status}: {reply.body[:200]!r}")
    return reply.seconds * 1000


def bench_labels(run_id: str) -> dict[str, str]:
    return {**labels.managed(), labels.BENCH: run_id, labels.BENCH_PID: str(os.getpid())}


def cold_docker_run(
    client: docker.DockerClient, run_id: str, i: int, network: str | None = None
) -> float:
    """`docker run` of the same image with the same limits, until nginx's first 200; on the
    default bridge, or on `network` (a bridge network of the run's own, as emu's are)."""
    began = time.perf_counter()
    container = client.containers.run(
        NGINX,
        detach=True,
        name=f"emu-bench-cold-{run_id}-{i}{'-net' if network else ''}",
        labels=bench_labels(run_id),
        nano_cpus=round(VCPU * 1e9),
        mem_limit=MEMORY_MIB * MIB,
        network=network,
    )
    try:
        container.reload()
        settings = container.attrs["NetworkSettings"]
        ip = settings["Networks"][network]["IPAddress"] if network else settings["IPAddress"]
        wait_for(
            functools.partial(answers_200, f"http://{ip}/", allow={ip}),
            COLD_TIMEOUT,
            "nginx to answer",
            every=0.005,
        )
        return (time.perf_counter() - began) * 1000
    finally:
        container.remove(force=True)


def cold_starts(emu: EmuProcess, client: docker.DockerClient, reps: int) -> dict[str, Any]:
    """Worker-mode cold starts and bare docker runs (on the default bridge, and on a bridge
    network of their own as emu's instances are), in turns: the engine's speed varies with the
    machine's load, and all sides see the same."""
    worker, bare, bare_net = [], [], []
    run_id = uuid.uuid4().hex[:12]
    own: dict[str, str | list[str] | bool] = {"label": f"{labels.BENCH}={run_id}"}
    network = client.networks.create(f"emu-bench-cold-{run_id}", labels=bench_labels(run_id))
    try:
        for i in range(reps):
            worker.append(cold_worker(emu, i))
            bare.append(cold_docker_run(client, run_id, i))
            bare_net.append(cold_docker_run(client, run_id, i, network=network.name))
    finally:
        for c in client.containers.list(all=True, filters=own):
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        network.remove()
    return {
        "cold_worker": summary(worker),
        "cold_docker_run": summary(bare),
        "cold_docker_run_network": summary(bare_net),
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **max(runs, key=lambda r: r["rps"]),
        "rounds_rps": [r["rps"] for r in runs],
        # CPU per request: the median of the rounds (the best round's req/s is another round's)
        "runtime_cpu_us": statistics.median(r["runtime_cpu_us"] for r in runs),
        "front_cpu_us": statistics.median(r["front_cpu_us"] for r in runs),
    }


def throughput(wrk: str, emus: dict[str, EmuProcess], args: dict[str, Any]) -> dict[str, Any]:
    """The emus run at once and take turns, so that a busy moment of the machine falls on
    every side alike; the best round of each."""
    runs: dict[str, list[dict[str, Any]]] = {
        "worker_container": [],
        "worker_only": [],
        "no_worker": [],
        "worker_no_feed": [],
        "worker_feed_only": [],
    }
    for _ in range(args["rounds"]):
        for key, emu, path in (
            ("worker_container", emus["worker"], "/"),
            ("no_worker", emus["plain"], "/"),
            ("worker_no_feed", emus["quiet"], "/"),
            ("worker_feed_only", emus["feed"], "/"),
            ("worker_only", emus["worker"], "/worker-only"),
        ):
            runs[key].append(wrk_rps(wrk, emu.url + path, args, emu))
    return {key: best(r) for key, r in runs.items()}


def feed_cost(wrk: str, config: Path, args: dict[str, Any]) -> dict[str, Any]:
    """--only-feed: the request feed and x-emu-instance on, the feed alone, and both off, in
    turns over --rounds; the medians of each round's ratios, in req/s and in workerd's CPU per
    request (which a busy machine sways less)."""
    off = ("--no-request-feed", "--no-debug-headers")
    with (
        EmuProcess(config, "--no-logs", *own_state(config, "on"), worker=True) as on,
        EmuProcess(config, "--no-logs", off[1], *own_state(config, "fed"), worker=True) as fed,
        EmuProcess(config, "--no-logs", *off, *own_state(config, "quiet"), worker=True) as quiet,
    ):
        sides = {"worker_container": on, "worker_feed_only": fed, "worker_no_feed": quiet}
        for emu in sides.values():
            wait_for(functools.partial(answers_200, emu.url + "/"), COLD_TIMEOUT, "the container")
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in sides}
        for _ in range(args["rounds"]):
            for key, emu in sides.items():
                runs[key].append(wrk_rps(wrk, emu.url + "/", args, emu))

    def ratios(key: str, field: str) -> list[float]:
        pairs = zip(runs[key], runs["worker_no_feed"], strict=True)
        return [round(a[field] / b[field], 3) for a, b in pairs]

    out: dict[str, Any] = {key: best(r) for key, r in runs.items()}
    out["ratios"] = {
        f"{name}_{field}": {
            "median": statistics.median(ratios(key, field)),
            "rounds": ratios(key, field),
        }
        for name, key in (
            ("on_vs_off", "worker_container"),
            ("feed_only_vs_off", "worker_feed_only"),
        )
        for field in ("rps", "runtime_cpu_us")
    }
    return out


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    client = docker_client()
    reps = args["cold_reps"]
    results: dict[str, Any] = {
        "machine": {**machine(), "wrk": wrk_version(wrk), "busy_cpu_before": busy_cpu()},
        "settings": {k: v for k, v in args.items() if k != "out"},
    }
    try:
        require_image(client, NGINX)
        with temp_dir("emu-bench-worker-") as root:
            config = write_project(root, max_instances=reps + 2)
            if args["only_feed"]:
                say("the request feed: on, alone, off, in turns")
                results.update(feed_cost(wrk, config, args))
                return results
            say("worker mode and --no-worker, side by side: throughput")
            off = ("--no-request-feed", "--no-debug-headers")
            with (
                EmuProcess(config, "--no-logs", *own_state(config, "on"), worker=True) as emu,
                EmuProcess(config, "--no-logs") as plain,
                EmuProcess(
                    config, "--no-logs", *off, *own_state(config, "quiet"), worker=True
                ) as quiet,
                EmuProcess(
                    config, "--no-logs", off[1], *own_state(config, "fed"), worker=True
                ) as fed,
            ):
                emus = {"worker": emu, "plain": plain, "quiet": quiet, "feed": fed}
                for one in emus.values():
                    check = functools.partial(answers_200, one.url + "/")
                    wait_for(check, COLD_TIMEOUT, "the container")
                results.update(throughput(wrk, emus, args))
                results["memory_mib"] = memory(emu.pid)
                results["memory_mib"]["front_no_worker"] = round(proc_sample(plain.pid).rss_mib, 1)
                say("cold starts: worker mode and bare docker run, alternately")
                results.update(cold_starts(emu, client, reps))
    finally:
        client.close()
    results["machine"]["busy_cpu_after"] = busy_cpu()
    # Per round, each worker-mode run against the --no-worker run right after it; the median.
    per_round = [
        w / n
        for w, n in zip(
            results["worker_container"]["rounds_rps"],
            results["no_worker"]["rounds_rps"],
            strict=True,
        )
    ]
    off = results["worker_no_feed"]["rounds_rps"]
    feed = [a / b for a, b in zip(results["worker_container"]["rounds_rps"], off, strict=True)]
    only = [a / b for a, b in zip(results["worker_feed_only"]["rounds_rps"], off, strict=True)]
    results["ratios"] = {
        "feed_on_vs_off_rps": round(statistics.median(feed), 3),
        "feed_on_vs_off_rounds": [round(r, 3) for r in feed],
        "feed_only_vs_off_rps": round(statistics.median(only), 3),
        "feed_only_vs_off_rounds": [round(r, 3) for r in only],
        # The runtime's CPU per request, feed and header on against all off (1.05: 5 % more).
        "feed_cpu_on_vs_off": round(
            results["worker_container"]["runtime_cpu_us"]
            / results["worker_no_feed"]["runtime_cpu_us"],
            3,
        ),
        "feed_only_cpu_vs_off": round(
            results["worker_feed_only"]["runtime_cpu_us"]
            / results["worker_no_feed"]["runtime_cpu_us"],
            3,
        ),
        "worker_vs_no_worker_rps": round(statistics.median(per_round), 3),
        "worker_vs_no_worker_rounds": [round(r, 3) for r in per_round],
        "cold_worker_vs_docker_run": round(
            results["cold_worker"]["median_ms"] / results["cold_docker_run"]["median_ms"], 3
        ),
        "cold_worker_vs_docker_run_network": round(
            results["cold_worker"]["median_ms"] / results["cold_docker_run_network"]["median_ms"],
            3,
        ),
    }
    return results


def feed_table(r: dict[str, Any]) -> str:
    s, q = r["settings"], r["ratios"]
    lines = [
        f"worker mode, the request feed: {NGINX}, wrk {s['connections']} connections, "
        f"{s['duration']:g} s per run, {s['rounds']} rounds in turns",
        "",
        f"{'':40} {'req/s':>8} {'workerd us':>10} {'front us':>9}",
    ]
    for key, label in (
        ("worker_container", "feed and x-emu-instance on"),
        ("worker_feed_only", "feed on, --no-debug-headers"),
        ("worker_no_feed", "--no-request-feed --no-debug-headers"),
    ):
        one = r[key]
        lines.append(
            f"{label:40} {one['rps']:>8} {one['runtime_cpu_us']:>10.1f} {one['front_cpu_us']:>9.1f}"
        )
    lines.append("")
    for name, ratio in q.items():
        rounds = ", ".join(f"{x:.3f}" for x in ratio["rounds"])
        lines.append(f"{name}: {ratio['median']:.3f} (rounds {rounds})")
    return "\n".join(lines)


def table(r: dict[str, Any]) -> str:
    if r["settings"].get("only_feed"):
        return feed_table(r)
    s, q, m = r["settings"], r["ratios"], r["memory_mib"]
    return "\n".join(
        [
            f"worker mode: {NGINX} ({INSTANCE_TYPE}), wrk {s['connections']} connections, "
            f"{s['duration']:g} s per run, {r['machine']['cpus']} CPUs",
            "",
            f"{'':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'workerd us':>10} {'front us':>9}",
            *(
                f"{label:40} {r[key]['rps']:>8} {r[key]['latency_ms']['p50']:>8.2f} "
                f"{r[key]['latency_ms']['p99']:>8.2f} {r[key]['runtime_cpu_us']:>10.1f} "
                f"{r[key]['front_cpu_us']:>9.1f}"
                for key, label in (
                    ("worker_container", "worker mode: Worker -> DO -> container"),
                    ("worker_only", "worker mode: answered by the Worker"),
                    ("no_worker", "--no-worker: emu's front -> container"),
                    ("worker_no_feed", "worker mode, no feed, no debug headers"),
                    ("worker_feed_only", "worker mode, feed, no debug headers"),
                )
            ),
            f"request feed and x-emu-instance on / off: {q['feed_on_vs_off_rps']:.3f} (median "
            f"of the rounds: {', '.join(f'{x:.3f}' for x in q['feed_on_vs_off_rounds'])}); "
            f"the feed alone / off: {q['feed_only_vs_off_rps']:.3f} "
            f"({', '.join(f'{x:.3f}' for x in q['feed_only_vs_off_rounds'])}); workerd CPU per "
            f"request, on / off: {q['feed_cpu_on_vs_off']:.3f}, the feed alone / off: "
            f"{q['feed_only_cpu_vs_off']:.3f}",
            f"worker mode / --no-worker: {q['worker_vs_no_worker_rps']:.2f} (median of the "
            f"rounds: {', '.join(f'{x:.2f}' for x in q['worker_vs_no_worker_rounds'])}); "
            "against wrangler dev: python -m bench.anchor",
            "",
            f"cold start, median of {s['cold_reps']}: worker mode "
            f"{r['cold_worker']['median_ms']:.0f} ms, bare docker run "
            f"{r['cold_docker_run']['median_ms']:.0f} ms: {q['cold_worker_vs_docker_run']:.2f}x "
            f"(limit {COLD_LIMIT}x); bare docker run on a network of its own, as emu's "
            f"instances are: {r['cold_docker_run_network']['median_ms']:.0f} ms: "
            f"{q['cold_worker_vs_docker_run_network']:.2f}x",
            "",
            f"RSS: front {m['front']} MiB (--no-worker: {m['front_no_worker']} MiB), runtime "
            f"{m['runtime']} MiB (node {m.get('node')}, workerd {m.get('workerd')}), "
            f"reaper {m.get('reaper')} MiB",
        ]
    )


@click.command()
@click.option("--duration", default=10.0, show_default=True, help="Seconds per wrk run.")
@click.option("--connections", default=16, show_default=True)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--cold-reps", default=8, show_default=True, help="Cold starts per side.")
@click.option("--rounds", default=2, show_default=True, help="wrk runs per side, taking turns.")
@click.option("--only-feed", is_flag=True, help="Only the request feed's cost: on, alone, off.")
@out_option("worker-results.json")
def main(**args: Any) -> None:
    """Measure worker mode against --no-worker and a bare docker run."""
    main_body(run, table, args)


if __name__ == "__main__":
    main()
