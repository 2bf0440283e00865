"""Run bench/proxy.py against two commits in one session, alternating, and print the ratios.

    python -m bench.compare --base 50320b6            # base vs the working tree, 2 rounds each
    python -m bench.compare --base main~3 --head HEAD --rounds 3 -- --duration 5 --cold-reps 5

Each side runs from a `git worktree` of its commit (the working tree itself for `--head .`),
with PYTHONPATH pointing at it, so `python -m emulator up` is that side's code; the installed
dependencies are shared. Rounds alternate (base, head, base, head, ...) so that a change in how
busy the machine is lands on both sides. The result is each figure's median over the rounds, and
head / base.
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

# (label, path into proxy.py's JSON); higher is better for rps, lower for the rest.
FIGURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("req/s, 1 instance", ("emu_1", "wrk", "rps")),
    ("req/s, 4 instances", ("emu_4", "wrk", "rps")),
    ("req/s, logs relayed", ("emu_1_logs", "wrk", "rps")),
    ("p50 ms, 1 instance", ("emu_1", "wrk", "latency_ms", "p50")),
    ("added p50 ms, 1 conn", ("emu_1", "vs_direct", "single_added_p50_ms")),
    ("front RSS MiB", ("emu_1", "front", "rss_mib_after")),
    ("cold start nginx ms", ("cold_nginx", "median_ms")),
    ("cold start executor ms", ("cold_executor", "median_ms")),
    ("nginx direct req/s", ("direct", "wrk", "rps")),
)


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


def run_side(tree: Path, out: Path, extra: tuple[str, ...]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "bench.proxy", "--out", str(out), *extra]
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


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    result: dict[str, dict[str, float | None]] = {}
    for label, path in FIGURES:
        row: dict[str, float | None] = {}
        for side, datas in runs.items():
            values = [v for v in (dig(d, path) for d in datas) if v is not None]
            row[side] = statistics.median(values) if values else None
        base, head = row.get("base"), row.get("head")
        row["head/base"] = round(head / base, 3) if base and head is not None else None
        result[label] = row
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--base", required=True, help="The commit to compare against.")
@click.option("--head", default=".", show_default=True, help="The other side ('.': this tree).")
@click.option("--rounds", default=2, show_default=True, help="Runs of each side, alternating.")
@click.option("--out", default="bench/compare-results.json", show_default=True)
@click.argument("proxy_args", nargs=-1)
def main(base: str, head: str, rounds: int, out: str, proxy_args: tuple[str, ...]) -> None:
    """Compare bench/proxy.py figures of two commits measured in one run (PROXY_ARGS go to it)."""
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    with (
        checkout(base) as base_tree,
        checkout(head) as head_tree,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for k in range(rounds):
            for side, tree in (("base", base_tree), ("head", head_tree)):
                click.echo(f"compare: round {k + 1}/{rounds}, {side} ({tree})", err=True)
                runs[side].append(run_side(tree, Path(tmp) / f"{side}-{k}.json", proxy_args))
    table = summary(runs)
    click.echo(f"\n{'':26} {'base':>10} {'head':>10} {'head/base':>10}   ({base} vs {head})")
    for label, row in table.items():
        cells = [f"{row[c]:>10.2f}" if row[c] is not None else f"{'-':>10}" for c in row]
        click.echo(f"{label:26} {' '.join(cells)}")
    Path(out).write_text(json.dumps({"base": base, "head": head, "figures": table}, indent=2))


if __name__ == "__main__":
    main()
