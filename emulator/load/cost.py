"""The platform's bill for a run, from its own instance lifetimes and CPU use: memory and disk
as provisioned while an instance runs, CPU as used, and a Worker request and a Durable Object
request per request, with each object active while its container runs. The rates are a file
(`rates.json` beside this module, read from Cloudflare's docs on the date it says, or
`emu load --rates FILE`), since rates change."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_RATES = Path(__file__).with_name("rates.json")
SECONDS_PER_HOUR = 3600.0


class RatesError(Exception):
    """A rates file that cannot be used: one line, exit 2."""


def load_rates(path: Path | None = None) -> dict[str, Any]:
    where = path or DEFAULT_RATES
    try:
        rates: dict[str, Any] = json.loads(where.read_text())
        for section, key in (
            ("containers", "memory_usd_per_gib_s"),
            ("containers", "vcpu_usd_per_s"),
            ("containers", "disk_usd_per_gb_s"),
            ("workers", "usd_per_million_requests"),
            ("durable_objects", "usd_per_million_requests"),
        ):
            float(rates[section][key])
        str(rates["read"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RatesError(
            f"{where}: not a usable rates file ({type(exc).__name__}: {exc})"
        ) from None
    return rates


@dataclass(frozen=True)
class Usage:
    """What a run used, in the units the platform bills."""

    seconds: float  # the run's length
    requests: int
    memory_gib_s: float
    disk_gb_s: float
    vcpu_s: float  # CPU used
    do_gb_s: float  # Durable Object duration

    def scaled(self, factor: float) -> Usage:
        return Usage(
            self.seconds * factor,
            round(self.requests * factor),
            self.memory_gib_s * factor,
            self.disk_gb_s * factor,
            self.vcpu_s * factor,
            self.do_gb_s * factor,
        )


def usage(
    seconds: float,
    requests: int,
    instances: Sequence[Mapping[str, Any]],
    classes: Mapping[str, Mapping[str, Any]],
    rates: Mapping[str, Any],
) -> Usage:
    """From each instance's `alive_s` and `cpu_s` and its class's instance type."""
    memory = disk = cpu = alive = 0.0
    for inst in instances:
        itype = classes[inst["class"]]["instance_type"]
        memory += inst["alive_s"] * itype["memory_mib"] / 1024
        disk += inst["alive_s"] * itype["disk_mb"] / 1000
        cpu += inst["cpu_s"]
        alive += inst["alive_s"]
    gb = float(rates["durable_objects"]["gb_per_object"])
    return Usage(seconds, requests, memory, disk, cpu, alive * gb)


def charges(use: Usage, rates: Mapping[str, Any], included: bool) -> dict[str, float]:
    """Dollars per line; with `included`, the plan's monthly allotments taken off first (so
    `use` should be a month's)."""
    c, w, d = rates["containers"], rates["workers"], rates["durable_objects"]
    inc = c.get("included_per_month", {})

    def over(amount: float, allotment: float) -> float:
        return max(0.0, amount - allotment) if included else amount

    million = 1e6
    return {
        "memory": over(use.memory_gib_s, inc.get("memory_gib_h", 0) * SECONDS_PER_HOUR)
        * c["memory_usd_per_gib_s"],
        "cpu": over(use.vcpu_s, inc.get("vcpu_min", 0) * 60) * c["vcpu_usd_per_s"],
        "disk": over(use.disk_gb_s, inc.get("disk_gb_h", 0) * SECONDS_PER_HOUR)
        * c["disk_usd_per_gb_s"],
        "workers_requests": over(use.requests, w.get("included_requests_per_month", 0))
        * w["usd_per_million_requests"]
        / million,
        "do_requests": over(use.requests, d.get("included_requests_per_month", 0))
        * d["usd_per_million_requests"]
        / million,
        "do_duration": over(use.do_gb_s, d.get("included_gb_s_per_month", 0))
        * d.get("usd_per_million_gb_s", 0.0)
        / million,
    }


def estimate(use: Usage, rates: Mapping[str, Any]) -> dict[str, Any]:
    """Per hour and per 1,000 requests: at the run's pace without allotments; and with them,
    for a month (`hours_per_month`) at the run's pace, the allotments taken off."""
    run = charges(use, rates, included=False)
    run_total = sum(run.values())
    hours = float(rates.get("hours_per_month", 730))
    factor = hours * SECONDS_PER_HOUR / use.seconds if use.seconds > 0 else 0.0
    month_use = use.scaled(factor)
    month = charges(month_use, rates, included=True)
    month_total = sum(month.values())

    def per_k(total: float, requests: int) -> float | None:
        return total / requests * 1000 if requests else None

    return {
        "usage": {
            "seconds": round(use.seconds, 3),
            "requests": use.requests,
            "memory_gib_s": round(use.memory_gib_s, 3),
            "disk_gb_s": round(use.disk_gb_s, 3),
            "vcpu_s": round(use.vcpu_s, 3),
            "do_gb_s": round(use.do_gb_s, 3),
        },
        "run_usd": run,
        "without_allotments": {
            "per_hour": run_total * SECONDS_PER_HOUR / use.seconds if use.seconds > 0 else 0.0,
            "per_1000_requests": per_k(run_total, use.requests),
        },
        "with_allotments": {
            "per_month": month_total,
            "per_hour": month_total / hours,
            "per_1000_requests": per_k(month_total, month_use.requests),
            "month_usd": month,
        },
        "plan_usd_per_month": rates.get("plan", {}).get("usd_per_month"),
        "rates_read": rates["read"],
        "rates": {k: rates[k] for k in ("containers", "workers", "durable_objects")},
        "sources": rates.get("sources", []),
    }
