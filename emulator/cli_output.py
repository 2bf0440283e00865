"""What the `emu` command prints: emu up's lines, and the tables of `emu ps` and `emu status`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import labels
from .docker_types import ContainerInfo


class Printer:
    """Prints emu's lines. Called on the loop only: lines written in one loop turn are written
    together, in one write, at its end. So a container logging a line per request costs no
    syscall per line, also when stdout is a terminal (line-buffered) or unbuffered (`-u`), and
    output still appears at once."""

    WIDTH = 16

    def __init__(self, json_logs: bool) -> None:
        self._json = json_logs
        self._second = -1
        self._stamp = ""
        self._pending: list[str] = []

    def __call__(self, source: str, line: str) -> None:
        now = time.time()
        if self._json:
            text = json.dumps({"time": now, "source": source, "line": line})
        else:
            if int(now) != self._second:
                self._second = int(now)
                self._stamp = time.strftime("%H:%M:%S", time.localtime(now))
            text = f"{self._stamp} {source[: self.WIDTH]:<{self.WIDTH}} | {line}"
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(text + "\n")

    def _flush(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.write(text)
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
                "-" if i["sleeps_in_s"] is None else f"{i['sleeps_in_s']:.0f}s",
                _memory_text(i.get("memory_bytes"), itype["memory_mib"]),
                "-" if i.get("cpu_throttled_s") is None else f"{i['cpu_throttled_s']:.1f}s",
                (i["last_error"] or "")[:60],
            )
            for i in cls["instances"]
        ]
        lines += columns(rows)
    return "\n".join(lines)


def _memory_text(used: int | None, limit_mib: int) -> str:
    """In use, and its share of the instance type's memory: "412 MiB 7%"."""
    if used is None:
        return "-"
    return f"{used / 2**20:.0f} MiB {100 * used / (limit_mib * 2**20):.0f}%"


def columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def ps_json(rows: Sequence[ContainerInfo]) -> str:
    return json.dumps(
        [
            {
                "id": c.id[:12],
                "name": c.name,
                "status": c.status,
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


def ps_table(rows: Sequence[ContainerInfo]) -> str:
    head = ("CLASS", "INSTANCE", "STATE", "CONTAINER", "SESSION", "PID")
    table = [head] + [
        (
            c.labels.get(labels.CLASS, "?"),
            c.labels.get(labels.INSTANCE, "?"),
            c.status,
            c.id[:12],
            c.labels.get(labels.SESSION, "?"),
            c.labels.get(labels.PID, "?"),
        )
        for c in sorted(rows, key=lambda c: (c.labels.get(labels.CLASS, ""), c.name))
    ]
    return "\n".join(columns(table))
