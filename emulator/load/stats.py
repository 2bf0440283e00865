"""Percentiles of latencies, by the nearest-rank method: p of n sorted values is the value at
rank ceil(p/100 * n), so every reported percentile is a latency a request really had."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50.0, 90.0, 99.0)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """`ordered` sorted ascending; None when empty."""
    if not ordered:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} is not in (0, 100]")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max, in ms, rounded to 0.1 ms."""
    ordered = sorted(values_ms)
    out: dict[str, float | None] = {}
    for p in PERCENTILES:
        value = percentile(ordered, p)
        out[f"p{p:g}"] = None if value is None else round(value, 1)
    out["max"] = round(ordered[-1], 1) if ordered else None
    out["count"] = len(ordered)
    return out
