"""Which requests are being handled, so that shutdown can wait for them, then cancel the rest."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("executor.server")

# After the grace, cancelled handlers get this long to unwind (kill their executions).
_UNWIND_S = 1.0


class InFlight:
    """The requests being handled, so that shutdown can wait for them and then cancel the rest.

    aiohttp's shutdown_timeout alone would not do: it waits up to the timeout, then waits up to
    the timeout again before cancelling, so a grace of g seconds could take 2g.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)
        self._idle.clear()

    def leave(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for every request to finish, then cancel the rest."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
            return
        except TimeoutError:
            pass
        log.warning("cancelling %d requests still running after %gs", len(self._tasks), grace)
        for task in self._tasks:
            task.cancel()
        try:
            await asyncio.wait_for(self._idle.wait(), _UNWIND_S)
        except TimeoutError:
            log.warning("%d requests did not unwind", len(self._tasks))
