"""Faults on demand with emu's pytest fixture. Copy this file and `retry_client.py` next to your
own wrangler.jsonc and change CONFIG:

    pytest examples/retry

`emu_up` starts emu on a free port and removes everything it made when the test ends, also when
it fails. What it returns can kill, pause and read an instance (`kill`, `pause`, `unpause`,
`logs`), wait for a state (`wait_for`) and list the requests the front answered (`requests`)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests
from retry_client import DISCONNECTED, get_with_retry

from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.testing import RunningEmulator, wait_for

pytestmark = pytest.mark.docker
CONFIG = Path(__file__).parent / "wrangler.jsonc"


def test_the_client_retries_when_its_instance_dies_mid_request(emu_up: EmuUp) -> None:
    emu = emu_up(CONFIG, EmulatorOptions(prewarm=1))  # instance-0 is up before the first request
    answers: list[requests.Response] = []

    def call() -> None:
        url = emu.url + "/slow?s=3"
        answers.append(get_with_retry(url, headers={"x-emu-instance": "instance-0"}))

    client = threading.Thread(target=call)
    client.start()
    wait_for(lambda: inflight(emu, "instance-0"), 30, "the request to be inside instance-0")
    emu.kill("instance-0")  # SIGKILL, as a crash would
    client.join(60)

    assert answers and answers[0].status_code == 200, "the retry got a fresh instance"
    tries = [r for r in emu.requests() if r["path"] == "/slow?s=3"]
    assert [(r["status"], r["cold"]) for r in tries] == [(500, False), (200, True)]
    exited = [e for e in emu.events() if e["event"] == "exited"]
    assert exited and exited[0]["exit_code"] == 137
    assert "GET /slow?s=3" in emu.logs("instance-0")  # the fresh container's output


def test_a_paused_instance_makes_the_client_time_out(emu_up: EmuUp) -> None:
    emu = emu_up(CONFIG)
    emu.start_instance("instance-1")
    emu.pause("instance-1")  # frozen: it accepts nothing until unpaused
    with pytest.raises(requests.exceptions.Timeout):
        requests.get(emu.url + "/", headers={"x-emu-instance": "instance-1"}, timeout=1)
    emu.unpause("instance-1")
    answer = requests.get(emu.url + "/", headers={"x-emu-instance": "instance-1"}, timeout=30)
    assert answer.status_code == 200 and DISCONNECTED not in answer.text


def test_getrandom_spreads_requests_over_every_instance(emu_up: EmuUp) -> None:
    emu = emu_up(CONFIG, seed=7)  # a seed makes the instance choice reproducible
    for _ in range(50):
        assert requests.get(emu.url + "/", timeout=30).status_code == 200
    records = emu.requests()[-50:]
    assert all(r["random"] for r in records)
    assert {r["instance"] for r in records} == {"instance-0", "instance-1", "instance-2"}


def inflight(emu: RunningEmulator, name: str) -> bool:
    return bool(emu.instances()[name]["inflight"])
