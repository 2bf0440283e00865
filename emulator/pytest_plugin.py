"""pytest fixtures, registered through the `pytest11` entry point when emu is installed.

    def test_health(emu_up):
        emu = emu_up("path/to/wrangler.jsonc", sleep_after="2s")
        quiet = emu_up("other/wrangler.jsonc", EmulatorOptions(worker=False, debug_headers=False))
        assert requests.get(emu.url + "/health").status_code == 200

Every emulator started through `emu_up` is stopped at the end of the test, also when it fails,
and with it every container and network it made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, Unpack

import pytest

from .config import Overrides
from .config.model import OverrideFields
from .options import EmulatorOptions
from .testing import RunningEmulator


class EmuUp(Protocol):
    """What the fixture `emu_up` gives: `emu_up(path, options, **overrides)`."""

    def __call__(
        self,
        path: str | Path,
        options: EmulatorOptions | None = None,
        **overrides: Unpack[OverrideFields],
    ) -> RunningEmulator: ...


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "emu_check_blocking",
        "Fail a test whose emulator's event loop was blocked for longer than this many seconds "
        "(asyncio debug mode); empty: do not check.",
        default="",
    )
    parser.addini(
        "emu_worker",
        "Run the Worker in workerd (true, as emu up does) or emu's own routing (false, "
        "--no-worker) when a test's emu_up(...) does not say.",
        default="true",
    )


@pytest.fixture
def emu_up(request: pytest.FixtureRequest) -> Iterator[EmuUp]:
    """A factory: `emu_up(config_path, options, **overrides)` starts emu and returns it.

    A relative `config_path` is taken from the requesting test file's folder, not from the
    working directory, so a test finds its project wherever pytest runs. The keyword arguments
    are the flags, those of `emulator.config.Overrides` (`instances`, `sleep_after`,
    `start_timeout`, `stop_grace`, `seed`, `host`, `port`, ...; `port` is 0, a free one, unless
    given). `options`, an `EmulatorOptions`, says how emu runs; its `worker` left at None is the
    `emu_worker` ini setting (default true: the Worker runs in workerd as `emu up` runs it).

    What it returns also controls the instances, for faults on demand: `kill`, `signal`,
    `pause`, `unpause`, `start_instance`, `stop_instance`, `logs`, `wait_for` and `requests`.
    """
    started: list[RunningEmulator] = []
    limit = str(request.config.getini("emu_check_blocking")).strip()
    worker = str(request.config.getini("emu_worker")).strip().lower() not in {"false", "0", "no"}
    check_blocking = float(limit) if limit else None

    def start(
        path: str | Path,
        options: EmulatorOptions | None = None,
        **overrides: Unpack[OverrideFields],
    ) -> RunningEmulator:
        options = options or EmulatorOptions()
        if options.worker is None:
            options = dataclasses.replace(options, worker=worker)
        overrides.setdefault("port", 0)
        # From the test file's folder; an absolute path stays as it is.
        config_path = (request.path.parent / path).resolve()
        emu = RunningEmulator.from_path(
            config_path, Overrides(**overrides), options, check_blocking=check_blocking
        )
        started.append(emu)
        return emu

    try:
        yield start
    finally:
        failures = []
        for emu in reversed(started):
            try:
                emu.stop()
            except Exception as exc:  # stop the others all the same
                failures.append(exc)
        if failures:
            raise failures[0]
    blocked = [line for emu in started for line in emu.slow_callbacks]
    if blocked:
        pytest.fail(f"the emulator's event loop was blocked: {blocked}")
