"""`emu load`: rehearse a scaling decision. Drives the project (its own emu, or a running one)
with a load profile and reports capacity, saturation and cost; `--compare` runs it under
several settings one after another. The work is in `emulator/load/`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import Config, ConfigError, Overrides, load_config
from ..config.durations import parse_duration
from ..engine.docker_types import DockerError
from ..front.app import ListenError
from ..load import cost, profile, settings, text
from ..load.profile import Profile, ProfileError
from ..load.run import Run, RunError, measure, own_emu
from ..load.sampler import EmuUnreachable
from ..worker.mode import ModeChoice, choose_mode
from ..worker.runtime import WorkerError
from ..worker.toolchain import ToolchainError

EXIT_BAD_INPUT = 2


class LoadFailed(click.ClickException):
    """One line on stderr; exit 2 for bad input, else 1."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return self.code

    def show(self, file: Any = None) -> None:
        click.echo(f"emu: {self.message}", err=True)


def _seconds(value: str, flag: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise LoadFailed(f"{flag} {value}: {exc}", EXIT_BAD_INPUT) from None
    if seconds <= 0:
        raise LoadFailed(f"{flag} {value}: must be more than 0", EXIT_BAD_INPUT)
    return seconds


def build_profile(kw: dict[str, Any]) -> Profile:
    paced = [k for k in ("concurrency", "rps", "ramp") if kw[k] is not None]
    if len(paced) > 1:
        raise ProfileError("give one of --concurrency, --rps and --ramp")
    headers = tuple(profile.parse_header(h) for h in kw["header"])
    body = kw["body"]
    if body is not None and body.startswith("@"):
        try:
            body = Path(body[1:]).read_text()
        except OSError as exc:
            raise ProfileError(f"--body {kw['body']}: cannot read it ({exc})") from None
    if kw["requests"] is not None:
        requests = profile.parse_requests_file(kw["requests"], headers)
    else:
        method = kw["method"] or ("POST" if body is not None else "GET")
        requests = (profile.request_spec(method, kw["path"], headers, body),)
    duration = _seconds(kw["duration"], "--duration")
    timeout = _seconds(kw["timeout"], "--timeout")
    if kw["rps"] is not None:
        if kw["rps"] <= 0:
            raise ProfileError("--rps must be more than 0")
        return Profile("rps", duration, requests, rps=kw["rps"], timeout=timeout)
    if kw["ramp"] is not None:
        ramp = profile.parse_ramp(kw["ramp"])
        return Profile("ramp", duration, requests, ramp=ramp, timeout=timeout)
    n = kw["concurrency"] or 10
    return Profile("concurrency", duration, requests, concurrency=n, timeout=timeout)


class ProgressLine:
    """One line on stderr, rewritten in place, while a run goes (only on a terminal)."""

    def __init__(self, label: str, duration: float, enabled: bool) -> None:
        self.label, self.duration, self.enabled = label, duration, enabled
        self.shown = False

    def __call__(self, p: dict[str, Any]) -> None:
        if not self.enabled:
            return
        latency = f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms" if p["p50_ms"] is not None else ""
        running = f", {p['running']} instances" if p["running"] is not None else ""
        line = (
            f"{self.label}: {min(p['elapsed'], self.duration):5.1f}/{self.duration:g} s  "
            f"{p['done']:,} answered, {p['rps']:,.0f}/s, {p['inflight']} in flight, "
            f"{p['errors']:,} errors{running}  {latency}"
        )
        sys.stderr.write("\r\x1b[2K" + line)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def _configs(
    config_path: Path | None,
    env: str | None,
    seed: int | None,
    variants: list[settings.Variant],
    mode: ModeChoice,
) -> list[Config]:
    base = Overrides(env=env, port=0, seed=seed)
    found = []
    for variant in variants:
        if mode.worker:
            settings.refuse_in_worker_mode(variant)
        try:
            found.append(load_config(config_path, settings.overrides(base, variant)))
        except ConfigError as exc:
            raise LoadFailed(str(exc), EXIT_BAD_INPUT) from None
    return found


def run_load(kw: dict[str, Any], running_url: Callable[[Path | None, str | None], str]) -> None:
    try:
        prof = build_profile(kw)
        variants = settings.variants(kw["set_"], kw["compare"])
        rates = cost.load_rates(kw["rates"])
    except (ProfileError, settings.SettingError, cost.RatesError) as exc:
        raise LoadFailed(str(exc), EXIT_BAD_INPUT) from None
    tty = sys.stderr.isatty() and not kw["as_json"]
    external = kw["url"] or (running_url(kw["config_path"], kw["env"]) if kw["running"] else None)
    if external is not None and (kw["set_"] or kw["compare"]):
        raise LoadFailed(
            "--set and --compare need emu load's own emu; leave out --url and --running",
            EXIT_BAD_INPUT,
        )
    try:
        if external is not None:
            reports = [
                _one(
                    external.rstrip("/"),
                    prof,
                    Run("running emu", f"at {external}"),
                    rates,
                    kw["seed"],
                    tty,
                )
            ]
        else:
            mode = choose_mode(kw["worker"])
            if mode.worker and kw["prewarm"]:
                raise LoadFailed(
                    "--prewarm: in worker mode the Worker's Durable Objects start the "
                    "instances; prewarm with --no-worker",
                    EXIT_BAD_INPUT,
                )
            try:
                configs = _configs(kw["config_path"], kw["env"], kw["seed"], variants, mode)
            except settings.SettingError as exc:
                raise LoadFailed(str(exc), EXIT_BAD_INPUT) from None
            reports = asyncio.run(_own_runs(configs, variants, mode, prof, rates, kw, tty))
    except (RunError, EmuUnreachable, ListenError, ToolchainError, DockerError) as exc:
        raise LoadFailed(str(exc)) from None
    except WorkerError as exc:
        raise LoadFailed(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:  # asyncio.run has stopped the emu and the generator by now
        raise LoadFailed("interrupted: no report", 130) from None
    _output(reports, kw)


def _one(
    url: str, prof: Profile, run: Run, rates: dict[str, Any], seed: int | None, tty: bool
) -> dict[str, Any]:
    line = ProgressLine(run.label, prof.duration, tty)
    try:
        return asyncio.run(measure(url, prof, run, rates, line, seed))
    finally:
        line.close()


async def _own_runs(
    configs: list[Config],
    variants: list[settings.Variant],
    mode: ModeChoice,
    prof: Profile,
    rates: dict[str, Any],
    kw: dict[str, Any],
    tty: bool,
) -> list[dict[str, Any]]:
    reports = []
    mode_name = "worker mode" if mode.worker else "no-worker mode"
    for config, variant in zip(configs, variants, strict=True):
        line = ProgressLine(variant.label, prof.duration, tty)
        if tty:
            sys.stderr.write(f"{variant.label}: starting emu ({mode_name})\n")
        run = Run(variant.label, mode_name)

        async def go(url: str, run: Run = run, line: ProgressLine = line) -> dict[str, Any]:
            return await measure(url, prof, run, rates, line, kw["seed"])

        try:
            reports.append(
                await own_emu(config, mode, go, on_output=lambda s, t: None, prewarm=kw["prewarm"])
            )
        finally:
            line.close()
    return reports


def _output(reports: list[dict[str, Any]], kw: dict[str, Any]) -> None:
    if kw["html"] is not None:
        from ..load import html

        html.write(kw["html"], reports)
    if kw["as_json"]:
        click.echo(json.dumps({"runs": reports}, indent=2))
        return
    for r in reports:
        click.echo(text.one(r) + "\n")
    if len(reports) > 1:
        click.echo(text.side_by_side(reports))
    if kw["html"] is not None:
        click.echo(f"report: {kw['html']}")


F = TypeVar("F", bound=Callable[..., Any])


def _load_options(fn: F) -> F:
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


_OPTIONS = [
    click.option("--url", help="Drive the emu up at URL instead of starting one."),
    click.option(
        "--running",
        is_flag=True,
        help="Drive this config's running emu up (as emu status finds it).",
    ),
    click.option(
        "--concurrency",
        "-n",
        type=click.IntRange(min=1),
        help="Closed loop: N clients, each sending when its last answer came.  [default: 10]",
    ),
    click.option(
        "--rps",
        type=float,
        help="Open loop: R requests per second, latency from each one's intended start.",
    ),
    click.option(
        "--ramp",
        metavar="FROM:TO",
        help="Open loop: a rate growing from FROM to TO requests per second.",
    ),
    click.option("--duration", "-d", default="10s", show_default=True, help="How long to send."),
    click.option("--method", "-X", help="[default: GET, or POST with --body]"),
    click.option("--path", default="/", show_default=True, help="Path and query to request."),
    click.option(
        "--header",
        "-H",
        multiple=True,
        metavar="'NAME: VALUE'",
        help="A header of every request (repeatable).",
    ),
    click.option("--body", help="The body of every request, or @FILE."),
    click.option(
        "--requests",
        type=click.Path(path_type=Path, dir_okay=False),
        help="A file of weighted requests: WEIGHT METHOD PATH [BODY] a line.",
    ),
    click.option("--timeout", default="30s", show_default=True, help="One request's time limit."),
    click.option(
        "--set",
        "set_",
        multiple=True,
        metavar="K=V[,K=V]",
        help="A setting of every run: max_instances, instance_type, sleep_after, "
        "instances, env.NAME.",
    ),
    click.option(
        "--compare",
        multiple=True,
        metavar="K=V[,K=V]",
        help="One run under these settings (repeatable); a single one is compared "
        "with the config as it is.",
    ),
    click.option(
        "--prewarm",
        type=click.IntRange(min=0),
        default=0,
        metavar="N",
        help="Start instance-0 .. instance-(N-1) before the load (no-worker mode).",
    ),
    click.option("--seed", type=int, help="Seed the routing and the request mix."),
    click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    click.option(
        "--html",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Also write the report, with charts, to this HTML file.",
    ),
    click.option(
        "--rates",
        type=click.Path(path_type=Path, dir_okay=False),
        help="A rates file instead of the one emu ships (read from Cloudflare's docs).",
    ),
    click.option(
        "--worker/--no-worker",
        default=None,
        help="Worker mode (default when Node.js 20+ is on PATH) or no-worker mode, "
        "for emu load's own emu.",
    ),
]


def register(
    main: click.Group,
    options: Callable[[Callable[..., Any]], Callable[..., Any]],
    running_url: Callable[[Path | None, str | None], str],
) -> None:
    """Add `emu load` to `emu`; `options` stacks --config and --env on it."""

    @main.command(short_help="Drive the project under its real limits; report capacity and cost.")
    @options
    @_load_options
    def load(**kw: Any) -> None:
        """Drive the project under its real limits (instance types, max_instances, sleepAfter)
        and report throughput, latency, the status mix, cold starts, each instance's CPU and
        memory, a verdict and the cost. Starts its own emu of the config, unless --url or
        --running names one."""
        run_load(kw, running_url)
