"""One load run against an emu at a URL, and runs of a project under each setting in turn: the
emu started through the Python API (`Emulator`), the load from a generator process of its own,
`/_emu/status?usage=1` sampled meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from emulator.config import Config
from emulator.options import EmulatorOptions
from emulator.session import Emulator
from emulator.worker.mode import ModeChoice

from . import cost, report, usage
from .profile import Profile
from .sampler import Sampler, busy_share, host_cpu
from .verdict import Reading, verdict

Progress = Callable[[dict[str, Any]], None]
READY_TIMEOUT = 900.0  # an image build may come first
SETTLE_TIMEOUT = 2.5  # worker mode reports request counts once a second


class RunError(Exception):
    """The run could not be made (emu not serving, the generator failed): one line, exit 1."""


@dataclass(frozen=True)
class Run:
    label: str
    mode: str  # "worker", "no-worker", or "running emu at URL"


async def own_emu(
    config: Config,
    mode: ModeChoice,
    measure: Callable[[str], Any],
    on_output: Callable[[str, str], None],
    prewarm: int = 0,
) -> Any:
    """Start an emu of `config` (worker mode when `mode` says), `await measure(url)`, stop it."""
    options = EmulatorOptions(
        worker=mode.worker,
        on_output=on_output,
        on_event=lambda fields, line: None,
        request_feed=False,
        prewarm=prewarm,
    )
    emu = Emulator(config, options)
    async with emu:
        return await measure(emu.url)


async def measure(
    url: str,
    profile: Profile,
    run: Run,
    rates: Mapping[str, Any],
    on_progress: Progress,
    seed: int | None = None,
) -> dict[str, Any]:
    """Drive `url` with `profile`; the report of the run."""
    async with aiohttp.ClientSession() as session:
        sampler = Sampler(url, session)
        await _until_serving(sampler)
        await sampler.sample()
        cpu_before = host_cpu()
        sampling = asyncio.ensure_future(sampler.run())
        try:
            result = await _drive(url, profile, seed, sampler, on_progress, run.label)
        finally:
            sampler.stop()
            await sampling
        await _settle(sampler)
        cpu_after = host_cpu()
        window = report.Window(result["started"], result["started"] + result["wall_s"])
        events = await sampler.events(window.start - 0.5)
    return assemble(
        run,
        profile,
        result,
        sampler.samples,
        events,
        window,
        busy_share(cpu_before, cpu_after),
        rates,
    )


async def _until_serving(sampler: Sampler) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        status = await sampler.status(usage=False)
        if status.get("serving"):
            return
        if any(c.get("image_error") for c in status["classes"]):
            errors = "; ".join(c["image_error"] for c in status["classes"] if c.get("image_error"))
            raise RunError(f"an image is not ready: {errors}")
        if time.monotonic() > deadline:
            raise RunError(f"emu at {sampler.url} is not serving after {READY_TIMEOUT:g} s")
        await asyncio.sleep(0.2)  # polling a condition, with the deadline above


async def _settle(sampler: Sampler) -> None:
    """A last sample once the request counts stop moving (worker mode reports them late)."""

    def total(sample: dict[str, Any]) -> int:
        return sum(
            int(i.get("requests") or 0) for c in sample["status"]["classes"] for i in c["instances"]
        )

    deadline = time.monotonic() + SETTLE_TIMEOUT
    before = total(sampler.samples[-1]) if sampler.samples else -1
    while True:
        await asyncio.sleep(0.4)  # the poll period, with the deadline below
        await sampler.sample()
        now = total(sampler.samples[-1])
        if now == before or time.monotonic() > deadline:
            return
        before = now


class _Feed:
    """The progress, posted to the emu under load for its dashboard (`POST /_emu/load`); an emu
    without that route, or a slow answer, costs the run nothing."""

    def __init__(self, sampler: Sampler, run: str) -> None:
        self.sampler, self.run = sampler, run
        self.sending: set[asyncio.Task[None]] = set()

    def post(self, sample: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._send({"run": self.run, **sample}))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _send(self, body: dict[str, Any]) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            url = self.sampler.url + "/_emu/load"
            timeout = aiohttp.ClientTimeout(total=5)
            async with self.sampler.session.post(url, json=body, timeout=timeout) as resp:
                await resp.read()

    async def flush(self) -> None:
        if self.sending:
            await asyncio.wait(self.sending, timeout=5)


async def _drive(
    url: str,
    profile: Profile,
    seed: int | None,
    sampler: Sampler,
    on_progress: Progress,
    label: str = "load",
) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator.load.driver",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 28,  # the result is one long line
    )
    assert proc.stdin is not None and proc.stdout is not None
    order = {"url": url, "profile": profile.to_json(), "seed": seed}
    proc.stdin.write(json.dumps(order).encode())
    await proc.stdin.drain()
    proc.stdin.close()
    result: dict[str, Any] | None = None
    feed = _Feed(sampler, f"{label} {time.strftime('%H:%M:%S')}")
    try:
        async for line in proc.stdout:
            message = json.loads(line)
            if "progress" in message:
                latest = sampler.samples[-1]["status"] if sampler.samples else None
                progress = {**message["progress"], "running": _running(latest)}
                on_progress(progress)
                feed.post(progress)
            else:
                result = message["result"]
        feed.post({"done": True})
        await feed.flush()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                if result is None:
                    proc.kill()
        await proc.wait()
    if result is None:
        raise RunError(f"the load generator exited with {proc.returncode} before its result")
    return result


def _running(status: dict[str, Any] | None) -> int | None:
    if status is None:
        return None
    return sum(1 for c in status["classes"] for i in c["instances"] if i["state"] in report.HOLDING)


def assemble(
    run: Run,
    profile: Profile,
    result: dict[str, Any],
    samples: list[dict[str, Any]],
    events: list[dict[str, Any]],
    window: report.Window,
    host_busy: float | None,
    rates: Mapping[str, Any],
) -> dict[str, Any]:
    """The report of one run, from what was measured."""
    status = samples[-1]["status"]
    classes = usage.classes(status)
    alive = report.lifetimes(events, samples[0]["status"] if samples else None, window)
    instances = usage.instances(samples, events, alive)
    traffic = report.traffic(result)
    cores = os.cpu_count() or 1
    generator = {
        "cpu_s": result["cpu_s"],
        "cores": round(result["cpu_s"] / window.seconds, 3),
        "late_ms": result["late_ms"],
    }
    use = cost.usage(window.seconds, traffic["requests"], instances, classes, rates)
    throttled = usage.throttled_share(samples)
    vcpu = _peak_vcpu(samples, cores)
    reading = _reading(traffic, classes, throttled, vcpu, cores, host_busy, generator)
    return {
        "label": run.label,
        "mode": run.mode,
        "profile": profile.describe(),
        "duration_s": round(window.seconds, 3),
        **traffic,
        "cold_starts": report.cold_starts(events),
        "instances": instances,
        "instance_seconds": round(sum(i["alive_s"] for i in instances), 3),
        "peak_running": max((report_running(s) for s in samples), default=0),
        "throttled_share": round(throttled, 4),
        "classes": {
            n: {
                "max_instances": c["max_instances"],
                "instance_type": c["instance_type"],
                "instances_n": c["instances_n"],
                "sleep_after_s": c["sleep_after_s"],
            }
            for n, c in classes.items()
        },
        "host": {"cores": cores, "busy_share": host_busy, "vcpu_limits": vcpu},
        "generator": generator,
        "timeline": report.timeline(result, samples, window),
        "verdict": verdict(reading),
        "cost": cost.estimate(use, rates),
    }


def _reading(
    traffic: dict[str, Any],
    classes: dict[str, dict[str, Any]],
    throttled: float,
    vcpu: float,
    cores: int,
    host_busy: float | None,
    generator: dict[str, Any],
) -> Reading:
    top = next((e for e in traffic["errors"] if e["kind"] != "max_instances"), None)
    return Reading(
        no_capacity_share=traffic["no_capacity_share"],
        failed_share=traffic["failed_share"],
        top_error=f"{top['status']} {top['reason']}" if top else None,
        throttled_share=throttled,
        max_instances=", ".join(
            str(c["max_instances"]) if len(classes) == 1 else f"{n} {c['max_instances']}"
            for n, c in classes.items()
        ),
        vcpu_limits=vcpu,
        host_cores=cores,
        host_busy=host_busy,
        generator_busy=generator["cores"],
        p99_ms=traffic["latency_ok_ms"]["p99"],
    )


def report_running(sample: dict[str, Any]) -> int:
    return _running(sample["status"]) or 0


def _peak_vcpu(samples: list[dict[str, Any]], cores: int) -> float:
    """The CPU limits of the instances holding a container, added up, at the busiest sample
    (each capped at the host's cores, as emu caps it)."""
    peak = 0.0
    for sample in samples:
        total = sum(
            min(float(c["instance_type"]["vcpu"]), cores)
            for c in sample["status"]["classes"]
            for i in c["instances"]
            if i["state"] in report.HOLDING
        )
        peak = max(peak, total)
    return round(peak, 4)


def write_json(path: Path, reports: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"runs": reports}, indent=2))
