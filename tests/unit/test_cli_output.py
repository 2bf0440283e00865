"""What `emu up` and `emu status` print: source column, event lines, status table, --watch."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from emulator.cli.output import (
    MAX_WIDTH,
    Printer,
    StatusScreen,
    source_width,
    status_table,
)
from emulator.config import Overrides, load_config
from emulator.instances.events import EventFields, EventKind, event_line
from tests.support import Project


def printed(monkeypatch: pytest.MonkeyPatch, printer: Printer, *calls: Any) -> list[str]:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)

    async def main() -> None:
        for call in calls:
            call(printer)
        await asyncio.sleep(0)

    asyncio.run(main())
    return out.getvalue().splitlines()


def test_source_column_fits_the_longest_class_name(tmp_path: Path) -> None:
    config = load_config(Project().write(tmp_path), Overrides())
    width = source_width(config.classes)
    assert width == len("build PythonExecutorContainer")


def test_a_source_past_the_cap_ends_in_an_ellipsis(monkeypatch: pytest.MonkeyPatch) -> None:
    long = "x" * 63  # an x-emu-instance name may be this long
    lines = printed(
        monkeypatch,
        Printer(json_logs=False, width=MAX_WIDTH),
        lambda p: p("build PythonExecutorContainer", "image is up to date"),
        lambda p: p(long, "hello"),
    )
    assert lines[0][9:].startswith("build PythonExecutorContainer" + " " * 11 + " | ")
    assert lines[1][9:] == "x" * (MAX_WIDTH - 1) + "… | hello"


def test_event_lines_never_say_emu_twice() -> None:
    rebuilt = event_line(EventKind.REBUILT, {"class": "Web", "image": "emu-web:1"}, False)
    assert rebuilt == "Web rebuilt image=emu-web:1"
    assert event_line(EventKind.ENGINE_DOWN, {}, several_classes=False) == "engine_down"
    stopped: EventFields = {
        "class": "Web",
        "instance": "instance-0",
        "reason": "sleepAfter",
        "exit_code": 0,
    }
    line = "instance-0 stopped reason=sleepAfter exit_code=0"
    assert event_line(EventKind.STOPPED, stopped, several_classes=False) == line
    assert event_line(EventKind.STOPPED, stopped, True).startswith("Web/instance-0 stopped ")


def test_json_logs_give_events_as_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {"time": 1.5, "event": "stopped", "class": "Web", "instance": "i", "exit_code": 137}
    lines = printed(
        monkeypatch,
        Printer(json_logs=True),
        lambda p: p.event(fields, "i stopped exit_code=137"),
        lambda p: p("emu", "listening on http://127.0.0.1:8787"),
    )
    assert json.loads(lines[0]) == {"source": "emu", **fields}
    assert json.loads(lines[1])["line"] == "listening on http://127.0.0.1:8787"


def status(disk: str) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:8787", "config": "wrangler.jsonc", "engine_up": True,
            "disk_limits": disk, "classes": []}  # fmt: skip


def test_status_table_says_disk_limits_once() -> None:
    note = "disk limits are not enforced: storage driver overlay2 on extfs has no quota"
    assert status_table(status(note)).splitlines()[1] == note
    assert status_table(status("enforced")).splitlines()[1] == "disk limits are enforced"


def test_status_watch_redraws_in_place_on_a_terminal() -> None:
    screen = StatusScreen(tty=True)
    first = screen.frame("a\nb")
    second = screen.frame("c")
    assert first.startswith(StatusScreen.HIDE_CURSOR + "\x1b[H\x1b[2J")
    # later frames: home, each line cleared to its end, the rest of the old frame cleared
    assert second == "\x1b[Hc\x1b[K\n\x1b[J"
    assert screen.close() == StatusScreen.SHOW_CURSOR
    piped = StatusScreen(tty=False)
    assert piped.frame("a\nb") == "a\nb\n"
    assert piped.close() == ""
