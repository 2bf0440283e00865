"""Run bench/proxy.py (or bench/worker.py) against two commits in one session, alternating,
and print the ratios.

    python -m bench.compare --base 50320b6            # base vs the working tree, 2 rounds each
    python -m bench.compare --base main~3 --head HEAD --rounds 3 -- --duration 5 --cold-reps 5
    python -m bench.compare --bench worker --base main~3 --head HEAD -- --duration 5 --rounds 1

Each side runs from a `git worktree` of its commit (the working tree itself for `--head .`),
with PYTHONPATH pointing at it, so `python -m emulator up` is that side's code; the installed
dependencies are shared. Each side runs its own copy of the benchmark: the scripts import
emu's modules (EmuProcess, the labels), whose paths change between commits, so one script
cannot drive both. Rounds alternate (base, head, base, head, ...) so that a change in how busy
the machine is lands on both sides. The result is each figure's median over the rounds,
head / base, and head / base of each round.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]

Figures = tuple[tuple[str, tuple[str, ...]], ...]

# (label, path into proxy.py's JSON); higher is better for rps, lower for the rest.
PROXY_FIGURES: Figures = (
    ("req/s, 1 instance", ("emu_1", "wrk", "rps")),
    ("req/s, 4 instances", ("emu_4", "wrk", "rps")),
    ("req/s, logs relayed", ("emu_1_logs", "wrk", "rps")),
    ("p50 ms, 1 instance", ("emu_1", "wrk", "latency_ms", "p50")),
    ("added p50 ms, 1 conn", ("emu_1", "vs_direct", "single_added_p50_ms")),
    ("front CPU us/request", ("emu_1", "front", "cpu_us_per_request")),
    ("front RSS MiB", ("emu_1", "front", "rss_mib_after")),
    ("cold start nginx ms", ("cold_nginx", "median_ms")),
    ("cold start executor ms", ("cold_executor", "median_ms")),
    ("nginx direct req/s", ("direct", "wrk", "rps")),
)

# The same for worker.py (worker mode; its --no-worker run alongside is one figure more).
WORKER_FIGURES: Figures = (
    ("req/s, Worker->DO->nginx", ("worker_container", "rps")),
    ("p50 ms, Worker->DO->nginx", ("worker_container", "latency_ms", "p50")),
    ("p99 ms, Worker->DO->nginx", ("worker_container", "latency_ms", "p99")),
    ("req/s, Worker alone", ("worker_only", "rps")),
    ("req/s, --no-worker beside", ("no_worker", "rps")),
    ("workerd CPU us/request", ("worker_container", "runtime_cpu_us")),
    ("front CPU us/request", ("worker_container", "front_cpu_us")),
    ("cold start ms", ("cold_worker", "median_ms")),
    ("cold start / docker run", ("ratios", "cold_worker_vs_docker_run")),
    ("front RSS MiB", ("memory_mib", "front")),
    ("workerd RSS MiB", ("memory_mib", "workerd")),
    ("node RSS MiB", ("memory_mib", "node")),
)

BENCHES: dict[str, Figures] = {"proxy": PROXY_FIGURES, "worker": WORKER_FIGURES}


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    if rev == ".":
        yield REPO
        return
    with tempfile.TemporaryDirectory(prefix="emu-compare-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(path), rev],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False
            )


def run_side(tree: Path, bench: str, out: Path, extra: tuple[str, ...]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", f"bench.{bench}", "--out", str(out), *extra]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdin=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def dig(data: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def ratio(head: float | None, base: float | None) -> float | None:
    return round(head / base, 3) if base and head is not None else None


def summary(runs: dict[str, list[dict[str, Any]]], figures: Figures) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for label, path in figures:
        row: dict[str, Any] = {}
        for side, datas in runs.items():
            values = [v for v in (dig(d, path) for d in datas) if v is not None]
            row[side] = statistics.median(values) if values else None
        row["head/base"] = ratio(row.get("head"), row.get("base"))
        pairs = zip(runs["head"], runs["base"], strict=True)
        row["rounds"] = [ratio(dig(h, path), dig(b, path)) for h, b in pairs]
        result[label] = row
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--base", required=True, help="The commit to compare against.")
@click.option("--head", default=".", show_default=True, help="The other side ('.': this tree).")
@click.option("--rounds", default=2, show_default=True, help="Runs of each side, alternating.")
@click.option(
    "--bench",
    type=click.Choice(sorted(BENCHES)),
    default="proxy",
    show_default=True,
    help="proxy: bench/proxy.py (--no-worker mode); worker: bench/worker.py (worker mode).",
)
@click.option("--out", default="bench/compare-results.json", show_default=True)
@click.argument("bench_args", nargs=-1)
def main(
    base: str, head: str, rounds: int, bench: str, out: str, bench_args: tuple[str, ...]
) -> None:
    """Compare a benchmark's figures of two commits measured in one run (BENCH_ARGS go to it)."""
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    with (
        checkout(base) as base_tree,
        checkout(head) as head_tree,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for k in range(rounds):
            for side, tree in (("base", base_tree), ("head", head_tree)):
                click.echo(f"compare: round {k + 1}/{rounds}, {side} ({tree})", err=True)
                result = run_side(tree, bench, Path(tmp) / f"{side}-{k}.json", bench_args)
                runs[side].append(result)
    table = summary(runs, BENCHES[bench])
    click.echo(
        f"\n{'':26} {'base':>10} {'head':>10} {'head/base':>10}   per round"
        f"   ({bench}: {base} vs {head})"
    )
    for label, row in table.items():
        cells = [
            f"{row[c]:>10.2f}" if row[c] is not None else f"{'-':>10}"
            for c in ("base", "head", "head/base")
        ]
        each = ", ".join(f"{r:.2f}" if r is not None else "-" for r in row["rounds"])
        click.echo(f"{label:26} {' '.join(cells)}   {each}")
    record = {"bench": bench, "base": base, "head": head, "rounds": rounds, "figures": table}
    Path(out).write_text(json.dumps({**record, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
