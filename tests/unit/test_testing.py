"""The blocked-loop check that the emu_up fixture applies (emu_check_blocking)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from emulator.testing import _SlowCallbacks


def _run(blocking: bool) -> list[str]:
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    seen: list[str] = []
    handler = _SlowCallbacks(threading.current_thread().name, seen)
    logging.getLogger("asyncio").addHandler(handler)

    async def work() -> None:
        if blocking:
            time.sleep(0.1)  # noqa: ASYNC251  (the blocking call under test, not a wait)
        else:
            await asyncio.sleep(0.1)

    try:
        loop.run_until_complete(work())
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        loop.close()
    return seen


def test_a_blocking_call_on_the_loop_is_recorded() -> None:
    seen = _run(blocking=True)
    assert seen and "took" in seen[0]


def test_awaiting_is_not() -> None:
    assert _run(blocking=False) == []
