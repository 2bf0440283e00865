"""A blocked event loop, as the tests see it: asyncio's slow-callback warnings (debug mode), less
the time the loop's thread only waited for a CPU.

asyncio times a callback by the wall clock, so on a busy machine a callback that merely waited
its turn for a core looks like one that blocked. Linux counts that wait per thread
(/proc/thread-self/schedstat: time on a CPU, time waiting on the run queue); what remains after
taking it off is the callback's own work and any blocking call it made, which is what the check
is for."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

SCHEDSTAT = Path("/proc/thread-self/schedstat")


def run_queue_wait() -> float:
    """Seconds the calling thread has waited for a CPU so far (0 where Linux does not say)."""
    try:
        return int(SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class MeasuredLoop(asyncio.SelectorEventLoop):
    """An event loop that notes its thread's run-queue wait at the start of each iteration, so
    that a slow callback's report can take off what the thread spent waiting for a CPU."""

    iteration_wait = 0.0

    def _run_once(self) -> None:
        self.iteration_wait = run_queue_wait()
        super()._run_once()  # type: ignore[misc]


class SlowCallbacks(logging.Handler):
    """Collects asyncio's "Executing <callback> took N seconds" warnings from one loop's thread,
    each only if it still took `limit` once the thread's wait for a CPU is taken off."""

    def __init__(self, loop: MeasuredLoop, thread_name: str, limit: float, into: list[str]):
        super().__init__(logging.WARNING)
        self._loop = loop
        self._thread_name = thread_name
        self._limit = limit
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName != self._thread_name or "took" not in record.msg:
            return
        took = record.args[-1] if isinstance(record.args, tuple) and record.args else None
        waited = run_queue_wait() - self._loop.iteration_wait  # runs in the loop's thread
        if not isinstance(took, float) or took - waited >= self._limit:
            self._into.append(f"{record.getMessage()} (of which {waited:.3f} s waiting for a CPU)")
