"""The states of an instance, and which of them hold a `max_instances` slot."""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"  # emu only: container being created, before `running`
    RUNNING = "running"  # started, ports not answering yet
    HEALTHY = "healthy"
    STOPPING = "stopping"
    STOPPED_WITH_CODE = "stopped_with_code"


HOLDS_SLOT = frozenset({State.STARTING, State.RUNNING, State.HEALTHY, State.STOPPING})
