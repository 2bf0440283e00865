"""A run's figures read in plain words: what limited it, and what would help."""

from __future__ import annotations

from dataclasses import dataclass

CAPACITY_SHARE = 0.01  # of requests answered 503 for max_instances
THROTTLED_SHARE = 0.2  # of CPU periods cut short by the limit
FAILED_SHARE = 0.01
HOST_BUSY = 0.85  # of the host's CPU
GENERATOR_BUSY = 0.85  # of one core, for the load generator


@dataclass(frozen=True)
class Reading:
    no_capacity_share: float
    failed_share: float  # every 5xx and unanswered request, the 503s of max_instances included
    top_error: str | None  # the commonest failure other than max_instances, as "500 reason"
    throttled_share: float
    max_instances: str  # "10", or "A 10, B 3"
    vcpu_limits: float  # the CPU limits of the instances running at the peak, added up
    host_cores: int
    host_busy: float | None  # the host's CPU use during the run, 0..1
    generator_busy: float  # the load generator's CPU, in cores
    p99_ms: float | None


def verdict(r: Reading) -> dict[str, str]:
    """{"kind": "capacity-bound" | "CPU-bound" | "host-bound" | "failing" | "healthy",
    "text": the sentence, "notes": more, or ""}."""
    oversubscribed = r.vcpu_limits > r.host_cores
    host = (
        f"the instances' CPU limits add up to {r.vcpu_limits:g} vCPU on this {r.host_cores}-core "
        "machine"
    )
    busy = f", which was {r.host_busy:.0%} busy" if r.host_busy is not None else ""
    notes = []
    if r.generator_busy >= GENERATOR_BUSY:
        notes.append(
            f"the load generator used {r.generator_busy:.0%} of a core: it may have been the "
            "limit; ask for fewer requests"
        )
    if oversubscribed and r.no_capacity_share >= CAPACITY_SHARE:
        notes.append(f"{host}: the latencies are this machine's, not the instance type's")
    if r.no_capacity_share >= CAPACITY_SHARE:
        kind = "capacity-bound"
        text = (
            f"capacity-bound: {r.no_capacity_share:.0%} of requests got 503 at max_instances "
            f"{r.max_instances}; more max_instances (or fewer instance names) would help"
        )
    elif r.throttled_share >= THROTTLED_SHARE and oversubscribed and _host_busy(r):
        kind = "host-bound"
        text = (
            f"host-bound: {host}{busy}; the instances were throttled "
            f"{r.throttled_share:.0%} of the time, but the figures say more about this machine "
            "than about the instance type"
        )
    elif r.throttled_share >= THROTTLED_SHARE:
        kind = "CPU-bound"
        text = (
            f"CPU-bound: instances were throttled {r.throttled_share:.0%} of the time; a "
            "larger instance type or more instances would help"
        )
    elif oversubscribed and _host_busy(r):
        kind = "host-bound"
        text = f"host-bound: {host}{busy}; the figures are this machine's"
    elif r.failed_share >= FAILED_SHARE:
        kind = "failing"
        text = f"failing: {r.failed_share:.0%} of requests failed" + (
            f", mostly {r.top_error}" if r.top_error else ""
        )
    else:
        kind = "healthy"
        p99 = f", p99 {r.p99_ms:g} ms" if r.p99_ms is not None else ""
        text = (
            f"healthy: no 503s at max_instances {r.max_instances}, instances throttled "
            f"{r.throttled_share:.0%} of the time{p99}"
        )
        if oversubscribed:
            notes.append(f"{host}: a heavier load would be host-bound here first")
    return {"kind": kind, "text": text, "notes": "; ".join(notes)}


def _host_busy(r: Reading) -> bool:
    return r.host_busy is not None and r.host_busy >= HOST_BUSY
