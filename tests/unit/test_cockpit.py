"""The cockpit's pure parts: the request ring, signal names, the loopback rule, log timestamps."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.cockpit.control import parse_signal
from emulator.cockpit.routes import is_loopback
from emulator.engine.docker_logs import stamped
from emulator.front.requests_log import Record, RequestLog
from emulator.instances.errors import EmuHTTPError


def record(n: int) -> Record:
    return (float(n), "GET", f"/{n}", "C", f"instance-{n % 3}", 200, 1.0, False, True, None)


def test_the_ring_keeps_the_last_records_and_readers_find_the_new_ones() -> None:
    log = RequestLog(size=5)
    for n in range(3):
        log.add(record(n))
    assert [r["path"] for r in log.records()] == ["/0", "/1", "/2"]
    assert log.records()[0] == {
        "time": 0.0,
        "method": "GET",
        "path": "/0",
        "class": "C",
        "instance": "instance-0",
        "status": 200,
        "duration_ms": 1.0,
        "cold": False,
        "random": True,
    }
    seen = log.count
    assert log.since(seen, 10) == ([], 0)
    for n in range(3, 10):
        log.add(record(n))
    assert [r["path"] for r in log.records()] == ["/5", "/6", "/7", "/8", "/9"]
    new, skipped = log.since(seen, 10)  # 7 new, 2 of them already out of the ring
    assert [r["path"] for r in new] == ["/5", "/6", "/7", "/8", "/9"] and skipped == 2
    new, skipped = log.since(seen, 2)  # the newest ones, and how many were left out
    assert [r["path"] for r in new] == ["/8", "/9"] and skipped == 5
    assert [r["path"] for r in log.records(2)] == ["/8", "/9"]


@pytest.mark.parametrize(
    ("raw", "number"), [("9", 9), ("15", 15), ("64", 64), ("SIGUSR1", 10), ("usr1", 10)]
)
def test_signals_by_number_or_name(raw: str, number: int) -> None:
    assert parse_signal(raw) == number


@pytest.mark.parametrize("raw", ["999", "0", "65", "-1", "SIGNOPE", "", None, "1.5"])
def test_bad_signals_are_400(raw: str | None) -> None:
    with pytest.raises(EmuHTTPError) as caught:
        parse_signal(raw)
    assert caught.value.status == 400


class FakeTransport:
    def __init__(self, sockname: Any) -> None:
        self.sockname = sockname

    def get_extra_info(self, key: str) -> Any:
        return self.sockname if key == "sockname" else None


class FakeRequest:
    def __init__(self, sockname: Any) -> None:
        self.transport = FakeTransport(sockname) if sockname is not None else None


@pytest.mark.parametrize(
    ("sockname", "local"),
    [
        (("127.0.0.1", 8787), True),
        (("127.8.9.10", 8787), True),
        (("::1", 8787, 0, 0), True),
        (("::ffff:127.0.0.1", 8787, 0, 0), True),
        (("172.17.0.1", 8787), False),
        (("192.168.1.20", 8787), False),
        (("fe80::1%eth0", 8787, 0, 2), False),
        (("::ffff:10.0.0.1", 8787, 0, 0), False),
        ("/run/emu.sock", False),
        (None, False),
    ],
)
def test_loopback_is_decided_by_the_local_address(sockname: Any, local: bool) -> None:
    assert is_loopback(FakeRequest(sockname)) is local  # type: ignore[arg-type]


def test_log_lines_with_the_engines_timestamps() -> None:
    when, text = stamped("2024-05-01T10:00:00.123456789Z GET /x y")
    assert text == "GET /x y" and when == pytest.approx(1714557600.123456)
    assert stamped("no time here") == (0.0, "no time here")
