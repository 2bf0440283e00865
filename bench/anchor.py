"""Worker mode against `wrangler dev` 4.45.4 on the same project, in the same run.

    python -m bench.anchor [--rounds 3] [--anchor ../shared/anchors/wrangler/run]

The anchor (`shared/anchors/wrangler/run`) serves its project, a `getRandom(env.PYTHON_EXECUTOR,
1)` Worker in front of an nginx container (`lite`), with `wrangler dev` 4.45.4 and the library
0.3.7, and prints the first request's time (the cold start), then wrk with one thread at 16
connections for 8 s and at 1 connection for 5 s. This script runs `emu up` (worker mode, its
default flags) on a copy of that same project and measures it the same way, with the same wrk
settings, and the two take turns (emu, anchor, then anchor, emu, ...) so that load that comes and
goes falls on both.

Printed: each round's req/s, p50 and cold start, and the medians over the rounds of emu over
`wrangler dev` (req/s) and `wrangler dev` over emu (cold start).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import click

from bench.harness import (
    BenchError,
    busy_cpu,
    http_request,
    machine,
    main_body,
    out_option,
    require_wrk,
    run_wrk,
    temp_dir,
)
from bench.worker import COLD_TIMEOUT, say
from emulator.testing import EmuProcess, free_port

ANCHOR = Path(__file__).resolve().parent.parent.parent / "shared" / "anchors" / "wrangler" / "run"
ANCHOR_TIMEOUT = 600.0  # npm install on the first run, wrangler's start, the image build
THREADS, CONNECTIONS, DURATION = 1, 16, 8.0  # the anchor's own wrk settings
SINGLE = 5.0
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def emu_side(wrk: str, anchor: Path) -> dict[str, Any]:
    """`emu up` on a fresh copy of the anchor's project: cold start, then wrk as the anchor."""
    with temp_dir("emu-bench-anchor-") as root:
        for part in ("src", "container"):
            shutil.copytree(anchor.parent / part, root / part)
        shutil.copy(anchor.parent / "wrangler.jsonc", root / "wrangler.jsonc")
        with EmuProcess(root / "wrangler.jsonc", worker=True) as emu:
            began = time.perf_counter()
            reply = http_request(emu.url + "/", timeout=COLD_TIMEOUT)
            cold_s = time.perf_counter() - began
            if reply.status != 200:
                raise BenchError(f"emu's first request answered {reply.status}")
            busy = run_wrk(
                wrk, emu.url + "/", threads=THREADS, connections=CONNECTIONS, duration=DURATION
            )
            one = run_wrk(wrk, emu.url + "/", threads=1, connections=1, duration=SINGLE)
    return {
        "cold_s": round(cold_s, 3),
        "rps": round(busy.rps, 1),
        "p50_ms": busy.latency_ms.get("p50"),
        "non_2xx": busy.errors.get("status", 0),
        "c1_rps": round(one.rps, 1),
        "c1_p50_ms": one.latency_ms.get("p50"),
    }


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if found is None:
        raise BenchError(f"the anchor printed a latency this script cannot read: {text!r}")
    return float(found[1]) * UNITS_MS[found[2]]


def parse_anchor(out: str) -> dict[str, Any]:
    """The anchor's lines: `cold start: 200 5.3s`, then per wrk run `50% 1.2ms` and
    `Requests/sec: 261.3` (and `99%`, `Non-2xx`)."""
    cold = re.search(r"cold start: (\d+) ([\d.]+)s", out)
    rps = [float(x) for x in re.findall(r"Requests/sec:\s+([\d.]+)", out)]
    p50 = [_ms(x) for x in re.findall(r"^\s*50%\s+(\S+)", out, re.MULTILINE)]
    if cold is None or cold[1] != "200" or len(rps) != 2 or len(p50) != 2:
        raise BenchError(f"the anchor's output is not what this script reads:\n{out[-1500:]}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "cold_s": float(cold[2]),
        "rps": rps[0],
        "p50_ms": round(p50[0], 3),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "c1_rps": rps[1],
        "c1_p50_ms": round(p50[1], 3),
    }


