"""The `emu` command: a thin layer over `emulator.session.Emulator`; what it prints is in
`output.py`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from .. import config as config_mod
from ..config import Config, ConfigError, Overrides, default_port, find_config, load_config
from ..engine.choice import Engine, EngineError
from ..engine.docker_backend import DockerBackend
from ..engine.docker_types import ContainerInfo, DockerError, DockerUnavailable
from ..front.app import ListenError
from ..instances.spec import Capacity, capacity_note
from ..options import EmulatorOptions
from ..runs import labels
from ..runs.live import emu_states, live_runs, running_urls, stop_emu_up
from ..runs.sweep import remove_images, sweep_project, sweep_session
from ..session import Emulator
from ..worker.describe import render as render_bindings
from ..worker.mode import choose_mode, describe_mode
from ..worker.runtime import WorkerError
from ..worker.toolchain import ToolchainError
from . import control as cli_control
from . import load as cli_load
from . import worker as cli_worker
from .gc_tuning import settle_gc
from .options import (
    config_option,
    engine_option,
    env_option,
    flag_overrides,
    pop_runtime_options,
    runtime_options,
    settings_options,
    worker_option,
)
from .output import Printer, StatusScreen, ps_json, ps_table, source_width, status_table
from .worker import describe

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BAD_CONFIG = 2


def _engine(forced: str | None) -> Engine:
    try:
        return Engine.detect(forced)
    except EngineError as exc:
        _fail(str(exc), EXIT_BAD_CONFIG)


def _backend(forced: str | None) -> DockerBackend:
    """For ps and down: a Swarm's services are listed and removed with the containers."""
    return _engine(forced).backend(start_timeout=20.0, stop_grace=10.0)


def _load(path: Path | None, overrides: Overrides = Overrides()) -> Config:
    try:
        config = load_config(path, overrides)
    except ConfigError as exc:
        click.echo(f"emu: {exc}", err=True)
        sys.exit(EXIT_BAD_CONFIG)
    for warning in config.warnings:
        click.echo(f"emu: warning: {warning}", err=True)
    return config


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"emu: {message}", err=True)
    sys.exit(code)


T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except DockerUnavailable as exc:
        _fail(f"{exc}. Is dockerd running? (try: docker info)")
    except DockerError as exc:
        _fail(f"Docker: {exc}")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="emu")
def main() -> None:
    """emu: run the Cloudflare Containers of a wrangler config on local Docker."""
    logging.basicConfig(level=logging.WARNING, format="emu: %(message)s")


@main.command()
@config_option
@settings_options
@click.option("--logs/--no-logs", default=True, show_default=True, help="Show container output.")
@click.option(
    "--json-logs",
    is_flag=True,
    help="Print every line as a JSON object; emu's events as fields (event, class, instance, ...).",
)
@click.option("--watch", is_flag=True, help="Rebuild an image when its build context changes.")
@click.option("--access-log", is_flag=True, help="A line per request: instance, status, time.")
@click.option(
    "--reaper/--no-reaper",
    default=True,
    show_default=True,
    help="A watchdog that removes this run's containers if emu is killed.",
)
@click.option(
    "--prewarm",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Start instance-0 .. instance-(N-1) of each class before serving.",
)
@click.option(
    "--request-feed/--no-request-feed",
    default=True,
    show_default=True,
    help="Record each request for the dashboard and /_emu/requests.",
)
@click.option(
    "--debug-headers/--no-debug-headers",
    default=True,
    show_default=True,
    help="Name the instances that served a response in its x-emu-instance header.",
)
@engine_option
@worker_option
@runtime_options
def up(config_path: Path | None, logs: bool, json_logs: bool, **kw: Any) -> None:
    """Serve the Worker's containers on http://HOST:PORT until Ctrl-C."""
    runtime = pop_runtime_options(kw)
    engine = _engine(kw.pop("engine"))
    worker = kw.pop("worker")
    settings = {k: kw.pop(k) for k in ("watch", "access_log", "reaper", "prewarm")}
    feed, headers = kw.pop("request_feed"), kw.pop("debug_headers")
    overrides = flag_overrides(kw)
    config = _load(config_path, overrides)
    internal = [c.class_name for c in config.classes if not c.enable_internet]
    refused = engine.refusal(internal)
    if refused is not None:  # said now, not as a 500 on each start
        _fail(refused, EXIT_BAD_CONFIG)
    out = Printer(json_logs, source_width(config.classes))
    options = EmulatorOptions(
        worker=worker,
        runtime=runtime,
        follow_logs=logs,
        watch=settings["watch"],
        access_log=settings["access_log"],
        reaper=settings["reaper"],
        prewarm=settings["prewarm"],
        request_feed=feed,
        debug_headers=headers,
        engine=engine,
        reload=functools.partial(load_config, config.path, overrides),
        on_output=out,
        on_event=out.event,
    )
    _run(_up(config, options, out))


