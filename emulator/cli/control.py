"""`emu logs`, `emu start|stop|kill` and `emu open`: clients of a running `emu up`'s control API
(`/_emu/instances/...`), found as `emu status` finds it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import click

from ..config.durations import parse_duration
from ..engine.docker_logs import stamped
from ..instances.instance import KEPT_LOG_LINES

COLOURS = ("cyan", "green", "yellow", "magenta", "blue", "red", "bright_cyan", "bright_green")
Target = tuple[str, str]  # (class, instance)


class ControlError(click.ClickException):
    """What the emu up said, or why it could not be asked: one line, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"emu: {self.message}", err=True)


def _request(url: str, method: str = "GET") -> bytes:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
            body: bytes = r.read()
            return body
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read())["error"]
        except (ValueError, KeyError):
            reason = f"HTTP {exc.code}"
        raise ControlError(str(reason)) from None
    except OSError as exc:
        raise ControlError(f"no emu up answers at {url.split('/_emu/')[0]} ({exc})") from None


def resolve(base: str, names: tuple[str, ...]) -> list[Target]:
    """(class, instance) for each NAME ("instance-0", or "Class/instance-0"); every known
    instance when none is named."""
    status = json.loads(_request(base + "/_emu/status"))
    classes = status["classes"]
    if not names:
        return [(c["class_name"], i["name"]) for c in classes for i in c["instances"]]
    found: list[Target] = []
    for name in names:
        cls, sep, inst = name.rpartition("/")
        if sep:
            found.append((cls, inst))
            continue
        owners = [
            c["class_name"] for c in classes if any(i["name"] == inst for i in c["instances"])
        ]
        if len(owners) > 1:
            raise ControlError(f"{inst} is in several classes: name one, like {owners[0]}/{inst}")
        if not owners and len(classes) > 1:
            raise ControlError(f"no instance {inst!r}; name its class, like CLASS/{inst}")
        found.append((owners[0] if owners else classes[0]["class_name"], inst))
    return found


def _path(base: str, target: Target, tail: str) -> str:
    cls, inst = (urllib.parse.quote(part, safe="") for part in target)
    return f"{base}/_emu/instances/{cls}/{inst}/{tail}"


def act(base: str, name: str, action: str) -> dict[str, Any]:
    (target,) = resolve(base, (name,))
    data: dict[str, Any] = json.loads(_request(_path(base, target, action), method="POST"))
    return data


def _prefixes(targets: list[Target], colour: bool) -> dict[Target, str]:
    """ "instance-0 | " per instance (with its class when there are several); none for one."""
    if len(targets) == 1:
        return {targets[0]: ""}
    several = len({cls for cls, _ in targets}) > 1
    labels = {t: f"{t[0]}/{t[1]}" if several else t[1] for t in targets}
    width = max(len(label) for label in labels.values())
    out = {}
    for k, (t, label) in enumerate(labels.items()):
        text = f"{label:<{width}} | "
        out[t] = click.style(text, fg=COLOURS[k % len(COLOURS)]) if colour else text
    return out


def print_logs(
    base: str, names: tuple[str, ...], follow: bool, tail: int | None, since: str | None
) -> None:
    targets = resolve(base, names)
    if not targets:
        raise ControlError("no instances yet")
    query = {"timestamps": "1", "tail": str(KEPT_LOG_LINES if tail is None else tail)}
    if since is not None:
        try:
            query["since"] = f"{time.time() - parse_duration(since):.3f}"
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    prefixes = _prefixes(targets, sys.stdout.isatty())
    if not follow:
        lines = []
        for target in targets:
            body = _request(_path(base, target, "logs?" + urllib.parse.urlencode(query)))
            lines += [(*stamped(raw), prefixes[target]) for raw in body.decode().splitlines()]
        for _, text, prefix in sorted(lines, key=lambda entry: entry[0]):
            click.echo(prefix + text)
        return
    query["follow"] = "1"
    del query["timestamps"]
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a follow ends
        asyncio.run(_follow(base, targets, query, prefixes))


async def _follow(
    base: str, targets: list[Target], query: dict[str, str], prefixes: dict[Target, str]
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(target: Target) -> None:
            url = _path(base, target, "logs?" + urllib.parse.urlencode(query))
            try:
                async with session.get(url) as resp:
                    if resp.status != 200:
                        reason = (await resp.json(content_type=None)).get("error", resp.status)
                        raise ControlError(str(reason))
                    async for raw in resp.content:
                        sys.stdout.write(prefixes[target] + raw.decode("utf-8", "replace"))
                        sys.stdout.flush()
            except aiohttp.ClientError as exc:
                raise ControlError(f"the log stream of {target[1]} broke: {exc}") from None

        await asyncio.gather(*(one(t) for t in targets))


def open_dashboard(base: str) -> None:
    url = base.rstrip("/") + "/_emu/"
    _request(url)  # it answers, before a browser is sent there
    click.echo(url)
    if not webbrowser.open(url):
        click.echo("emu: no browser found; open the address above", err=True)


def register(
    main: click.Group,
    options: Callable[[Callable[..., Any]], Callable[..., Any]],
    running_url: Callable[[Path | None, str | None], str],
) -> None:
    """Add the commands to `emu`. `options` stacks --config and --env on a command;
    `running_url(config_path, env)` finds the emu up to ask."""

    def where(kw: dict[str, Any]) -> str:
        url = kw.pop("url")
        return str(url or running_url(kw.pop("config_path"), kw.pop("env"))).rstrip("/")

    url_option = click.option("--url", help="The emu up to ask.  [default: this config's]")

    @main.command(short_help="Show instances' output.")
    @options
    @url_option
    @click.argument("names", nargs=-1, metavar="[NAME]...")
    @click.option("--follow", "-f", is_flag=True, help="Print new lines as they come; Ctrl-C ends.")
    @click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines of each.")
    @click.option("--since", metavar="D", help="Only lines of the last D: 30s, 10m, 1h.")
    def logs(
        names: tuple[str, ...], follow: bool, tail: int | None, since: str | None, **kw: Any
    ) -> None:
        """Show the output of the named instances (NAME, or CLASS/NAME; default: all), also of
        those that exited, until emu forgets them."""
        print_logs(where(kw), names, follow, tail, since)

    for action, text in (
        ("start", "Start an instance (prewarm it) and wait until it is healthy."),
        ("stop", "Stop an instance: SIGTERM, then SIGKILL after --stop-grace."),
        ("kill", "Kill an instance's container (SIGKILL), as a crash would."),
    ):

        def command(name: str, _action: str = action, **kw: Any) -> None:
            snapshot = act(where(kw), name, _action)
            click.echo(f"{snapshot['name']}: {snapshot['state']}")

        command.__doc__ = text
        options(url_option(click.argument("name")(command)))
        main.command(action, short_help=text.split(":")[0].rstrip("."))(command)

    @main.command("open")
    @options
    @url_option
    def open_(**kw: Any) -> None:
        """Open the dashboard of a running emu up in the browser."""
        open_dashboard(where(kw))
