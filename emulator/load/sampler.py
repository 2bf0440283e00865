"""What emu says during a run: `/_emu/status?usage=1` once a second (memory, CPU, throttling of
every running instance), `/_emu/events` at the end, and the host's CPU from /proc/stat."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp

SAMPLE_EVERY = 1.0


class EmuUnreachable(Exception):
    """No emu answers at the URL: one line, exit 1."""


class Sampler:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.samples: list[dict[str, Any]] = []  # {"time": wall clock, "status": ...}
        self._stop = asyncio.Event()

    async def status(self, usage: bool = True) -> dict[str, Any]:
        url = self.url + "/_emu/status" + ("?usage=1" if usage else "")
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
                resp.raise_for_status()
                data: dict[str, Any] = await resp.json()
                return data
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise EmuUnreachable(f"no emu up answers at {self.url} ({exc})") from None

    async def sample(self) -> None:
        began = time.time()
        data = await self.status()
        self.samples.append({"time": (began + time.time()) / 2, "status": data})

    async def run(self) -> None:
        """Sample until `stop()`; a sample that fails is skipped (emu is busy, not gone)."""
        while not self._stop.is_set():
            with contextlib.suppress(EmuUnreachable):
                await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop.set()

    async def events(self, since: float) -> list[dict[str, Any]]:
        try:
            async with self.session.get(self.url + "/_emu/events") as resp:
                found: list[dict[str, Any]] = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return []
        return [e for e in found if e.get("time", 0) >= since]


def host_cpu() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat; None off Linux."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [float(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_share(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])
