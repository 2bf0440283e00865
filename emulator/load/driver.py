"""The load generator: a process of its own (`python -m emulator.load.driver`), so that it
neither shares a core with the emu it measures nor hides its own CPU use. It reads
`{"url", "profile", "seed"}` as JSON on stdin and writes JSON lines on stdout: a `progress`
line twice a second, then one `result` line with every response's time, latency and status.

Open-loop pacing (`rps`, `ramp`) counts each latency from the request's intended start, so a
slow server cannot hide behind a waiting client (coordinated omission)."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import resource
import signal
import sys
import time
from typing import Any

import aiohttp

from .profile import Profile, RequestSpec, intended_start, is_json

PROGRESS_EVERY = 0.5
REASON_BYTES = 600  # of an error's body, for its reason


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Driver:
    def __init__(self, url: str, profile: Profile, seed: int | None) -> None:
        self.url = url.rstrip("/")
        self.profile = profile
        self.rng = random.Random(seed)
        self.weights = [r.weight for r in profile.requests]
        self.t0 = 0.0
        self.done: list[float] = []  # seconds from the start, when each answer ended
        self.lat: list[float] = []  # ms
        self.status: list[int] = []  # 0: no HTTP answer (see reasons)
        self.reasons: collections.Counter[tuple[int, str]] = collections.Counter()
        self.sent = 0
        self.inflight = 0
        self.late_ms = 0.0  # how far the open-loop sender fell behind its schedule, at worst
        self._window: list[tuple[float, float]] = []  # (done, ms) since the last progress line

    def pick(self) -> RequestSpec:
        if len(self.weights) == 1:
            return self.profile.requests[0]
        return self.rng.choices(self.profile.requests, self.weights)[0]

    async def one(self, session: aiohttp.ClientSession, spec: RequestSpec, since: float) -> None:
        """Send one request; its latency counts from `since` (perf_counter)."""
        self.sent += 1
        self.inflight += 1
        headers = dict(spec.headers)
        if spec.body is not None and is_json(spec.body):
            headers.setdefault("Content-Type", "application/json")
        code, reason = 0, ""
        try:
            async with session.request(
                spec.method, self.url + spec.path, headers=headers, data=spec.body
            ) as resp:
                code = resp.status
                if code >= 400:
                    raw = await resp.content.read(REASON_BYTES)
                    reason = (
                        raw.decode("utf-8", "replace").strip().splitlines()[0][:200]
                        if raw.strip()
                        else resp.reason or ""
                    )
                await resp.read()
        except TimeoutError:
            reason = f"no answer within {self.profile.timeout:g} s"
        except aiohttp.ClientError as exc:
            reason = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            self.inflight -= 1
        now = time.perf_counter()
        ms = (now - since) * 1000
        self.done.append(now - self.t0)
        self.lat.append(round(ms, 2))
        self.status.append(code)
        self._window.append((now, ms))
        if code == 0 or code >= 500 or code == 429:
            self.reasons[(code, reason)] += 1

    async def closed(self, session: aiohttp.ClientSession) -> None:
        end = self.t0 + self.profile.duration

        async def client() -> None:
            while time.perf_counter() < end:
                await self.one(session, self.pick(), time.perf_counter())

        await asyncio.gather(*(client() for _ in range(self.profile.concurrency)))

    async def open(self, session: aiohttp.ClientSession) -> None:
        tasks: set[asyncio.Task[None]] = set()
        k = 0
        while (due := intended_start(self.profile, k)) != float("inf"):
            at = self.t0 + due
            wait = at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self.late_ms = max(self.late_ms, -wait * 1000)
            task = asyncio.ensure_future(self.one(session, self.pick(), at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.wait(tasks)

    def progress(self) -> dict[str, Any]:
        now = time.perf_counter()
        window, self._window = self._window, []
        ms = sorted(m for _, m in window)
        return {
            "elapsed": round(now - self.t0, 2),
            "sent": self.sent,
            "done": len(self.done),
            "inflight": self.inflight,
            "rps": round(len(window) / PROGRESS_EVERY, 1),
            "p50_ms": round(ms[len(ms) // 2], 1) if ms else None,
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1) if ms else None,
            "errors": sum(self.reasons.values()),
        }

    async def run(self) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.profile.timeout)
        closed = self.profile.pacing == "concurrency"
        limit = self.profile.concurrency if closed else 4000
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
        cpu0, wall0 = _cpu_s(), time.time()
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self.t0 = time.perf_counter()
            reporter = asyncio.ensure_future(self._report())
            try:
                await (self.closed(session) if closed else self.open(session))
            finally:
                reporter.cancel()
            wall_s = time.perf_counter() - self.t0
        return {
            "started": wall0,
            "wall_s": round(wall_s, 3),
            "cpu_s": round(_cpu_s() - cpu0, 3),
            "sent": self.sent,
            "done": [round(d, 4) for d in self.done],
            "lat_ms": self.lat,
            "status": self.status,
            "reasons": [[code, text, n] for (code, text), n in self.reasons.most_common(20)],
            "late_ms": round(self.late_ms, 1),
        }

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            _write({"progress": self.progress()})


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main() -> None:
    # Ctrl-C is emu load's to handle: it ends this process when it stops the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    order = json.load(sys.stdin)
    driver = Driver(order["url"], Profile.from_json(order["profile"]), order.get("seed"))
    _write({"result": asyncio.run(driver.run())})


if __name__ == "__main__":
    main()
