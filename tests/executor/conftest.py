from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from emulator.blocking import MeasuredLoop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], MeasuredLoop]]:
    """The executor's tests run on loops that note their thread's waits for a CPU, so that the
    blocked-loop check (test_app.py) can take them off (emulator/blocking.py)."""
    return {"measured": MeasuredLoop}
