"""Worker mode, one commit against another, in the same run: both up at once, wrk in turns.

    python -m bench.ab_worker --base HEAD~1 [--rounds 6] [--duration 5] [--connections 16]

The base runs from a `git worktree` of its commit (made in a temporary folder, removed after),
the head from this working tree; each `emu up` is started with its tree as the current folder
(so `python -m emulator` is that tree's code, shim.js included). Both serve the project of
bench/worker.py (Worker -> Durable Object -> library -> nginx:1.22) at the same time, and wrk
runs on each in turn (base, head, base, head, ...), so that a busy moment of the shared machine
falls on both. Printed: each round's req/s and workerd's CPU per request (from /proc, which a
busy machine sways much less than req/s), and the medians of the rounds' head / base ratios.
"""

from __future__ import annotations

import functools
import os
import statistics
from pathlib import Path
from typing import Any

import click

from bench.compare import checkout
from bench.harness import (
    REPO,
    answers_200,
    busy_cpu,
    machine,
    main_body,
    out_option,
    require_wrk,
    temp_dir,
)
from bench.worker import COLD_TIMEOUT, own_state, write_project, wrk_rps
from emulator.testing import EmuProcess, wait_for


def start_in(tree: Path, config: Path, side: str) -> EmuProcess:
    here = Path.cwd()
    os.chdir(tree)  # `python -m emulator` finds the tree's own package first
    try:
        return EmuProcess(config, "--no-logs", *own_state(config, side), worker=True).start()
    finally:
        os.chdir(here)


def run(args: dict[str, Any]) -> dict[str, Any]:
    wrk = require_wrk()
    results: dict[str, Any] = {
        "machine": {**machine(), "busy_cpu_before": busy_cpu(), "load_before": os.getloadavg()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in args.items()},
    }
    rounds: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    with temp_dir("emu-bench-ab-") as root, checkout(args["base"]) as tree:
        config = write_project(root, max_instances=2)
        base = start_in(tree, config, "base")
        try:
            head = start_in(REPO, config, "head")
            try:
                for emu in (base, head):
                    check = functools.partial(answers_200, emu.url + "/")
                    wait_for(check, COLD_TIMEOUT, "the container")
                for _ in range(args["rounds"]):
                    for key, emu in (("base", base), ("head", head)):
                        rounds[key].append(wrk_rps(wrk, emu.url + "/", args, emu))
            finally:
                head.__exit__(None)
        finally:
            base.__exit__(None)
    results["rounds"] = rounds
    results["machine"]["busy_cpu_after"] = busy_cpu()
    results["machine"]["load_after"] = os.getloadavg()
    for field in ("rps", "runtime_cpu_us"):
        ratios = [h[field] / b[field] for b, h in zip(rounds["base"], rounds["head"], strict=True)]
        results[f"head_vs_base_{field}"] = {
            "median": round(statistics.median(ratios), 3),
            "rounds": [round(r, 3) for r in ratios],
        }
    return results


def table(r: dict[str, Any]) -> str:
    s = r["settings"]
    lines = [
        f"worker mode, {s['base']} (base) against this tree (head): wrk {s['connections']} "
        f"connections, {s['duration']:g} s per run, {s['rounds']} rounds in turns; load average "
        f"{r['machine']['load_before'][0]:.1f} before, {r['machine']['load_after'][0]:.1f} after",
        "",
        f"{'round':>5} {'base req/s':>10} {'head req/s':>10} {'base us':>8} {'head us':>8}",
    ]
    for i, (b, h) in enumerate(zip(r["rounds"]["base"], r["rounds"]["head"], strict=True)):
        lines.append(
            f"{i + 1:>5} {b['rps']:>10} {h['rps']:>10} "
            f"{b['runtime_cpu_us']:>8.1f} {h['runtime_cpu_us']:>8.1f}"
        )
    rps, cpu = r["head_vs_base_rps"], r["head_vs_base_runtime_cpu_us"]
    lines += [
        "",
        f"head / base, req/s: {rps['median']:.3f} (rounds {rps['rounds']})",
        f"head / base, workerd CPU per request: {cpu['median']:.3f} (rounds {cpu['rounds']})",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--base", required=True, help="The commit to compare with (e.g. HEAD~1).")
@click.option("--duration", default=5.0, show_default=True, help="Seconds per wrk run.")
@click.option("--connections", default=16, show_default=True)
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option("--rounds", default=6, show_default=True, help="wrk runs per side, in turns.")
@out_option("ab-results.json")
def main(**args: Any) -> None:
    """Worker mode: this tree against --base, in turns."""
    main_body(run, table, args)


if __name__ == "__main__":
    main()
