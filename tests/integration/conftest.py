from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.worker import WorkerEmu


@pytest.fixture
def running() -> Iterator[list[WorkerEmu]]:
    """Every WorkerEmu a test starts (tests.support.worker.start) is stopped when it ends."""
    started: list[WorkerEmu] = []
    yield started
    for emu in started:
        emu.stop()
