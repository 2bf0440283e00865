"""Worker mode's cold start by instance type, against a bare `docker run` in the same run.

    python -m bench.cold [--reps 8] [--types lite,standard-2]

One `emu up` (worker mode) serves a project with one Container class of nginx:1.22 per instance
type; its Worker sends `/cold/<type>/<n>` to `getContainer(<the type's class>, "<n>")`, a name
that never ran. For each type, in turns, `--reps` times:

- worker mode: the first request to a new name until its 200, as the client waits it (Worker,
  Durable Object, the library's start and readiness wait, emu's container start);
- a bare `docker run -d` of the same image with the type's limits (NanoCpus, memory, no swap),
  on a bridge network of its own (as emu's instances are), from the create call until nginx's
  first 200 on its bridge address, polled every 5 ms.

Printed: each side's median, range and the ratio of the medians, per type (the goal: 1.1x).
"""

from __future__ import annotations

import contextlib
import functools
import os
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
    require_image,
    temp_dir,
)
from bench.worker import COLD_TIMEOUT, NGINX, bench_labels, say, summary
from emulator.config.model import INSTANCE_TYPES
from emulator.runs import labels
from emulator.testing import EmuProcess, wait_for

GOAL = 1.1


def class_name(itype: str) -> str:
    return "Web" + "".join(part.capitalize() for part in itype.split("-"))


def binding(itype: str) -> str:
    return itype.upper().replace("-", "_")


def write_project(root: Path, types: list[str], max_instances: int) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    containers = ",\n    ".join(
        f'{{ "class_name": "{class_name(t)}", "image": "docker.io/library/{NGINX}", '
        f'"max_instances": {max_instances}, "instance_type": "{t}" }}'
        for t in types
    )
    bindings = ", ".join(
        f'{{ "name": "{binding(t)}", "class_name": "{class_name(t)}" }}' for t in types
    )
    classes = ", ".join(f'"{class_name(t)}"' for t in types)
    (root / "wrangler.jsonc").write_text(
        f"""{{
  "name": "bench-cold",
  "main": "src/index.ts",
  "compatibility_date": "2025-10-01",
  "containers": [
    {containers}
  ],
  "durable_objects": {{ "bindings": [{bindings}] }},
  "migrations": [{{ "tag": "v1", "new_sqlite_classes": [{classes}] }}],
}}
"""
    )
    exports = "\n".join(
        f"export class {class_name(t)} extends Container {{\n  defaultPort = 80;\n}}" for t in types
    )
    routes = "\n".join(f'  "{t}": (env) => env.{binding(t)},' for t in types)
    (root / "src" / "index.ts").write_text(
        f"""import {{ Container, getContainer }} from "@cloudflare/containers";

{exports}

const byType: Record<string, (env: any) => any> = {{
{routes}
}};

export default {{
  async fetch(request: Request, env: any): Promise<Response> {{
    // /cold/<type>/<n>: a new name of that type's class; nginx gets "/".
    const [, , type, name] = new URL(request.url).pathname.split("/");
    const ns = byType[type];
    if (ns === undefined || !name) return new Response("no such type\\n", {{ status: 404 }});
    return getContainer(ns(env), name).fetch(new Request(new URL("/", request.url), request));
  }},
}};
"""
    )
    return root / "wrangler.jsonc"


def cold_worker(emu: EmuProcess, itype: str, i: int) -> tuple[float, float | None]:
    """The client's wait, and emu's own part of it (`cold_start_ms` in /_emu/status: from the
    container's create call until its port answers)."""
    reply = http_request(f"{emu.url}/cold/{itype}/n{i}", timeout=COLD_TIMEOUT)
    if reply.status != 200:
        raise BenchError(f"cold start {itype} {i} answered {reply.status}: {reply.body[:200]!r}")
    own = None
    for cls in emu.status()["classes"]:
        if cls["class_name"] == class_name(itype):
            found = [x for x in cls["instances"] if x["name"] == f"n{i}"]
            own = found[0].get("cold_start_ms") if found else None
    return reply.seconds * 1000, own


def cold_docker_run(
    client: docker.DockerClient, run_id: str, itype: str, i: int, network: str
) -> float:
    """`docker run -d` with the type's limits on `network`, until nginx's first 200."""
    t = INSTANCE_TYPES[itype]
    began = time.perf_counter()
    container = client.containers.run(
        NGINX,
        detach=True,
        name=f"emu-bench-cold-{run_id}-{itype}-{i}",
        labels=bench_labels(run_id),
        nano_cpus=round(t.vcpu * 1e9),
        mem_limit=t.memory_mib * MIB,
        memswap_limit=t.memory_mib * MIB,
        network=network,
    )
    try:
        container.reload()
        ip = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        wait_for(
            functools.partial(answers_200, f"http://{ip}/", allow={ip}),
            COLD_TIMEOUT,
            "nginx to answer",
            every=0.005,
        )
        return (time.perf_counter() - began) * 1000
    finally:
        container.remove(force=True)


