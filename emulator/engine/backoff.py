"""Waiting between retries: growing delays, each capped, with a bound on the total."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    first: float  # the first delay, in seconds
    cap: float  # no delay is longer
    total: float | None  # the delays add up to at most this; None: until the caller stops
    factor: float = 2.0

    def delays(self) -> Iterator[float]:
        """The delays to wait, one per retry; the last one is cut to fit `total`."""
        delay, spent = self.first, 0.0
        while self.total is None or spent < self.total:
            step = min(delay, self.cap)
            if self.total is not None:
                step = min(step, self.total - spent)
            yield step
            spent += step
            delay *= self.factor


async def retry(
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    retry_on: type[Exception] | tuple[type[Exception], ...],
) -> T:
    """Await `attempt()` until it does not raise `retry_on`, waiting `backoff`'s delays in
    between; when they run out, the last error is raised."""
    delays = backoff.delays()
    while True:
        try:
            return await attempt()
        except retry_on:
            delay = next(delays, None)
            if delay is None:
                raise
        await asyncio.sleep(delay)
