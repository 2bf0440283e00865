"""The figures of one run, from the generator's responses, the status samples and the events:
throughput, latency, the status mix, cold starts, each instance's use of its limits, and how
long instances ran (what the platform bills)."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emulator.instances.errors import NO_INSTANCE, START_FAILED
from emulator.instances.events import CLOSING, EventKind
from emulator.instances.state import HOLDS_SLOT

from .stats import latency_summary

HOLDING = HOLDS_SLOT  # a container that is billed
MIB = 1024 * 1024


@dataclass(frozen=True)
class Window:
    start: float  # wall clock
    end: float

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 1e-9)


def error_kind(status: int, reason: str) -> str:
    if status == 503 and reason.startswith(NO_INSTANCE[:40]):
        return "max_instances"
    if reason.startswith(START_FAILED):
        return "start failed"
    if status == 0:
        return "no answer"
    return f"HTTP {status}"


def traffic(result: Mapping[str, Any]) -> dict[str, Any]:
    """Throughput, latency and the status mix, from the generator's result."""
    wall = max(float(result["wall_s"]), 1e-9)
    statuses: Sequence[int] = result["status"]
    lat: Sequence[float] = result["lat_ms"]
    mix = collections.Counter(str(s) for s in statuses)
    ok = [ms for ms, s in zip(lat, statuses, strict=True) if 200 <= s < 400]
    errors = [
        {"status": s, "reason": text, "count": n, "kind": error_kind(s, text)}
        for s, text, n in result["reasons"]
    ]
    no_capacity = sum(e["count"] for e in errors if e["kind"] == "max_instances")
    total = len(statuses)
    return {
        "requests": total,
        "ok": len(ok),
        "throughput_rps": round(total / wall, 1),
        "ok_rps": round(len(ok) / wall, 1),
        "latency_ms": latency_summary(lat),
        "latency_ok_ms": latency_summary(ok),
        "status": dict(sorted(mix.items())),
        "errors": errors,
        "no_capacity": no_capacity,
        "no_capacity_share": round(no_capacity / total, 4) if total else 0.0,
        "failed_share": round(
            sum(1 for s in statuses if s == 0 or s >= 500) / total if total else 0.0, 4
        ),
    }


def timeline(
    result: Mapping[str, Any], samples: Sequence[Mapping[str, Any]], window: Window
) -> dict[str, Any]:
    """Per second of the run: answers, errors, p50 and p99; and the instances running at
    each status sample."""
    seconds = max(1, math.ceil(float(result["wall_s"])))
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    errors = [0] * seconds
    for done, ms, status in zip(result["done"], result["lat_ms"], result["status"], strict=True):
        k = min(int(done), seconds - 1)
        buckets[k].append(ms)
        if status == 0 or status >= 500:
            errors[k] += 1
    p50, p99 = [], []
    for bucket in buckets:
        summary = latency_summary(bucket)
        p50.append(summary["p50"])
        p99.append(summary["p99"])
    running_t, running = [], []
    for sample in samples:
        running_t.append(round(sample["time"] - window.start, 2))
        running.append(sum(1 for i in _instances(sample["status"]) if i["state"] in HOLDING))
    return {
        "t": list(range(seconds)),
        "rps": [len(b) for b in buckets],
        "errors": errors,
        "p50_ms": p50,
        "p99_ms": p99,
        "instances_t": running_t,
        "instances": running,
    }


def _instances(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{**i, "class": c["class_name"]} for c in status["classes"] for i in c["instances"]]


def lifetimes(
    events: Sequence[Mapping[str, Any]], first: Mapping[str, Any] | None, window: Window
) -> dict[tuple[str, str], float]:
    """Seconds each instance held a container within the window: from its `starting` (or the
    window's start, when it already ran) to its stop (or the window's end)."""
    opened: dict[tuple[str, str], float] = {}
    if first is not None:
        for inst in _instances(first):
            if inst["state"] in HOLDING:
                opened[(inst["class"], inst["name"])] = window.start
    alive: dict[tuple[str, str], float] = collections.defaultdict(float)
    for event in sorted(events, key=lambda e: e["time"]):
        key = (str(event.get("class")), str(event.get("instance")))
        when = min(max(event["time"], window.start), window.end)
        if event["event"] == EventKind.STARTING:
            opened.setdefault(key, when)
        elif event["event"] in CLOSING and key in opened:
            alive[key] += when - opened.pop(key)
    for key, since in opened.items():
        alive[key] += window.end - since
    return dict(alive)


def cold_starts(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The starts during the run, each from `starting` to `healthy`: what the request that
    caused it waited, at least."""
    began: dict[tuple[str, str], float] = {}
    waits: list[float] = []
    for event in sorted(events, key=lambda e: e["time"]):
        key = (str(event.get("class")), str(event.get("instance")))
        if event["event"] == EventKind.STARTING:
            began[key] = event["time"]
        elif event["event"] == EventKind.HEALTHY and key in began:
            waits.append((event["time"] - began.pop(key)) * 1000)
    ordered = sorted(waits)
    return {
        "count": sum(1 for e in events if e["event"] == EventKind.STARTING),
        "median_ms": round(ordered[len(ordered) // 2], 1) if ordered else None,
        "max_ms": round(ordered[-1], 1) if ordered else None,
        "waited_s": round(sum(ordered) / 1000, 3),
    }