def _emulator(config: Config, options: EmulatorOptions) -> Emulator:
    """The Emulator, or the line that says why there is none (exit 2: the Worker's source)."""
    try:
        emu = Emulator(config, options)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_CONFIG)
    mode = emu.mode
    if not mode.worker and options.runtime.request_timeout is not None:
        _fail("--request-timeout bounds the Worker's requests: worker mode only", EXIT_BAD_CONFIG)
    if not mode.worker and mode.reason != "--no-worker":
        click.echo(f"emu: running without the Worker (--no-worker): {mode.reason}", err=True)
    return emu


async def _up(config: Config, options: EmulatorOptions, out: Printer) -> None:
    emu = _emulator(config, options)
    signals = _Signals(emu, out)
    start = asyncio.ensure_future(emu.start())
    stopped = asyncio.ensure_future(signals.stop.wait())
    await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not start.done():  # Ctrl-C during the build: start() cleans up what it made
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await start
        return
    stopped.cancel()
    try:
        start.result()
    except (ListenError, ToolchainError) as exc:
        _fail(str(exc))
    except WorkerError as exc:
        sys.stdout.flush()  # the runtime's own lines first
        _fail(str(exc), exc.exit_code)
    settle_gc()
    describe(emu, out)
    failure = await _until_stopped(emu, signals)
    await emu.stop()
    out("emu", "stopped; all containers and networks removed")
    if failure is not None:
        sys.stdout.flush()
        _fail(failure)


