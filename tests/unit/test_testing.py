"""The blocked-loop check that the emu_up fixture applies (emu_check_blocking): a blocking call
is recorded; awaiting is not, nor is a callback's wait for a CPU on a busy machine."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from emulator import testing
from emulator.blocking import MeasuredLoop, SlowCallbacks, run_queue_wait


def _run(work: Callable[[], None] | None, limit: float = 0.05) -> tuple[list[str], list[str]]:
    """What SlowCallbacks records of one callback, and what asyncio reported of it at all."""
    loop = MeasuredLoop()
    loop.set_debug(True)
    loop.slow_callback_duration = limit
    seen: list[str] = []
    reported: list[str] = []
    handler = SlowCallbacks(loop, threading.current_thread().name, limit, seen)
    raw = SlowCallbacks(loop, threading.current_thread().name, 0.0, reported)
    for h in (handler, raw):
        logging.getLogger("asyncio").addHandler(h)

    async def main() -> None:
        if work is None:
            await asyncio.sleep(0.1)
        else:
            work()

    try:
        loop.run_until_complete(main())
    finally:
        for h in (handler, raw):
            logging.getLogger("asyncio").removeHandler(h)
        loop.close()
    return seen, reported


def test_a_blocking_call_on_the_loop_is_recorded() -> None:
    seen, _ = _run(lambda: time.sleep(0.1))
    assert seen and "took" in seen[0]


def test_awaiting_is_not() -> None:
    assert _run(None) == ([], [])


def _burn(cpu_seconds: float) -> None:
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


@pytest.mark.skipif(run_queue_wait() == 0.0, reason="no /proc/thread-self/schedstat")
def test_a_wait_for_a_cpu_is_not_counted_as_blocking() -> None:
    """60 ms of work on a CPU shared with a spinning process takes about twice that by the
    wall clock: asyncio reports it past 0.1 s, the check does not."""
    cpu = min(os.sched_getaffinity(0))
    mask = os.sched_getaffinity(0)
    spin = (
        f"import os, time\nos.sched_setaffinity(0, {{{cpu}}})\nend = time.time() + 20\n"
        "while time.time() < end: pass"
    )
    hog = subprocess.Popen([sys.executable, "-c", spin])
    try:
        os.sched_setaffinity(0, {cpu})  # this thread only (Linux: 0 is the calling thread)
        deadline = time.monotonic() + 10
        while True:  # until the hog shares the CPU (it needs a moment to start)
            before = run_queue_wait()
            _burn(0.01)
            if run_queue_wait() - before > 0.005 or time.monotonic() > deadline:
                break
        seen, reported = _run(lambda: _burn(0.06), limit=0.1)
    finally:
        os.sched_setaffinity(0, mask)
        hog.kill()
        hog.wait()
    assert reported, "the callback should have taken longer than 0.1 s by the wall clock"
    assert seen == [], seen


def test_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    low, high = testing.PICK_RANGE
    ports = {testing.free_port() for _ in range(20)}
    assert all(low <= port < high for port in ports), ports
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))