def run(args: dict[str, Any]) -> dict[str, Any]:
    types = [t.strip() for t in args["types"].split(",") if t.strip()]
    unknown = [t for t in types if t not in INSTANCE_TYPES]
    if unknown:
        raise BenchError(f"--types: unknown {unknown}; allowed: {', '.join(INSTANCE_TYPES)}")
    reps = args["reps"]
    client = docker_client()
    results: dict[str, Any] = {
        "machine": {**machine(), "busy_cpu_before": busy_cpu(), "load_before": os.getloadavg()},
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in args.items() if k != "out"
        },
    }
    run_id = uuid.uuid4().hex[:12]
    worker: dict[str, list[float]] = {t: [] for t in types}
    bare: dict[str, list[float]] = {t: [] for t in types}
    emu_own: dict[str, list[float]] = {t: [] for t in types}
    rest: dict[str, list[float]] = {t: [] for t in types}  # the client's wait minus emu's own
    try:
        require_image(client, NGINX)
        with temp_dir("emu-bench-cold-") as root:
            config = write_project(root, types, max_instances=reps + 1)
            persist = ("--persist-to", str(args["persist_to"])) if args["persist_to"] else ()
            with EmuProcess(config, "--no-logs", *persist, worker=True) as emu:
                network = client.networks.create(
                    f"emu-bench-cold-{run_id}", labels=bench_labels(run_id)
                )
                name = str(network.name)
                try:
                    say(f"cold starts, {', '.join(types)}: worker mode and docker run, in turns")
                    for i in range(reps):
                        for t in types:
                            waited, emu_ms = cold_worker(emu, t, i)
                            worker[t].append(waited)
                            if emu_ms is not None:
                                emu_own[t].append(emu_ms)
                                rest[t].append(waited - emu_ms)
                            bare[t].append(cold_docker_run(client, run_id, t, i, name))
                finally:
                    own: dict[str, str | list[str] | bool] = {"label": f"{labels.BENCH}={run_id}"}
                    for c in client.containers.list(all=True, filters=own):
                        with contextlib.suppress(docker.errors.NotFound):
                            c.remove(force=True)
                    network.remove()
    finally:
        client.close()
    results["machine"]["busy_cpu_after"] = busy_cpu()
    results["machine"]["load_after"] = os.getloadavg()
    for t in types:
        w, b = summary(worker[t]), summary(bare[t])
        results[t] = {
            "worker": w,
            "docker_run_network": b,
            "ratio": round(w["median_ms"] / b["median_ms"], 3),
            "emu_own": summary(emu_own[t]) if emu_own[t] else None,
            "rest": summary(rest[t]) if rest[t] else None,
        }
    return results


def table(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["machine"]
    lines = [
        f"cold start of {NGINX}, median of {s['reps']}, worker mode against a bare docker run "
        f"on a network of its own, in turns; load average {m['load_before'][0]:.1f} before, "
        f"{m['load_after'][0]:.1f} after",
        "",
        f"{'type':12} {'worker ms':>10} {'range':>13} {'docker ms':>10} {'range':>13} "
        f"{'ratio':>6} goal",
    ]
    for t in [t.strip() for t in s["types"].split(",") if t.strip()]:
        w, b = r[t]["worker"], r[t]["docker_run_network"]
        ok = "ok" if r[t]["ratio"] <= GOAL else "over"
        lines.append(
            f"{t:12} {w['median_ms']:>10.0f} {w['min_ms']:>6.0f}-{w['max_ms']:<6.0f} "
            f"{b['median_ms']:>10.0f} {b['min_ms']:>6.0f}-{b['max_ms']:<6.0f} "
            f"{r[t]['ratio']:>6.2f} <= {GOAL} {ok}"
        )
    lines.append("")
    for t in [t.strip() for t in s["types"].split(",") if t.strip()]:
        own = r[t]["emu_own"]
        if own is not None:
            lines.append(
                f"{t}: emu's own container start (create until the port answers), median "
                f"{own['median_ms']:.0f} ms; the rest of the client's wait (Worker, Durable "
                f"Object, library, the first request), median of each start's: "
                f"{r[t]['rest']['median_ms']:.0f} ms"
            )
    return "\n".join(lines)


@click.command()
@click.option("--reps", default=8, show_default=True, help="Cold starts per side and type.")
@click.option("--types", default="lite,standard-2", show_default=True, help="Instance types.")
@click.option(
    "--persist-to",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="emu's --persist-to (the Durable Objects' storage), e.g. a folder on a tmpfs.",
)
@out_option("cold-results.json")
def main(**args: Any) -> None:
    """Worker-mode cold starts by instance type, against a bare docker run."""
    main_body(run, table, args)


if __name__ == "__main__":
    main()