def anchor_side(anchor: Path) -> dict[str, Any]:
    env = {**os.environ, "PORT": str(free_port())}
    try:
        out = subprocess.run(
            ["bash", str(anchor)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=ANCHOR_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"the anchor did not finish within {ANCHOR_TIMEOUT:g} s") from None
    if out.returncode != 0:
        tail = (out.stdout + out.stderr)[-1500:]
        raise BenchError(f"the anchor exited {out.returncode}:\n{tail}")
    return parse_anchor(out.stdout)


def run(args: dict[str, Any]) -> dict[str, Any]:
    anchor: Path = args["anchor"]
    if not anchor.is_file():
        raise BenchError(f"no anchor at {anchor} (--anchor: shared/anchors/wrangler/run)")
    wrk = require_wrk()
    results: dict[str, Any] = {
        "machine": {**machine(), "busy_cpu_before": busy_cpu(), "load_before": os.getloadavg()},
        "settings": {
            "rounds": args["rounds"],
            "anchor": str(anchor),
            "wrk": {"threads": THREADS, "connections": CONNECTIONS, "seconds": DURATION},
            "single": SINGLE,
        },
        "rounds": [],
    }
    for i in range(args["rounds"]):
        order = ("emu", "wrangler") if i % 2 == 0 else ("wrangler", "emu")
        figures: dict[str, Any] = {}
        for side in order:
            say(f"round {i + 1}: {side} (load {os.getloadavg()[0]:.2f})")
            figures[side] = emu_side(wrk, anchor) if side == "emu" else anchor_side(anchor)
            figures[side]["load"] = round(os.getloadavg()[0], 2)
        results["rounds"].append(figures)
    rounds = results["rounds"]
    results["ratios"] = {
        "rps": round(statistics.median(r["emu"]["rps"] / r["wrangler"]["rps"] for r in rounds), 2),
        "c1_rps": round(
            statistics.median(r["emu"]["c1_rps"] / r["wrangler"]["c1_rps"] for r in rounds), 2
        ),
        "cold": round(
            statistics.median(r["wrangler"]["cold_s"] / r["emu"]["cold_s"] for r in rounds), 2
        ),
    }
    results["machine"]["busy_cpu_after"] = busy_cpu()
    results["machine"]["load_after"] = os.getloadavg()
    return results


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "worker mode against wrangler dev 4.45.4 on the anchor's project (getRandom -> nginx, "
        f"lite), in turns; wrk -t1 -c16 -d8s and -c1 -d5s; load average "
        f"{m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after",
        "",
        f"{'':3}{'side':10} {'req/s':>8} {'p50 ms':>8} {'non-2xx':>8} {'c1 req/s':>9} "
        f"{'c1 p50':>8} {'cold s':>7} {'load':>5}",
    ]
    for i, figures in enumerate(r["rounds"], 1):
        for side in ("emu", "wrangler"):
            f = figures[side]
            lines.append(
                f"{i:<3}{side:10} {f['rps']:>8.0f} {f['p50_ms']:>8.2f} {f['non_2xx']:>8} "
                f"{f['c1_rps']:>9.0f} {f['c1_p50_ms']:>8.2f} {f['cold_s']:>7.2f} {f['load']:>5.2f}"
            )
    q = r["ratios"]
    lines += [
        "",
        f"medians over rounds: emu / wrangler dev req/s {q['rps']:.2f} x (one connection "
        f"{q['c1_rps']:.2f} x); cold start: wrangler dev / emu {q['cold']:.2f} x",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--rounds", default=3, show_default=True, help="Rounds; each runs both, in turns.")
@click.option(
    "--anchor",
    type=click.Path(path_type=Path, dir_okay=False),
    default=ANCHOR,
    show_default="../shared/anchors/wrangler/run",
    help="The script that runs wrangler dev 4.45.4 and measures it.",
)
@out_option("anchor-results.json")
def main(**args: Any) -> None:
    """Worker mode against wrangler dev 4.45.4, on the same project, in turns."""
    main_body(run, table, args)


if __name__ == "__main__":
    main()
