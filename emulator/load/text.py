"""The report as text: one run in full, several side by side with what differs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

Row = tuple[str, Callable[[dict[str, Any]], float | str | None], str]  # name, value, format


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f} ms"


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:,.6f}" if v < 0.01 else f"${v:,.4f}"


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _rate(v: float) -> str:
    return format(Decimal(str(v)), "f")


def _fmt(value: float | str | None, kind: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if kind == "ms":
        return _ms(value)
    if kind == "usd":
        return _usd(value)
    if kind == "share":
        return _share(value)
    if kind == "rps":
        return f"{value:,.1f}/s"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


ROWS: list[Row] = [
    ("requests", lambda r: r["requests"], "n"),
    ("throughput", lambda r: r["throughput_rps"], "rps"),
    ("answered 2xx/3xx", lambda r: r["ok_rps"], "rps"),
    ("latency p50", lambda r: r["latency_ok_ms"]["p50"], "ms"),
    ("latency p90", lambda r: r["latency_ok_ms"]["p90"], "ms"),
    ("latency p99", lambda r: r["latency_ok_ms"]["p99"], "ms"),
    ("latency max", lambda r: r["latency_ok_ms"]["max"], "ms"),
    ("503 max_instances", lambda r: r["no_capacity_share"], "share"),
    ("failed (5xx, none)", lambda r: r["failed_share"], "share"),
    ("cold starts", lambda r: r["cold_starts"]["count"], "n"),
    ("peak running", lambda r: r["peak_running"], "n"),
    ("instance-seconds", lambda r: r["instance_seconds"], "n"),
    ("CPU throttled", lambda r: r["throttled_share"], "share"),
    ("cost/hour", lambda r: r["cost"]["without_allotments"]["per_hour"], "usd"),
    ("cost/1k requests", lambda r: r["cost"]["without_allotments"]["per_1000_requests"], "usd"),
    ("cost/hour, allotments off", lambda r: r["cost"]["with_allotments"]["per_hour"], "usd"),
    ("verdict", lambda r: r["verdict"]["kind"], "s"),
]


def one(r: dict[str, Any]) -> str:
    lat, ok = r["latency_ms"], r["latency_ok_ms"]
    lines = [
        f"== {r['label']} ({r['mode']}): {r['profile']}",
        f"requests     {r['requests']:,} in {r['duration_s']:.1f} s: {r['throughput_rps']:,.1f}/s, "
        f"{r['ok_rps']:,.1f}/s answered 2xx/3xx",
        f"latency      2xx/3xx p50 {_ms(ok['p50'])}, p90 {_ms(ok['p90'])}, p99 {_ms(ok['p99'])}, "
        f"max {_ms(ok['max'])}; every answer p99 {_ms(lat['p99'])}, max {_ms(lat['max'])}",
        "status       " + ", ".join(f"{k}: {v:,}" for k, v in r["status"].items()),
    ]
    for e in r["errors"]:
        what = "max_instances reached" if e["kind"] == "max_instances" else e["reason"]
        lines.append(f"  {e['count']:>7,} x {e['status'] or 'no answer'}  {what}")
    cs = r["cold_starts"]
    lines.append(
        f"cold starts  {cs['count']}"
        + (
            f" (median {_ms(cs['median_ms'])}, max {_ms(cs['max_ms'])}; clients waited "
            f"{cs['waited_s']:.2f} s for them in all)"
            if cs["count"]
            else ""
        )
    )
    lines.append(_instances_table(r["instances"]))
    host, gen = r["host"], r["generator"]
    busy = f", {host['busy_share']:.0%} busy" if host["busy_share"] is not None else ""
    lines.append(
        f"machine      {host['cores']} cores{busy}; instances' CPU limits at the peak "
        f"{host['vcpu_limits']:g} vCPU; the load generator used {gen['cpu_s']:.2f} s of CPU "
        f"({gen['cores']:.0%} of a core)"
        + (
            f", fell {gen['late_ms']:.0f} ms behind its schedule at worst"
            if gen["late_ms"] > 5
            else ""
        )
    )
    lines += _cost(r["cost"])
    lines.append(f"verdict      {r['verdict']['text']}")
    if r["verdict"]["notes"]:
        lines.append(f"             note: {r['verdict']['notes']}")
    return "\n".join(lines)


def _instances_table(instances: Sequence[dict[str, Any]]) -> str:
    if not instances:
        return "instances    none ran"
    several = len({i["class"] for i in instances}) > 1
    head = (
        f"  {'instance':<24} {'requests':>8} {'peak in':>7} {'alive':>7} {'CPU':>7} "
        f"{'throttled':>16} {'memory peak':>20} {'OOM':>3}"
    )
    rows = ["instances", head]
    for i in instances:
        name = f"{i['class']}/{i['name']}" if several else i["name"]
        rows.append(
            f"  {name:<24} {i['requests']:>8,} {i['peak_inflight']:>7} {i['alive_s']:>6.1f}s "
            f"{i['cpu_s']:>6.2f}s {i['cpu_throttled_s']:>6.2f}s ({i['throttled_share']:>5.1%}) "
            f"{i['memory_peak_mib']:>7.1f}/{i['memory_limit_mib']} MiB "
            f"({i['memory_peak_share']:>4.0%}) "
            f"{i['ooms']:>3}"
        )
    return "\n".join(rows)


def _cost(c: dict[str, Any]) -> list[str]:
    u, rc = c["usage"], c["rates"]["containers"]
    w, d = c["rates"]["workers"], c["rates"]["durable_objects"]
    wo, wi = c["without_allotments"], c["with_allotments"]
    return [
        f"cost         {_usd(wo['per_hour'])}/hour, {_usd(wo['per_1000_requests'])} per 1,000 "
        f"requests at this pace; with the plan's monthly allotments taken off, a month of it: "
        f"{_usd(wi['per_hour'])}/hour, {_usd(wi['per_1000_requests'])} per 1,000 requests "
        f"(plus the plan's ${c['plan_usd_per_month']:g}/month)",
        f"  from       {u['memory_gib_s']:,.1f} GiB-s memory, {u['disk_gb_s']:,.1f} GB-s disk, "
        f"{u['vcpu_s']:,.2f} vCPU-s used, {u['requests']:,} Worker and Durable Object requests, "
        f"{u['do_gb_s']:,.1f} GB-s of Durable Object duration; Workers CPU time not counted",
        f"  rates      read {c['rates_read']}: memory ${_rate(rc['memory_usd_per_gib_s'])}/GiB-s, "
        f"CPU ${_rate(rc['vcpu_usd_per_s'])}/vCPU-s, disk ${_rate(rc['disk_usd_per_gb_s'])}/GB-s, "
        f"Workers ${_rate(w['usd_per_million_requests'])}/M requests, Durable Objects "
        f"${_rate(d['usd_per_million_requests'])}/M requests and "
        f"${_rate(d.get('usd_per_million_gb_s', 0))}/M GB-s (--rates FILE to change them)",
    ]


def side_by_side(reports: Sequence[dict[str, Any]]) -> str:
    width = max(14, *(len(r["label"]) + 2 for r in reports))
    name_w = max(len(n) for n, _, _ in ROWS) + 2
    lines = [" " * name_w + "".join(f"{r['label']:>{width}}" for r in reports) + "   differs"]
    for name, get, kind in ROWS:
        values = [get(r) for r in reports]
        cells = "".join(f"{_fmt(v, kind):>{width}}" for v in values)
        lines.append(f"{name:<{name_w}}{cells}   {_difference(values, kind)}")
    lines.append("")
    lines += [f"{r['label']}: {r['verdict']['text']}" for r in reports]
    return "\n".join(lines)


def _difference(values: Sequence[float | str | None], kind: str) -> str:
    first, last = values[0], values[-1]
    if all(v == first for v in values):
        return ""
    if isinstance(first, (int, float)) and isinstance(last, (int, float)) and kind != "share":
        return f"x {last / first:.2f}" if first else "*"
    if isinstance(first, float) and isinstance(last, float):
        return f"{(last - first) * 100:+.1f} points"
    return "*"
