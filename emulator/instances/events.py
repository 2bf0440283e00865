"""emu's lifecycle events: their kinds, their fields, and an event as a line.

Defined here, in the lowest layer that emits them (the instances), so that every emitter (pools,
instances, the front, the cockpit, the session) and every reader (the CLI's printer, `emu load`,
`RunningEmulator`) uses the same names. `/_emu/events` lists `LifecycleEvent`s as JSON.
"""

from __future__ import annotations

import enum
from typing import TypedDict


class EventKind(enum.StrEnum):
    # an instance's start
    STARTING = "starting"
    RUNNING = "running"
    HEALTHY = "healthy"
    START_FAILED = "start_failed"  # error; exit_code, oom_killed, logs when it exited
    NO_CAPACITY = "no_capacity"  # running: the names holding max_instances' slots
    # its stop
    STOPPING = "stopping"  # reason
    SIGTERM_IGNORED = "sigterm_ignored"  # reason: the cause and the remedy
    STILL_STOPPING = "still_stopping"  # reason
    KILLING = "killing"  # reason
    STOPPED = "stopped"  # reason, exit_code
    EXITED = "exited"  # exit_code, oom_killed; reason when from outside emu
    RESPONSE_CUT = "response_cut"  # reason: the container broke off a response
    # the control API
    SIGNALLED = "signalled"  # signal
    PAUSED = "paused"
    UNPAUSED = "unpaused"
    # the engine and the session
    ENGINE_DOWN = "engine_down"
    ENGINE_UP = "engine_up"
    REMOVED = "removed"  # container, reason: an orphan, after the engine came back
    NETWORK_RECREATED = "network_recreated"  # network
    # --watch
    REBUILT = "rebuilt"  # class, image
    REBUILD_FAILED = "rebuild_failed"  # class, error
    RECONFIGURED = "reconfigured"  # class, changed
    RELOAD_FAILED = "reload_failed"  # error


# The kinds after which an instance holds no container any more.
CLOSING = frozenset({EventKind.STOPPED, EventKind.EXITED, EventKind.START_FAILED})

# Every field an event may carry besides its time and kind; which kinds carry which is said
# beside each kind above. "class" is a keyword, hence the functional form.
EventFields = TypedDict(
    "EventFields",
    {
        "class": str,
        "instance": str,
        "reason": str,
        "error": str,
        "exit_code": "int | None",
        "oom_killed": bool,
        "logs": "list[str]",
        "running": "list[str]",
        "signal": str,
        "container": str,
        "network": str,
        "image": str,
        "changed": str,
    },
    total=False,
)


class LifecycleEvent(EventFields):
    """One entry of the event history (`/_emu/events`, `Emulator.events`)."""

    time: float
    event: EventKind


def make_event(time: float, kind: EventKind, fields: EventFields) -> LifecycleEvent:
    return {"time": time, "event": kind, **fields}


def event_line(kind: EventKind, data: EventFields, several_classes: bool) -> str:
    """An event as `emu up` prints it under the source "emu": "instance-0 stopped reason=...",
    "PythonExecutor rebuilt image=...", "engine_down"; so never "emu" twice."""
    if "instance" in data:
        who = f"{data['class']}/{data['instance']} " if several_classes else f"{data['instance']} "
    else:
        who = f"{data['class']} " if "class" in data else ""
    # A failed start's log lines stay in the event history: the line says what failed.
    rest = "".join(f" {k}={v}" for k, v in data.items() if k not in ("class", "instance", "logs"))
    return f"{who}{kind}{rest}"
