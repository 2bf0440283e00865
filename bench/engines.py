"""Cold start and warm requests/s per engine (local, remote, swarm), as ratios to the local
engine in the same run; and the Swarm scheduler's own latency (service created to task
running), measured apart.

    python -m bench.engines [--duration 5] [--reps 3] [--out FILE]

Remote mode is this machine's engine exposed on tcp://127.0.0.1:<port> by socat; Swarm is this
engine made a one-node Swarm (`docker swarm init` here, `docker swarm leave --force` at the end;
only when it was not one already)."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bench.harness import (
    BenchError,
    docker_client,
    main_body,
    out_option,
    require_wrk,
    run_wrk,
    temp_dir,
)
from bench.proxy import NGINX, check_clean, cold_starts, warm, write_nginx_project
from emulator.runs import labels
from emulator.testing import EmuProcess, free_port, wait_for

ENGINES = ("local", "remote", "swarm")
CONNECTIONS = 16


@contextlib.contextmanager
def engine_env(kind: str) -> Iterator[None]:
    """DOCKER_HOST through socat for remote; a Swarm for swarm."""
    if kind == "remote":
        if shutil.which("socat") is None:
            raise BenchError("socat is needed for remote mode (apt-get install socat)")
        port = free_port()
        proc = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                "UNIX-CONNECT:/var/run/docker.sock",
            ]
        )
        os.environ["DOCKER_HOST"] = f"tcp://127.0.0.1:{port}"
        try:
            yield
        finally:
            del os.environ["DOCKER_HOST"]
            proc.terminate()
            proc.wait(10)
    elif kind == "swarm":
        client = docker_client()
        made = client.info()["Swarm"]["LocalNodeState"] != "active"
        if made:
            subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], check=True)
        try:
            yield
        finally:
            if made:
                subprocess.run(["docker", "swarm", "leave", "--force"], check=False)
    else:
        yield


def scheduler_latency(reps: int) -> dict[str, Any]:
    """Service created to its task `running`, with nothing of emu's in between."""
    client = docker_client()
    runs = []
    for i in range(reps):
        began = time.monotonic()
        service = client.services.create(  # type: ignore[no-untyped-call]
            NGINX, name=f"emu-bench-sched-{os.getpid()}-{i}", labels=labels.managed()
        )

        def running(service: Any = service) -> bool:
            return any(t["Status"]["State"] == "running" for t in service.tasks())

        try:
            wait_for(running, 60, "the task to run", every=0.01)
            runs.append(round((time.monotonic() - began) * 1000, 1))
        finally:
            service.remove()
    return {"median_ms": statistics.median(runs), "runs_ms": runs}


def one_engine(kind: str, project: Path, args: dict[str, Any], wrk: str) -> dict[str, Any]:
    with engine_env(kind), EmuProcess(project, "--engine", kind, "--no-logs") as emu:
        cold = cold_starts(emu, "/", args["reps"])
        warm(emu, "/", ["cold-0"])
        url = emu.url + "/"
        run_wrk(wrk, url, duration=1, connections=CONNECTIONS, threads=2)  # warm-up
        result = run_wrk(wrk, url, duration=args["duration"], connections=CONNECTIONS, threads=2)
        check_clean(result, url)
        out: dict[str, Any] = {
            "cold_start_median_ms": cold["median_ms"],
            "cold": cold,
            "req_per_s": round(result.requests / result.seconds),
        }
        if kind == "swarm":
            out["scheduler"] = scheduler_latency(args["reps"])
        return out


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    results: dict[str, Any] = {}
    with temp_dir("emu-bench-engines-") as root:
        project = write_nginx_project(root, max_instances=args["reps"] + 1)
        text = project.read_text().replace('"standard-3"', '"lite"')  # several fit one node
        project.write_text(text)
        for kind in ENGINES:
            click.echo(f"{kind} ...", err=True)
            results[kind] = one_engine(kind, project, args, wrk)
    local = results["local"]
    for kind in ENGINES:
        results[kind]["cold_start_vs_local"] = round(
            results[kind]["cold_start_median_ms"] / local["cold_start_median_ms"], 2
        )
        results[kind]["req_per_s_vs_local"] = round(
            results[kind]["req_per_s"] / local["req_per_s"], 2
        )
    return results


@click.command()
@click.option("--duration", type=float, default=5.0, show_default=True, help="Seconds of load.")
@click.option("--reps", type=int, default=3, show_default=True, help="Cold starts per engine.")
@out_option("engines.json")
def main(**args: Any) -> None:
    """Cold start and warm req/s per engine, as ratios to local in the same run."""
    main_body(run, lambda r: "\n".join(_lines(r)), args)


def _lines(results: dict[str, Any]) -> list[str]:
    lines = ["engine  cold start (median)  x local  req/s  x local"]
    for kind in ENGINES:
        r = results[kind]
        lines.append(
            f"{kind:7} {r['cold_start_median_ms']:>10.0f} ms  {r['cold_start_vs_local']:>9}  "
            f"{r['req_per_s']:>6}  {r['req_per_s_vs_local']}"
        )
    sched = results["swarm"].get("scheduler")
    if sched:
        lines.append(f"Swarm scheduler alone (service created to task running): {sched}")
    return lines


if __name__ == "__main__":
    main()
