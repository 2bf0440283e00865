"""The retry helper: growing delays, capped, bounded in total."""

from __future__ import annotations

import itertools

import pytest

from emulator.engine.backoff import Backoff, retry


def test_delays_grow_to_the_cap_and_stop_at_the_total() -> None:
    delays = list(Backoff(first=0.1, cap=0.4, total=1.0).delays())
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.3])
    assert sum(delays) == pytest.approx(1.0)


def test_without_a_total_the_delays_go_on_at_the_cap() -> None:
    delays = list(itertools.islice(Backoff(first=0.5, cap=1.0, total=None).delays(), 5))
    assert delays == [0.5, 1.0, 1.0, 1.0, 1.0]


async def test_retry_returns_once_an_attempt_succeeds() -> None:
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError("not yet")
        return "done"

    assert await retry(flaky, Backoff(first=0.001, cap=0.001, total=1.0), OSError) == "done"
    assert len(calls) == 3


async def test_retry_raises_the_last_error_when_the_time_is_up() -> None:
    calls = []

    async def never() -> None:
        calls.append(1)
        raise OSError(f"try {len(calls)}")

    with pytest.raises(OSError, match="try 4"):
        await retry(never, Backoff(first=0.001, cap=0.001, total=0.003), OSError)
