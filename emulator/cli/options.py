"""The `emu` command's shared options: each defined once and stacked on the commands that
take it (as pip-tools does)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import Overrides
from ..config.durations import parse_duration
from ..engine.choice import EngineKind
from ..worker.runtime import RuntimeOptions

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="wrangler.json, wrangler.jsonc or wrangler.toml (default: the one in this folder).",
    )(fn)


def env_option(help: str) -> Callable[[F], F]:
    """--env/-e NAME, which reads CLOUDFLARE_ENV when not given, as wrangler does."""
    return click.option(
        "--env",
        "-e",
        metavar="NAME",
        envvar="CLOUDFLARE_ENV",
        help=f"{help}  [default: $CLOUDFLARE_ENV]",
    )


def engine_option(fn: F) -> F:
    return click.option(
        "--engine",
        type=click.Choice([k.value for k in EngineKind]),
        envvar="EMU_ENGINE",  # compose.swarm.yaml sets it for emu in a stack
        help="Where instances run: local, remote (publish ports on the engine's host) or swarm "
        "(a service each); also $EMU_ENGINE.  [default: remote when DOCKER_HOST is tcp:// or "
        "ssh://, else local]",
    )(fn)


def settings_options(fn: F) -> F:
    """The flags that override the config for every class; shared by `up` and `config`."""
    options = [
        env_option("Read the wrangler environment env.NAME, as wrangler dev --env does."),
        click.option("--instances", type=int, help="N of getRandom(binding, N) for every class."),
        click.option("--sleep-after", help="Idle time before an instance stops: 30, 30s, 2m, 1h."),
        click.option(
            "--start-timeout", help="How long a start may take to answer.  [default: 20s]"
        ),
        click.option(
            "--stop-grace",
            help="SIGTERM to SIGKILL on stop. A container that ignores SIGTERM runs and is "
            "served until then, and gets SIGTERM again after its next idle period.  "
            "[default: 15m]",
        ),
        click.option(
            "--header-timeout",
            help="Time a client may take to send a request's headers.  [default: 10s]",
        ),
        click.option(
            "--keepalive-timeout",
            help="Idle time before a client connection is closed.  [default: 60s]",
        ),
        click.option(
            "--max-connections",
            type=int,
            help="Open client connections; more are answered 503.  [default: 1000]",
        ),
        click.option(
            "--seed", type=int, help="Seed the instance choice, for reproducible routing."
        ),
        click.option("--host", help="Address to listen on.  [default: 127.0.0.1]"),
        click.option(
            "--port",
            type=int,
            help="Port to listen on; 0 picks a free one.  [default: dev.port, else 8787]",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def flag_overrides(kw: dict[str, Any]) -> Overrides:
    from_variable = (
        click.get_current_context().get_parameter_source("env")
        == click.core.ParameterSource.ENVIRONMENT
    )
    return Overrides(
        env=kw.get("env"),
        env_from="$CLOUDFLARE_ENV" if from_variable else "flag --env",
        instances=kw.get("instances"),
        sleep_after=kw.get("sleep_after"),
        start_timeout=kw.get("start_timeout"),
        stop_grace=kw.get("stop_grace"),
        header_timeout=kw.get("header_timeout"),
        keepalive_timeout=kw.get("keepalive_timeout"),
        max_connections=kw.get("max_connections"),
        seed=kw.get("seed"),
        host=kw.get("host"),
        port=kw.get("port"),
    )


def worker_option(fn: F) -> F:
    return click.option(
        "--worker/--no-worker",
        default=None,
        help="Run the Worker itself in workerd (the default), or let emu route requests as "
        "getRandom does.",
    )(fn)


def _parse_var(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> Any:
    parsed = {}
    for value in values:
        key, sep, rest = value.partition(":")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY:VALUE", ctx, param)
        parsed[key] = rest
    return parsed


def _parse_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; e.g. 30s, 2m", ctx, param) from None
    if seconds <= 0:
        raise click.BadParameter("must be more than 0", ctx, param)
    return seconds


def runtime_options(fn: F) -> F:
    """`wrangler dev`'s settings for the Worker, on `up` and `dev` alike."""
    options = [
        click.option(
            "--var",
            "vars_",
            multiple=True,
            metavar="KEY:VALUE",
            callback=_parse_var,
            help="A var for the Worker, over vars, .dev.vars and .env (repeatable).",
        ),
        click.option(
            "--persist-to",
            type=click.Path(path_type=Path, file_okay=False),
            help="Where KV, R2, D1, Durable Objects, ... keep their data, in wrangler's layout.  "
            "[default: .wrangler/state beside the config]",
        ),
        click.option(
            "--persist/--no-persist",
            default=True,
            help="--no-persist: start clean, and keep nothing after.",
        ),
        click.option(
            "--inspector-port",
            type=click.IntRange(1, 65535),
            help="Chrome DevTools for the Worker on this port (chrome://inspect).",
        ),
        click.option(
            "--test-scheduled",
            is_flag=True,
            help="Fire the Worker's scheduled handler on GET /__scheduled?cron=...",
        ),
        click.option(
            "--extra-worker",
            "extra_workers",
            multiple=True,
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            metavar="CONFIG",
            help="Another Worker's wrangler config, run beside for service bindings (repeatable; "
            "wrangler dev -c A -c B).",
        ),
        click.option(
            "--request-timeout",
            callback=_parse_timeout,
            metavar="D",
            help="A request the Worker (or a container) has not answered after D (30s, 2m) gets "
            "a 504, and its instance is freed; worker mode only.  [default: none, as on the "
            "platform, which bounds CPU time, not wall time]",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def pop_runtime_options(kw: dict[str, Any]) -> RuntimeOptions:
    return RuntimeOptions(
        vars=kw.pop("vars_"),
        persist=kw.pop("persist"),
        persist_to=kw.pop("persist_to"),
        inspector_port=kw.pop("inspector_port"),
        test_scheduled=kw.pop("test_scheduled"),
        extra_workers=tuple(kw.pop("extra_workers")),
        request_timeout=kw.pop("request_timeout"),
    )
