"""Many running instances: N `lite` instances of nginx through one emu up, against N bare
`docker run`s of the same image in the same run.

    python -m bench.many [--instances 50] [--per-name 4] [--out bench/many-results.json]

1. baseline: N `docker run -d` (the CLI, as a user types it) at once, with lite's CPU and memory
   limits and emu's labels; the time until every command has returned, and until every container
   answers HTTP on its bridge IP. Then they are removed. Once on the default bridge, once on a
   bridge network of the run's own, as emu's containers are (the engine takes longer to attach
   a container to a user-defined network: 10.9 s against 8.5 s for 50 here).
2. emu: `emu up --no-logs` with max_instances N; a cold burst of N names x `--per-name`
   concurrent requests (x-emu-instance), all sent at once; the time until every one has its 200.
   Then the front's RSS, and `/_emu/status` timed with N instances running. With `--worker`,
   in worker mode: the Worker sends each request to `getContainer(env.WEB, <its name>)`, so
   the burst goes through the Worker, N Durable Objects and the library's starts.

The burst is given as a ratio to the baseline on a network of its own until every container
answers, since emu's cold start includes create, start and readiness; the others are shown too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import click
import docker
import docker.errors

from bench.harness import (
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
    temp_dir,
)
from bench.proxy import NGINX, say, sweep_direct, write_nginx_project
from emulator.config.model import INSTANCE_TYPES
from emulator.runs import labels
from emulator.testing import EmuProcess, wait_for

LITE = INSTANCE_TYPES["lite"]
BURST_TIMEOUT = 180.0  # the whole burst; each start answers in well under a second alone
STATUS_REPS = 20


def docker_runs(client: docker.DockerClient, n: int, network: str | None) -> dict[str, Any]:
    """N parallel `docker run -d`, labelled; timed until all returned and until all answer.
    With `network`, on that bridge network (as emu's containers are), else the default one."""
    sweep_direct(client)
    run_id = uuid.uuid4().hex[:12]
    labelled = {**labels.managed(), labels.BENCH: run_id, labels.BENCH_PID: str(os.getpid())}
    cmd = ["docker", "run", "-d", f"--cpus={LITE.vcpu}", f"--memory={LITE.memory_mib}m"]
    cmd += [f"--memory-swap={LITE.memory_mib}m"]
    if network is not None:
        cmd += [f"--network={network}"]
    for k, v in labelled.items():
        cmd += ["--label", f"{k}={v}"]
    try:
        t0 = time.monotonic()
        procs = [
            subprocess.Popen([*cmd, NGINX], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(n)
        ]
        ids = []
        for proc in procs:
            out, err = proc.communicate(timeout=BURST_TIMEOUT)
            if proc.returncode != 0:
                raise BenchError(f"docker run failed: {err.decode().strip()}")
            ids.append(out.decode().strip())
        returned = time.monotonic() - t0
        nets = [client.api.inspect_container(c)["NetworkSettings"]["Networks"] for c in ids]
        ips = [next(iter(found.values()))["IPAddress"] for found in nets]

        def answers(ip: str) -> None:
            wait_for(lambda: answers_200(f"http://{ip}/", allow={ip}), 60, f"nginx on {ip}")

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            list(pool.map(answers, ips))
        answering = time.monotonic() - t0
    finally:
        remove_bench_containers(client, run_id)
    return {"returned_s": round(returned, 3), "answering_s": round(answering, 3)}


@contextlib.contextmanager
def bench_network(client: docker.DockerClient) -> Iterator[str]:
    """A bridge network of the run's own, labelled, removed at the end."""
    name = f"emu-bench-{uuid.uuid4().hex[:12]}"
    net = client.networks.create(
        name, driver="bridge", labels={**labels.managed(), labels.BENCH: name}
    )
    try:
        yield name
    finally:
        remove_network(net)


def remove_network(net: Any) -> None:
    """Docker 20.10 can still count an endpoint of a container just removed ("has active
    endpoints"): try again for a while, then say what is left and how to clear it."""
    deadline = time.monotonic() + 10
    while True:
        try:
            net.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc) or time.monotonic() > deadline:
                raise BenchError(
                    f"network {net.name} is left: {exc}; if no container is on it, the engine "
                    "keeps a stale endpoint, which a restart of dockerd clears"
                ) from exc
            time.sleep(0.5)  # between tries, until the deadline


def remove_bench_containers(client: docker.DockerClient, run_id: str) -> None:
    found = client.containers.list(
        all=True, filters={"label": f"{labels.BENCH}={run_id}"}, ignore_removed=True
    )
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda c: c.remove(force=True), found))


def write_worker_project(root: Path, max_instances: int) -> Path:
    """Worker mode: one lite class of nginx; the Worker names the instance by the request's
    x-emu-instance header (getContainer), as --no-worker's front does."""
    config = write_nginx_project(root, max_instances=max_instances, instance_type="lite")
    # worker mode validates the image as wrangler does: with its registry
    config.write_text(config.read_text().replace(f'"{NGINX}"', f'"docker.io/library/{NGINX}"'))
    (root / "src" / "index.ts").write_text(
        """import { Container, getContainer } from "@cloudflare/containers";

export class Web extends Container {
  defaultPort = 80;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const name = request.headers.get("x-emu-instance") ?? "default";
    return getContainer(env.WEB, name).fetch(request);
  },
};
"""
    )
    return config


