"""A process group's end, as the Workers runtime's `stop` waits for it (node and workerd gone
before the next emu takes the state folder): real processes, a zombie counting as gone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from emulator.runs.live import group_alive
from emulator.testing import wait_for
from emulator.worker.runtime import group_gone


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_a_group_is_alive_until_its_last_member_ends_and_a_zombie_is_gone() -> None:
    # A leader and a second member (the shell's sleep), as node and workerd are.
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 30 & wait"], start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        assert group_alive(leader.pid)
        os.kill(leader.pid, signal.SIGKILL)  # the leader only: its sleep goes on
        wait_for(lambda: _state(leader.pid) == "Z", 10, "the leader a zombie")
        assert group_alive(leader.pid)  # the sleep keeps the group alive
        os.killpg(leader.pid, signal.SIGKILL)
        # The leader stays a zombie (not reaped yet) and still takes killpg's signal 0: gone.
        wait_for(lambda: not group_alive(leader.pid), 10, "the group gone")
        assert _state(leader.pid) == "Z"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.wait(30)
    assert not group_alive(leader.pid)


async def test_group_gone_waits_for_the_end_and_says_when_it_did_not_come() -> None:
    proc = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    try:
        began = time.monotonic()
        assert not await group_gone(proc.pid, 0.2)  # still there after its deadline
        assert time.monotonic() - began < 5
        os.killpg(proc.pid, signal.SIGKILL)
        assert await group_gone(proc.pid, 10)  # a zombie until the wait below: gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
