"""`emu dev`, a drop-in for `wrangler dev` (its common flags, and its `Ready on http://...` line
once it serves), and `emu wrangler`, the pinned wrangler itself, run by emu's Node.js: for
`wrangler d1 migrations apply --local`, `wrangler kv key list --local` and the like on the same
`.wrangler/state` that emu's Worker uses."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..config import Config, ConfigError, Overrides, load_config
from ..config.durations import format_duration
from ..session import Emulator
from ..worker.describe import describe_bindings
from ..worker.mode import ModeChoice, describe_mode
from ..worker.project import worker_project
from ..worker.runtime import RuntimeOptions, WorkerError, WorkerRuntime
from ..worker.toolchain import (
    CONTAINERS_PACKAGE,
    DEFAULT_CONTAINERS_VERSION,
    PINNED,
    NodeInfo,
    ToolchainError,
    ensure_packages,
    find_node,
    installed,
    package_dir,
    plan_packages,
)
from .options import config_option, env_option, runtime_options
from .output import Printer


def register(main: click.Group, up: click.Command) -> None:
    for command in (_dev_command(up), install, bundle_cmd, wrangler):
        main.add_command(command)


def _dev_command(up: click.Command) -> click.Command:
    @click.command(
        "dev",
        short_help="emu up with wrangler dev's flags, for scripts that spawn wrangler dev.",
    )
    @config_option
    @env_option("env.NAME.")
    @click.option("--ip", "host", help="Address to listen on.  [default: 127.0.0.1]")
    @click.option("--port", type=int, help="Port to listen on.  [default: dev.port, else 8787]")
    @click.option("--local", is_flag=True, help="Accepted: emu is always local.")
    @click.option("--remote", is_flag=True, hidden=True)
    @click.option("--watch/--no-watch", default=True, help="Re-bundle on changes (as wrangler).")
    @runtime_options
    @click.pass_context
    def dev(ctx: click.Context, /, remote: bool, local: bool, **kw: Any) -> None:
        """Serve the Worker as `wrangler dev --local` does, with emu's containers; prints
        `Ready on http://HOST:PORT` once it serves. Point a runner that spawns
        `wrangler dev` at `emu dev` with the same flags."""
        del local
        if remote:
            raise click.UsageError("emu runs everything locally: --remote is not supported")
        # up's own defaults (and environment variables), then what dev was given.
        defaults = up.make_context("up", [], parent=ctx).params
        ctx.invoke(up, **{**defaults, **kw})

    return dev


@click.command("install", short_help="Install worker mode's npm packages, once, for offline use.")
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Install what this project needs (default: wrangler and @cloudflare/containers "
    f"{DEFAULT_CONTAINERS_VERSION}).",
)
def install(config_path: Path | None) -> None:
    """Put the pinned wrangler (with its miniflare, workerd and esbuild) and the library into
    emu's cache (~/.cache/emu, or $EMU_CACHE_DIR): later `emu up`s start with no network."""
    folder = _ensure(_wanted(config_path))
    click.echo(f"emu: worker mode's packages are in {folder}")


@click.command("bundle", short_help="Write the bundle emu runs, as wrangler deploy --dry-run.")
@config_option
@env_option("env.NAME.")
@click.option(
    "--outdir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to write the modules.",
)
def bundle_cmd(config_path: Path | None, env: str | None, outdir: Path) -> None:
    """Bundle the Worker as worker mode does (wrangler's module rules, define, alias and
    nodejs_compat; emu's generated entry first) and write its modules to OUTDIR, one
    line each: its kind and its name."""
    for kind, name in asyncio.run(_bundle(config_path, env, outdir)):
        click.echo(f"{kind}\t{name}")


