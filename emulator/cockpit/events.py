"""emu's events as lines: how `emu up` prints one (and the Emulator's log)."""

from __future__ import annotations

from typing import Any


def event_line(kind: str, data: dict[str, Any], several_classes: bool) -> str:
    """An event as `emu up` prints it under the source "emu": "instance-0 stopped reason=...",
    "PythonExecutor rebuilt image=...", "engine_down"; so never "emu" twice."""
    if "instance" in data:
        who = f"{data['class']}/{data['instance']} " if several_classes else f"{data['instance']} "
    else:
        who = f"{data['class']} " if "class" in data else ""
    # A failed start's log lines stay in the event history: the line says what failed.
    shown = (k for k in data if k not in ("class", "instance", "logs"))
    rest = "".join(f" {k}={data[k]}" for k in shown)
    return f"{who}{kind}{rest}"
