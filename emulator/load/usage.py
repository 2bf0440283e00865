"""Each instance's use of its limits during a run, from the status samples: requests, peak in
flight, CPU used and throttled, memory peak against the instance type's, OOM kills."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from emulator.instances.events import EventKind

from .report import MIB

COUNTERS = ("cpu_s", "cpu_throttled_s", "cpu_periods", "cpu_throttled_periods")


def classes(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """class name -> its settings as the status gives them."""
    return {c["class_name"]: c for c in status["classes"]}


def _counters(samples: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, float]]:
    """Per instance, each usage counter's growth during the run, summed over its containers: a
    container absent from the first sample started during the run, its counters from 0."""
    first: dict[str, dict[str, float]] = {}
    last: dict[str, tuple[tuple[str, str], dict[str, float]]] = {}
    for index, sample in enumerate(samples):
        for cls in sample["status"]["classes"]:
            for inst in cls["instances"]:
                cid = inst.get("container_id")
                if not cid or inst.get("cpu_s") is None:
                    continue
                values = {k: float(inst.get(k) or 0) for k in COUNTERS}
                if cid not in first:
                    first[cid] = values if index == 0 else dict.fromkeys(COUNTERS, 0.0)
                last[cid] = ((cls["class_name"], inst["name"]), values)
    grown: dict[tuple[str, str], dict[str, float]] = {}
    for cid, (key, values) in last.items():
        into = grown.setdefault(key, dict.fromkeys(COUNTERS, 0.0))
        for k in COUNTERS:
            into[k] += max(0.0, values[k] - first[cid][k])
    return grown


def instances(
    samples: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    alive: Mapping[tuple[str, str], float],
) -> list[dict[str, Any]]:
    if not samples:
        return []
    settings = classes(samples[-1]["status"])
    grown = _counters(samples)
    base = {(c, i["name"]): i for c, i in _flat(samples[0])}
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for sample in samples:
        for cls_name, inst in _flat(sample):
            key = (cls_name, inst["name"])
            row = seen.setdefault(key, {"peak_inflight": 0, "memory_peak": 0, "last": inst})
            row["peak_inflight"] = max(row["peak_inflight"], int(inst.get("inflight") or 0))
            row["memory_peak"] = max(row["memory_peak"], int(inst.get("memory_bytes") or 0))
            row["last"] = inst
    ooms = _ooms(events)
    out = []
    for key, row in sorted(seen.items()):
        counters = grown.get(key, dict.fromkeys(COUNTERS, 0.0))
        requests = int(row["last"].get("requests") or 0) - int(
            (base.get(key) or {}).get("requests") or 0
        )
        if requests == 0 and key not in alive:
            continue  # neither used nor running: nothing to say
        limit_mib = settings[key[0]]["instance_type"]["memory_mib"]
        periods = counters["cpu_periods"]
        out.append(
            {
                "class": key[0],
                "name": key[1],
                "requests": requests,
                "peak_inflight": row["peak_inflight"],
                "alive_s": round(alive.get(key, 0.0), 3),
                "cpu_s": round(counters["cpu_s"], 3),
                "cpu_throttled_s": round(counters["cpu_throttled_s"], 3),
                "throttled_share": (
                    round(counters["cpu_throttled_periods"] / periods, 4) if periods else 0.0
                ),
                "memory_peak_mib": round(row["memory_peak"] / MIB, 1),
                "memory_limit_mib": limit_mib,
                "memory_peak_share": round(row["memory_peak"] / MIB / limit_mib, 4),
                "ooms": ooms.get(key, 0),
            }
        )
    return out


def throttled_share(samples: Sequence[Mapping[str, Any]]) -> float:
    """Of every CFS period in which an instance ran, the share its CPU limit cut short."""
    grown = _counters(samples).values()
    periods = sum(g["cpu_periods"] for g in grown)
    return sum(g["cpu_throttled_periods"] for g in grown) / periods if periods else 0.0


def _flat(sample: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(c["class_name"], i) for c in sample["status"]["classes"] for i in c["instances"]]


def _ooms(events: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for event in events:
        if event["event"] in (EventKind.EXITED, EventKind.START_FAILED) and event.get("oom_killed"):
            key = (str(event.get("class")), str(event.get("instance")))
            found[key] = found.get(key, 0) + 1
    return found