@click.command(
    "wrangler",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    short_help=f"The wrangler {PINNED['wrangler']} emu runs, with its Node.js.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def wrangler(args: tuple[str, ...]) -> None:
    """Run the wrangler that emu pins (installed once into emu's cache), e.g.
    `emu wrangler d1 migrations apply DB --local`: it reads and writes the same
    .wrangler/state as emu up."""
    node = _node()
    cli = _ensure(PINNED) / "node_modules" / "wrangler" / "bin" / "wrangler.js"
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false"}
    os.execve(node.node, [node.node, str(cli), *args], env)


def _node() -> NodeInfo:
    node = find_node()
    if isinstance(node, str):
        click.echo(f"emu: {node}", err=True)
        sys.exit(1)
    return node


def _wanted(config_path: Path | None) -> Mapping[str, str]:
    if config_path is None:
        return {**PINNED, CONTAINERS_PACKAGE: DEFAULT_CONTAINERS_VERSION}
    try:
        main = load_config(config_path).main
        return plan_packages((main or config_path).parent).wanted
    except (ConfigError, ToolchainError) as exc:
        click.echo(f"emu: {exc}", err=True)
        sys.exit(2)


def _ensure(wanted: Mapping[str, str]) -> Path:
    try:
        return asyncio.run(
            ensure_packages(_node(), wanted, lambda line: click.echo(f"emu: {line}", err=True))
        )
    except ToolchainError as exc:
        click.echo(f"emu: {exc}", err=True)
        sys.exit(1)


async def _bundle(config_path: Path | None, env: str | None, outdir: Path) -> list[tuple[str, str]]:
    try:
        config = load_config(config_path, Overrides(env=env))
        project = worker_project(config)
        plan = plan_packages(project.main.parent)
    except (ConfigError, ToolchainError) as exc:
        click.echo(f"emu: {exc}", err=True)
        sys.exit(2)
    node = _node()
    modules_dir = await ensure_packages(node, plan.wanted, lambda line: click.echo(f"emu: {line}"))
    options = RuntimeOptions(persist=False, containers_dir=plan.containers if plan.linked else None)
    runtime = WorkerRuntime(
        project,
        node,
        modules_dir,
        host="127.0.0.1",
        port=0,
        session="bundle",
        out=lambda source, line: click.echo(f"{source}: {line}", err=True),
        options=options,
    )
    try:
        modules = await runtime.bundle("http://127.0.0.1:9", "bundle")
        return await asyncio.to_thread(_copy, modules, outdir)
    except WorkerError as exc:
        click.echo(f"emu: {exc}", err=True)
        sys.exit(exc.exit_code)
    finally:
        await runtime.stop()


def _copy(modules: list[dict[str, str]], outdir: Path) -> list[tuple[str, str]]:
    outdir.mkdir(parents=True, exist_ok=True)
    for module in modules:
        shutil.copyfile(module["path"], outdir / Path(module["path"]).name)
    source_map = Path(modules[0]["path"] + ".map")  # the bundle's, for stack traces
    if modules and source_map.is_file():
        shutil.copyfile(source_map, outdir / source_map.name)
    return [(module["type"], Path(module["path"]).name) for module in modules]


def bindings_of(config: Config, mode: ModeChoice, runtime: RuntimeOptions) -> dict[str, Any]:
    """`emu config`'s bindings, when worker mode's packages are installed (no install here)."""
    if mode.node is None:
        return {"error": mode.reason}
    try:
        project = worker_project(config)
        folder = package_dir(plan_packages(project.main.parent).wanted)
    except (ConfigError, ToolchainError) as exc:
        return {"error": str(exc)}
    if not installed(folder):
        return {"error": "worker mode's packages are not installed yet (emu install)"}
    return describe_bindings(project, mode.node, folder, runtime.vars)


def describe(emu: Emulator, out: Printer) -> None:
    """What emu up serves, once it serves."""
    mode, worker = emu.mode, emu.worker
    for pool in emu.pools.values():
        cfg = pool.config
        # Without one, each request's cf-container-target-port is waited for on first use.
        port = "no defaultPort" if cfg.default_port is None else f"port {cfg.default_port}"
        # The names getRandom spreads over, where something does (emu itself in no-worker mode).
        if cfg.get_random:
            names = f"getRandom over {cfg.instances} instance names, "
        else:
            names = "" if mode.worker else f"{cfg.instances} instance names, "
        out(
            "emu",
            f"{cfg.class_name} (env.{cfg.binding}): {names}"
            f"max {cfg.max_instances} running, {cfg.instance_type.name} "
            f"({cfg.instance_type.vcpu:g} vCPU, {cfg.instance_type.memory_mib} MiB), "
            f"{port}, sleepAfter {format_duration(cfg.sleep_after)}",
        )
    if emu.config.env is not None:
        out("emu", f"wrangler environment {emu.config.env} (Worker {emu.config.worker_name})")
    out("emu", f"mode {describe_mode(mode)}")
    out("emu", f"status: {emu.status_url}/_emu/status (or: emu status)")
    out("emu", f"dashboard: {emu.local_url}/_emu/ (or: emu open)")
    inspector = worker.runtime.inspector_url if worker and worker.runtime else None
    if inspector is not None:
        out("emu", f"inspector: {inspector} (Chrome DevTools: chrome://inspect)")
    # What scripts and test runners that spawn `wrangler dev` wait for.
    out("emu", f"Ready on {emu.local_url}")
