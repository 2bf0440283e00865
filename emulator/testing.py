"""Running an Emulator from synchronous code (tests, scripts): on a loop in a thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from .config import Config, Overrides, load_config
from .server import Emulator

T = TypeVar("T")


class RunningEmulator:
    """`emu up` in a background thread. Use as a context manager, or call `stop()`.

    >>> with RunningEmulator.from_path("wrangler.jsonc", Overrides(sleep_after="2s")) as emu:
    ...     requests.get(emu.url + "/health")
    """

    def __init__(
        self,
        config: Config,
        *,
        start_timeout: float = 900.0,
        check_blocking: float | None = None,
        **options: Any,
    ) -> None:
        """`options` go to `Emulator`: `on_output`, `follow_logs`, `watch`, `access_log`.

        With `check_blocking` (seconds), the loop runs in asyncio's debug mode and every
        callback that held it longer is recorded in `slow_callbacks`: a blocking call on the
        loop shows up there. Debug mode also refuses loop calls from other threads."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.name = f"emu-loop-{id(self):x}"
        self.slow_callbacks: list[str] = []
        self._slow_handler: logging.Handler | None = None
        if check_blocking is not None:
            self._loop.set_debug(True)
            self._loop.slow_callback_duration = check_blocking
            self._slow_handler = _SlowCallbacks(self._thread.name, self.slow_callbacks)
            logging.getLogger("asyncio").addHandler(self._slow_handler)
        self._thread.start()
        self._stopped = False
        try:
            self.emulator = self.call(self._make(config, options), start_timeout)
        except BaseException:
            self._close_loop()
            raise

    @classmethod
    def from_path(
        cls, path: str | Path, overrides: Overrides | None = None, **kwargs: Any
    ) -> RunningEmulator:
        overrides = overrides or Overrides()
        if overrides.port is None:
            overrides = Overrides(**{**overrides.__dict__, "port": 0})
        config = load_config(Path(path), overrides)
        kwargs.setdefault("reload", lambda: load_config(config.path, overrides))
        return cls(config, **kwargs)

    @staticmethod
    async def _make(config: Config, options: dict[str, Any]) -> Emulator:
        emu = Emulator(config, **options)
        await emu.start()
        return emu

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the emulator's loop and wait for its result."""
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    @property
    def url(self) -> str:
        return self.emulator.url

    def status(self) -> dict[str, Any]:
        async def snap() -> dict[str, Any]:
            return self.emulator.status()

        return self.call(snap())

    def events(self) -> list[dict[str, Any]]:
        async def snap() -> list[dict[str, Any]]:
            return list(self.emulator.events)

        return self.call(snap())

    def instances(self, class_name: str | None = None) -> dict[str, dict[str, Any]]:
        """name -> instance snapshot, for one class (default: the first)."""
        classes = self.status()["classes"]
        cls = next(c for c in classes if class_name in (None, c["class_name"]))
        return {i["name"]: i for i in cls["instances"]}

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.call(self.emulator.stop(), timeout=120)
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        if self._slow_handler is not None:
            logging.getLogger("asyncio").removeHandler(self._slow_handler)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SlowCallbacks(logging.Handler):
    """Collects asyncio's "Executing <callback> took N seconds" warnings from one loop's thread."""

    def __init__(self, thread_name: str, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self._thread_name = thread_name
        self._into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName == self._thread_name and "took" in record.getMessage():
            self._into.append(record.getMessage())
