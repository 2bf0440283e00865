"""The Workers runtime's health (emulator/worker/health.py): the crash-rate rule, how an exit is
worded, and the state /_emu/status shows."""

from __future__ import annotations

from emulator.worker.health import CrashWindow, RuntimeHealth, RuntimeState, exit_text


def test_the_third_crash_within_the_window_is_one_too_many() -> None:
    window = CrashWindow(limit=3, window=60.0)
    assert not window.add(0.0)
    assert not window.add(30.0)
    assert window.add(59.0)


def test_crashes_older_than_the_window_are_forgotten() -> None:
    window = CrashWindow(limit=3, window=60.0)
    assert not window.add(0.0)
    assert not window.add(30.0)
    assert not window.add(61.0)  # the first is over a minute old: two in the window
    assert len(window) == 2
    assert not window.add(95.0)  # 61 and 95: the one at 30 is gone too
    assert window.add(100.0)


def test_an_exit_is_worded_by_its_signal_or_code() -> None:
    assert exit_text(-9) == "was killed by SIGKILL"  # asyncio's returncode
    assert exit_text(None, "SIGSEGV") == "was killed by SIGSEGV"  # Node's (code, signal)
    assert exit_text(1) == "exited with code 1"
    assert exit_text(-99) == "was killed by signal 99"


def test_a_restart_is_counted_when_it_comes_back_from_down() -> None:
    health = RuntimeHealth()
    health.up()  # the first start is no restart
    assert health.snapshot()["restarts"] == 0
    health.down("workerd was killed by SIGKILL")
    down = health.snapshot()
    assert (down["state"], down["reason"]) == ("down", "workerd was killed by SIGKILL")
    health.up()
    assert health.snapshot() | {"since": 0} == {
        "state": "up",
        "reason": None,
        "restarts": 1,
        "since": 0,
    }
    health.failed("died 3 times")
    assert health.state is RuntimeState.FAILED
