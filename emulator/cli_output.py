"""What the `emu` command prints: emu up's lines, and the tables of `emu ps` and `emu status`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import labels
from .docker_types import ContainerInfo


class Printer:
    """Prints emu's lines. Called on the loop only: lines written in one loop turn are flushed
    together at its end, so a container logging a line per request costs no syscall per line,
    and output still appears at once when stdout is a pipe."""

    WIDTH = 16

    def __init__(self, json_logs: bool) -> None:
        self._json = json_logs
        self._second = -1
        self._stamp = ""
        self._flush_scheduled = False

    def __call__(self, source: str, line: str) -> None:
        now = time.time()
        if self._json:
            text = json.dumps({"time": now, "source": source, "line": line})
        else:
            if int(now) != self._second:
                self._second = int(now)
                self._stamp = time.strftime("%H:%M:%S", time.localtime(now))
            text = f"{self._stamp} {source[: self.WIDTH]:<{self.WIDTH}} | {line}"
        sys.stdout.write(text + "\n")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()


def status_table(data: dict[str, Any]) -> str:
    lines = [
        f"{data['url']}  config {data['config']}  engine {'up' if data['engine_up'] else 'DOWN'}",
        f"disk limits: {data['disk_limits']}",
    ]
    head = (
        "INSTANCE",
        "STATE",
        "INFLIGHT",
        "REQUESTS",
        "STARTS",
        "COLD MS",
        "SLEEPS IN",
        "MEMORY",
        "THROTTLED",
        "ERROR",
    )
    for cls in data["classes"]:
        itype = cls["instance_type"]
        lines += [
            "",
            f"{cls['class_name']} (env.{cls['binding']}): {cls['running']}/{cls['max_instances']} "
            f"running, {cls['instances_n']} names, {itype['name']} ({itype['vcpu']:g} vCPU, "
            f"{itype['memory_mib']} MiB)"
            + (f", image error: {cls['image_error']}" if cls["image_error"] else ""),
        ]
        rows = [head] + [
            (
                i["name"],
                i["state"] + (" (out of memory)" if i["oom_killed"] else ""),
                str(i["inflight"]),
                str(i["requests"]),
                str(i["starts"]),
                "-" if i["cold_start_ms"] is None else f"{i['cold_start_ms']:.0f}",
                _sleeps_text(i),
                _memory_text(i.get("memory_bytes"), itype["memory_mib"]),
                "-" if i.get("cpu_throttled_s") is None else f"{i['cpu_throttled_s']:.1f}s",
                (i["last_error"] or "")[:60],
            )
            for i in cls["instances"]
        ]
        lines += columns(rows)
    return "\n".join(lines)


def _sleeps_text(inst: dict[str, Any]) -> str:
    """When it sleeps; for a stopping instance, when SIGKILL comes (--stop-grace)."""
    kill_in = inst.get("kill_in_s")
    if kill_in is not None:
        return f"SIGKILL in {kill_in:.0f}s"
    return "-" if inst["sleeps_in_s"] is None else f"{inst['sleeps_in_s']:.0f}s"


def _memory_text(used: int | None, limit_mib: int) -> str:
    """In use, and its share of the instance type's memory: "412 MiB 7%"."""
    if used is None:
        return "-"
    return f"{used / 2**20:.0f} MiB {100 * used / (limit_mib * 2**20):.0f}%"


def columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _state(c: ContainerInfo, states: Mapping[str, str]) -> tuple[str, str]:
    """(state, whose): emu's, where a running emu up knows the container, else Docker's."""
    return (states[c.id], "emu") if c.id in states else (c.status, "docker")


def ps_json(rows: Sequence[ContainerInfo], states: Mapping[str, str]) -> str:
    return json.dumps(
        [
            {
                "id": c.id[:12],
                "name": c.name,
                "status": c.status,
                **({"node": c.node} if c.node is not None else {}),
                "state": _state(c, states)[0],
                "state_from": _state(c, states)[1],
                **{
                    k.removeprefix(labels.PREFIX): v
                    for k, v in c.labels.items()
                    if k.startswith(labels.PREFIX)
                },
            }
            for c in rows
        ],
        indent=2,
    )


def ps_table(rows: Sequence[ContainerInfo], states: Mapping[str, str]) -> str:
    nodes = any(c.node is not None for c in rows)  # a Swarm's services: where each runs
    head = ("CLASS", "INSTANCE", "STATE", "CONTAINER", "SESSION", "PID") + (
        ("NODE",) if nodes else ()
    )
    table = [head] + [
        (
            c.labels.get(labels.CLASS, "?"),
            c.labels.get(labels.INSTANCE, "?"),
            "{} ({})".format(*_state(c, states)),
            c.id[:12],
            c.labels.get(labels.SESSION, "?"),
            c.labels.get(labels.PID, "?"),
        )
        + ((c.node or "-",) if nodes else ())
        for c in sorted(rows, key=lambda c: (c.labels.get(labels.CLASS, ""), c.name))
    ]
    return "\n".join(columns(table))