async def _until_stopped(emu: Emulator, signals: _Signals) -> str | None:
    """Until Ctrl-C (None), or until emu cannot go on: why (the Workers runtime died too often)."""
    failed = asyncio.ensure_future(emu.wait_failed())
    stopped = asyncio.ensure_future(signals.stop.wait())
    await asyncio.wait({failed, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for waiter in (failed, stopped):
        waiter.cancel()
    return failed.result() if failed.done() and not failed.cancelled() else None


class _Signals:
    """Ctrl-C and SIGTERM: the first sets `stop`; a second one forces (removes everything at
    once and exits)."""

    def __init__(self, emu: Emulator, out: Printer) -> None:
        self._emu = emu
        self._out = out
        self._loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self._count = 0
        self._first = 0.0
        self._force: list[asyncio.Future[None]] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        if self._count and self._loop.time() - self._first < 1.0:
            return  # the same Ctrl-C delivered twice (to the process and its group)
        self._count += 1
        if self._count == 1:
            self._first = self._loop.time()
            self._out("emu", "stopping (Ctrl-C again to force)")
            self.stop.set()
        else:
            self._out("emu", "forced: removing containers now")
            self._force.append(asyncio.ensure_future(_force(self._emu)))


async def _force(emu: Emulator) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(sweep_session(emu.docker, emu.session_id), 20)
    sys.stdout.flush()
    os._exit(130)


@main.command("config")
@config_option
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@worker_option
@runtime_options
def config_cmd(config_path: Path | None, as_json: bool, **kw: Any) -> None:
    """Print the resolved settings and where each came from; in worker mode, every binding
    and var of the Worker too (secrets masked)."""
    mode = choose_mode(kw.pop("worker"))
    runtime = pop_runtime_options(kw)
    config = _load(config_path, flag_overrides(kw))
    notes = _engine_notes(config)
    bindings = cli_worker.bindings_of(config, mode, runtime) if mode.worker else None
    if as_json:
        data = config_mod.as_json(config)
        data["mode"] = {"worker": mode.worker, "reason": mode.reason}
        if bindings is not None:
            data["bindings"] = bindings
        click.echo(json.dumps({**data, "engine_notes": notes}, indent=2))
    else:
        click.echo(f"mode: {describe_mode(mode)}")
        click.echo(config_mod.describe(config))
        if bindings is not None:
            click.echo("\n" + render_bindings(bindings))
        if notes:
            click.echo("\nthis Docker engine\n" + "\n".join(f"  - {n}" for n in notes))


def _engine_notes(config: Config) -> list[str]:
    """What of each class's instance type this machine's engine cannot give (as `emu up` says
    it); nothing when there is no engine to ask."""

    async def ask() -> Capacity | None:
        try:
            async with DockerBackend() as docker:
                info = await docker.connect()
        except DockerError:
            return None
        return Capacity(info.cpus, info.memory_bytes)

    capacity = asyncio.run(ask())
    if capacity is None:
        return []
    notes = [(c.class_name, capacity_note(c.instance_type, capacity)) for c in config.classes]
    return [f"{name}: {note}" for name, note in notes if note is not None]


def _project(config_path: Path | None, all_projects: bool) -> str | None:
    """The project of the config at `config_path`; None for every project."""
    if all_projects:
        return None
    # Only the file's path is needed: a config broken since is no reason to leave containers.
    try:
        return labels.project_id(find_config(config_path))
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_CONFIG)


@main.command(short_help="List the project's containers, from Docker labels.")
@config_option
@click.option("--all", "all_projects", is_flag=True, help="Every project's, not just this one's.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@engine_option
def ps(config_path: Path | None, all_projects: bool, as_json: bool, engine: str | None) -> None:
    """List the project's instances (from Docker labels; works from any terminal). STATE is
    emu's (healthy, stopping, ...) where the project's emu up runs, else Docker's."""
    found = labels.project_labels(_project(config_path, all_projects))

    async def list_() -> tuple[list[ContainerInfo], list[str]]:
        async with _backend(engine) as docker:
            await docker.connect()
            urls = await running_urls(docker, found.get(labels.PROJECT), own=True)
            return await docker.list_containers(found), list(urls)

    rows, urls = _run(list_())
    states = emu_states(urls)  # where an emu up runs, its own state names, as emu status shows
    if as_json:
        click.echo(ps_json(rows, states))
    elif not rows:
        click.echo("no instances running")
    else:
        click.echo(ps_table(rows, states))


@main.command(short_help="Show a running emu up's instances.")
@config_option
@env_option("The one serving env.NAME, when several of this config run.")
@click.option("--url", help="The emu up to ask.  [default: the running one of this config]")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON of /_emu/status.")
@click.option(
    "--watch",
    "-w",
    is_flag=True,
    help="Print it again every second until Ctrl-C (JSON: a line each).",
)
def status(
    config_path: Path | None, env: str | None, url: str | None, as_json: bool, watch: bool
) -> None:
    """Show a running emu up's instances: state, in-flight, requests, cold start, errors."""

    def fetch() -> dict[str, Any] | str:
        # Without --url, looked up each time: emu up may have restarted on another port.
        return _fetch_status(url or _running_url(config_path, env, own=True))

    if not watch:
        data = fetch()
        if isinstance(data, str):
            _fail(f"{data}; start one, or pass --url")
        click.echo(json.dumps(data, indent=2) if as_json else status_table(data))
        return
    screen = StatusScreen(tty=sys.stdout.isatty())
    try:
        while True:
            data = fetch()
            if as_json:
                if not isinstance(data, str):
                    click.echo(json.dumps(data))
            else:
                table = f"{data}; waiting for it" if isinstance(data, str) else status_table(data)
                head = f"{time.strftime('%H:%M:%S')}  every second; Ctrl-C to stop\n\n"
                click.echo(screen.frame(head + table), nl=False)
            time.sleep(1)  # the refresh period, not a wait for an outcome
    except KeyboardInterrupt:
        pass
    finally:
        click.echo(screen.close(), nl=False)


def _fetch_status(url: str) -> dict[str, Any] | str:
    """/_emu/status of the emu up at `url`, or why there is none."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_emu/status?usage=1", timeout=15) as resp:
            data: dict[str, Any] = json.load(resp)
            return data
    except (OSError, ValueError) as exc:
        return f"no emu up answers at {url} ({exc})"


def _running_url(config_path: Path | None, env: str | None, own: bool = False) -> str:
    """Where this config's `emu up` (of environment `env`, when given) listens (with `own`:
    where emu itself answers `/_emu/*`): its network says. Without Docker, or when none runs:
    http://127.0.0.1:<dev.port or 8787>."""
    try:
        path = find_config(config_path)
    except ConfigError as exc:
        _fail(str(exc), EXIT_BAD_CONFIG)

    async def ask() -> dict[str, str]:
        try:
            async with DockerBackend() as docker:
                await docker.connect()
                return await running_urls(docker, labels.project_id(path), own=own)
        except DockerError:
            return {}

    urls = {u: e for u, e in asyncio.run(ask()).items() if env is None or e == env}
    if len(urls) > 1:
        each = ", ".join(f"{u} ({f'env {e}' if e else 'top level'})" for u, e in urls.items())
        _fail(f"several emu up of {path.name} are running: {each}; pass --env or --url")
    if urls:
        return next(iter(urls))
    try:
        port = default_port(path)
    except ConfigError:  # a config broken since: emu up may still run on the default port
        port = config_mod.DEFAULT_PORT
    return f"http://127.0.0.1:{port}"


@main.command(short_help="Remove the project's containers and networks.")
@config_option
@click.option("--all", "all_projects", is_flag=True, help="Every project's, not just this one's.")
@click.option("--images", is_flag=True, help="Also remove the images emu built for the project.")
@click.option(
    "--force",
    is_flag=True,
    help="Remove them also from under a running emu up, instead of asking it to stop.",
)
@engine_option
def down(
    config_path: Path | None, all_projects: bool, images: bool, force: bool, engine: str | None
) -> None:
    """Remove all of the project's containers and networks. A running emu up of the project is
    asked to stop (SIGTERM) first, and emu down waits for it."""
    project = _project(config_path, all_projects)

    async def live() -> dict[int, str]:
        async with _backend(engine) as docker:
            await docker.connect()
            return await live_runs(docker, project)

    for pid in sorted(_run(live())):
        if force:
            click.echo(f"emu up (pid {pid}) is running: removing its containers from under it")
        else:
            click.echo(f"emu up (pid {pid}) is running: asking it to stop (SIGTERM)")
            problem = stop_emu_up(pid)
            if problem is not None:
                _fail(problem)
            click.echo(f"emu up (pid {pid}) stopped")

    async def sweep() -> list[str]:
        async with _backend(engine) as docker:
            await docker.connect()
            removed = await sweep_project(docker, project, only_dead=False)
            if images:
                removed += await remove_images(docker, project)
            return removed

    removed = _run(sweep())
    for name in removed:
        click.echo(f"removed {name}")
    click.echo(f"{len(removed)} removed")


def _where_options(fn: F) -> F:
    env = env_option("The one serving env.NAME, when several of this config run.")
    return config_option(env(fn))


# At the end: the control and load commands take this module's helpers.
cli_control.register(main, _where_options, functools.partial(_running_url, own=True))
cli_worker.register(main, up)
cli_load.register(main, _where_options, _running_url)