async def burst(url: str, n: int, per_name: int) -> dict[str, Any]:
    """N names x per_name requests, all at once; each one's time to its answer."""
    timeout = aiohttp.ClientTimeout(total=BURST_TIMEOUT)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True), timeout=timeout
    ) as session:

        async def one(name: str) -> tuple[int, float]:
            t = time.monotonic()
            async with session.get(url, headers={"x-emu-instance": name}) as resp:
                await resp.read()
                return resp.status, time.monotonic() - t

        t0 = time.monotonic()
        replies = await asyncio.gather(
            *(one(f"burst-{i}") for i in range(n) for _ in range(per_name))
        )
        total = time.monotonic() - t0
    bad = [status for status, _ in replies if status != 200]
    if bad:
        raise BenchError(f"{len(bad)} of {len(replies)} burst requests failed: {bad[:5]}")
    times = sorted(t for _, t in replies)
    return {
        "requests": len(replies),
        "total_s": round(total, 3),
        "p50_s": round(statistics.median(times), 3),
        "max_s": round(times[-1], 3),
    }


def status_times(url: str) -> dict[str, Any]:
    times = [http_request(url + "/_emu/status").seconds * 1000 for _ in range(STATUS_REPS)]
    return {"median_ms": round(statistics.median(times), 2), "max_ms": round(max(times), 2)}


def run(args: dict[str, Any]) -> dict[str, Any]:
    n, per_name = args["instances"], args["per_name"]
    client = docker_client()
    try:
        require_image(client, NGINX)
        results: dict[str, Any] = {
            "machine": {**machine(), "busy_cpu_before": busy_cpu()},
            "settings": {k: v for k, v in args.items() if k != "out"},
        }
        say(f"baseline: {n} parallel docker run of {NGINX}, default bridge")
        results["docker_run_default"] = docker_runs(client, n, None)
        say(f"baseline: {n} parallel docker run of {NGINX}, a network of its own, as emu's")
        with bench_network(client) as network:
            results["docker_run"] = docker_runs(client, n, network)
    finally:
        client.close()
    with temp_dir("emu-bench-many-") as root:
        if args["worker"]:
            config = write_worker_project(root, max_instances=n)
        else:
            config = write_nginx_project(root, max_instances=n, instance_type="lite")
        mode = "worker mode" if args["worker"] else "--no-worker"
        say(f"emu ({mode}): a cold burst of {n} names x {per_name} requests")
        with EmuProcess(config, "--no-logs", worker=args["worker"]) as emu:
            rss_idle = proc_sample(emu.pid).rss_mib
            results["burst"] = asyncio.run(burst(emu.url + "/", n, per_name))
            running = sum(1 for i in emu.instances().values() if i["state"] == "healthy")
            results["status"] = status_times(emu.url)
            after = proc_sample(emu.pid)
            results["front"] = {
                "rss_mib_listening": round(rss_idle, 1),
                "rss_mib_running": round(after.rss_mib, 1),
                "rss_mib_peak": round(after.hwm_kib / 1024, 1),
                "healthy_instances": running,
            }
        results["front_problems"] = list(emu.problems)
    results["machine"]["busy_cpu_after"] = busy_cpu()
    base = results["docker_run"]
    results["ratio_vs_answering"] = round(results["burst"]["total_s"] / base["answering_s"], 2)
    results["ratio_vs_returned"] = round(results["burst"]["total_s"] / base["returned_s"], 2)
    default = results["docker_run_default"]["answering_s"]
    results["ratio_vs_default_bridge"] = round(results["burst"]["total_s"] / default, 2)
    return results


def table(r: dict[str, Any]) -> str:
    s, b, d, f = r["settings"], r["burst"], r["docker_run"], r["front"]
    dd = r["docker_run_default"]
    m = r["machine"]
    mode = "worker mode" if s.get("worker") else "--no-worker"
    lines = [
        f"{s['instances']} lite instances of {NGINX}, {m['cpus']} CPUs",
        f"  {s['instances']} parallel docker run, on a bridge network of their own (as emu's): "
        f"all returned {d['returned_s']:.2f} s, all answering HTTP {d['answering_s']:.2f} s",
        f"  the same on the default bridge: all returned {dd['returned_s']:.2f} s, "
        f"all answering HTTP {dd['answering_s']:.2f} s",
        f"  emu ({mode}) cold burst, {b['requests']} requests ({s['instances']} names x "
        f"{s['per_name']}): all answered {b['total_s']:.2f} s (p50 {b['p50_s']:.2f} s)",
        f"  ratio: {r['ratio_vs_answering']:.2f} x docker run until answering, "
        f"{r['ratio_vs_returned']:.2f} x until returned; "
        f"{r['ratio_vs_default_bridge']:.2f} x on the default bridge until answering",
        f"  front RSS: {f['rss_mib_listening']:.1f} MiB listening, {f['rss_mib_running']:.1f} "
        f"MiB with {f['healthy_instances']} instances running (peak {f['rss_mib_peak']:.1f})",
        f"  /_emu/status with them running: median {r['status']['median_ms']:.1f} ms, "
        f"max {r['status']['max_ms']:.1f} ms",
    ]
    if r["front_problems"]:
        lines += ["", "emu logged problems:", *(f"  {p}" for p in r["front_problems"])]
    lines.append(
        f"\nCPU busy before the run: {m['busy_cpu_before']:.0%}, after: {m['busy_cpu_after']:.0%}"
    )
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--instances", default=50, show_default=True, help="Instances (and docker runs).")
@click.option("--per-name", default=4, show_default=True, help="Concurrent requests per name.")
@click.option("--worker", is_flag=True, help="emu in worker mode (default: --no-worker).")
@out_option("many-results.json")
def main(**args: Any) -> None:
    """Measure N running instances: the cold burst against N docker runs, RSS, /_emu/status."""
    if args["instances"] < 1 or args["per_name"] < 1:
        raise click.UsageError("--instances and --per-name must be positive")
    main_body(run, table, args)


if __name__ == "__main__":
    main()
