"""The Workers runtime's health, as `/_emu/status` shows it (up or down, why, how many restarts),
and the crash-rate rule: a runtime that keeps dying is not restarted for ever."""

from __future__ import annotations

import collections
import signal
import time
from dataclasses import dataclass, field
from enum import StrEnum

from ..instances.status import RuntimeStatus

CRASH_LIMIT = 3  # crashes within CRASH_WINDOW: emu stops instead of restarting again
CRASH_WINDOW = 60.0


class RuntimeState(StrEnum):
    STARTING = "starting"
    UP = "up"
    DOWN = "down"  # died; being restarted
    FAILED = "failed"  # died too often (or could not be started again): emu stops


def exit_text(code: int | None, signal_name: str | None = None) -> str:
    """How a process ended, in words: "killed by SIGKILL", "exited with code 1". `code` as
    asyncio gives it (negative: the signal's number) or as Node does (with `signal_name`)."""
    if signal_name:
        return f"was killed by {signal_name}"
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class CrashWindow:
    """Crashes within the last `window` seconds; `add` says whether that one is one too many."""

    limit: int = CRASH_LIMIT
    window: float = CRASH_WINDOW
    _times: collections.deque[float] = field(default_factory=collections.deque)

    def add(self, now: float) -> bool:
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        return len(self._times) >= self.limit

    def __len__(self) -> int:
        return len(self._times)


@dataclass
class RuntimeHealth:
    state: RuntimeState = RuntimeState.STARTING
    reason: str | None = None  # why it is down (or failed)
    restarts: int = 0
    since: float = field(default_factory=time.time)  # of the state

    def up(self) -> None:
        if self.state is RuntimeState.DOWN:
            self.restarts += 1
        self._set(RuntimeState.UP, None)

    def down(self, reason: str) -> None:
        self._set(RuntimeState.DOWN, reason)

    def failed(self, reason: str) -> None:
        self._set(RuntimeState.FAILED, reason)

    def _set(self, state: RuntimeState, reason: str | None) -> None:
        self.state, self.reason, self.since = state, reason, time.time()

    def snapshot(self) -> RuntimeStatus:
        return {
            "state": str(self.state),
            "reason": self.reason,
            "restarts": self.restarts,
            "since": self.since,
        }
