"""The event kinds: one enum, documented in full, and an event as the line `emu up` prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

from emulator.instances.events import CLOSING, EventKind, event_line, make_event

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cockpit.md"


def _documented() -> set[str]:
    text = DOCS.read_text()
    section = text.split("## `/_emu/events`", 1)[1].split("\n## ", 1)[0]
    listed = [line for line in section.splitlines() if line.startswith("- ")]
    return {name for line in listed for name in re.findall(r"`([a-z_]+)`", line)}


def test_every_kind_is_documented_and_every_documented_kind_exists() -> None:
    assert _documented() == {str(k) for k in EventKind}


def test_an_event_is_json_with_its_kind_as_a_string() -> None:
    event = make_event(1.5, EventKind.STOPPED, {"class": "Web", "instance": "i", "exit_code": 0})
    assert json.loads(json.dumps(event)) == {
        "time": 1.5,
        "event": "stopped",
        "class": "Web",
        "instance": "i",
        "exit_code": 0,
    }
    assert event["event"] in CLOSING


def test_a_failed_starts_logs_stay_out_of_its_line() -> None:
    line = event_line(
        EventKind.START_FAILED,
        {"class": "Web", "instance": "instance-1", "error": "boom", "logs": ["a", "b"]},
        several_classes=True,
    )
    assert line == "Web/instance-1 start_failed error=boom"
