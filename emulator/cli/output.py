"""What the `emu` command prints: emu up's lines, and the tables of `emu ps` and `emu status`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import ClassConfig
from ..engine.docker_types import ContainerInfo
from ..instances.events import LifecycleEvent
from ..runs import labels

# The source column of `emu up`'s lines: as wide as its longest source ("build <class>", or
# "<class>/instance-<k>" with several classes), within these bounds; longer ones end in "…".
MIN_WIDTH = 16
MAX_WIDTH = 40


def source_width(classes: Sequence[ClassConfig]) -> int:
    several = len(classes) > 1
    longest = max(
        (
            max(len(f"build {c.class_name}"), len(f"{c.class_name}/instance-{c.instances - 1}"))
            if several
            else len(f"build {c.class_name}")
            for c in classes
        ),
        default=0,
    )
    return min(MAX_WIDTH, max(MIN_WIDTH, longest))


class Printer:
    """Prints emu's lines. Called on the loop only: lines written in one loop turn are written
    together, in one write, at its end. So a container logging a line per request costs no
    syscall per line, also when stdout is a terminal (line-buffered) or unbuffered (`-u`), and
    output still appears at once."""

    def __init__(self, json_logs: bool, width: int = MIN_WIDTH) -> None:
        self._json = json_logs
        self._width = width
        self._second = -1
        self._stamp = ""
        self._pending: list[str] = []

    def __call__(self, source: str, line: str) -> None:
        now = time.time()
        if self._json:
            self._write(json.dumps({"time": now, "source": source, "line": line}))
            return
        if int(now) != self._second:
            self._second = int(now)
            self._stamp = time.strftime("%H:%M:%S", time.localtime(now))
        if len(source) > self._width:
            source = source[: self._width - 1] + "…"
        self._write(f"{self._stamp} {source:<{self._width}} | {line}")

    def event(self, fields: LifecycleEvent, line: str) -> None:
        """A lifecycle event: with --json-logs its fields (event, class, instance, reason,
        exit_code, ...), else its line."""
        if self._json:
            self._write(json.dumps({"source": "emu", **fields}, default=str))
        else:
            self("emu", line)

    def _write(self, text: str) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(text + "\n")

    def _flush(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.write(text)
            sys.stdout.flush()


class StatusScreen:
    """The frames of `emu status --watch`. On a terminal each frame redraws the last one in
    place: cursor home, each line cleared to its end, then the rest of the screen, so nothing
    scrolls or flickers. Elsewhere (a pipe, a file) frames follow each other."""

    HOME = "\x1b[H"
    CLEAR_SCREEN = "\x1b[2J"
    CLEAR_LINE_END = "\x1b[K"
    CLEAR_BELOW = "\x1b[J"
    HIDE_CURSOR = "\x1b[?25l"
    SHOW_CURSOR = "\x1b[?25h"

    def __init__(self, tty: bool) -> None:
        self._tty = tty
        self._drawn = False

    def frame(self, text: str) -> str:
        if not self._tty:
            return text + "\n"
        start = self.HOME if self._drawn else self.HIDE_CURSOR + self.HOME + self.CLEAR_SCREEN
        self._drawn = True
        body = "".join(line + self.CLEAR_LINE_END + "\n" for line in text.split("\n"))
        return start + body + self.CLEAR_BELOW

    def close(self) -> str:
        """What to write when the watch ends: the cursor back."""
        return self.SHOW_CURSOR if self._tty and self._drawn else ""


def status_table(data: dict[str, Any]) -> str:
    lines = [
        f"{data['url']}  config {data['config']}  engine {'up' if data['engine_up'] else 'DOWN'}",
        # Either "enforced" or emu up's own sentence: "disk limits are not enforced: ...".
        "disk limits are enforced" if data["disk_limits"] == "enforced" else data["disk_limits"],
    ]
    runtime = data.get("runtime")
    if runtime:  # worker mode: the Workers runtime
        why = f": {runtime['reason']}" if runtime.get("reason") else ""
        lines.append(f"Workers runtime {runtime['state']}{why} (restarts: {runtime['restarts']})")
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
            f"running, {_names_text(cls)}{itype['name']} ({itype['vcpu']:g} vCPU, "
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


def _names_text(cls: dict[str, Any]) -> str:
    """getRandom's N where it applies, and the instances requests reached."""
    n = cls.get("instances_n")
    spread = "" if n is None else f"getRandom over {n} names, "
    reached = cls.get("reached") or []
    more = f" and {len(reached) - 5} more" if len(reached) > 5 else ""
    return spread + (f"reached {', '.join(reached[:5])}{more}; " if reached else "")


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
