"""`--set` and `--compare`: settings a run is rehearsed under, as config `Overrides`.

`--set K=V[,K=V...]` applies to every run; each `--compare K=V[,K=V...]` is one run of its own,
and with a single `--compare` the config as it is runs first, to compare against."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from emulator.config import Overrides

NAMES = ("max_instances", "instance_type", "sleep_after", "instances", "env.NAME")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WORKER_ONLY_SOURCE = {
    "instances": (
        "in worker mode getRandom's N is a literal in the Worker's source, which runs as "
        "written; change it there, or rehearse it with --no-worker"
    ),
    "sleep_after": (
        "in worker mode sleepAfter is the library's own alarm, set in the Worker's source; "
        "change it there, or rehearse it with --no-worker"
    ),
}


class SettingError(Exception):
    """A bad --set or --compare: one line, exit 2."""


@dataclass(frozen=True)
class Variant:
    """One run's settings: `label` as the report heads its column."""

    label: str
    values: tuple[tuple[str, str], ...]


def parse(text: str, flag: str) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise SettingError(
                f"{flag} {text}: write KEY=VALUE[,KEY=VALUE...], like max_instances=5"
            )
        if key.startswith("env."):
            if not ENV_NAME.match(key[4:]):
                raise SettingError(f"{flag} {key}: not an environment variable name")
        elif key not in NAMES:
            raise SettingError(f"{flag} {key}: unknown setting; allowed: {', '.join(NAMES)}")
        found.append((key, value))
    return tuple(found)


def variants(common: tuple[str, ...], compare: tuple[str, ...]) -> list[Variant]:
    base = tuple(kv for text in common for kv in parse(text, "--set"))
    runs = [parse(text, "--compare") for text in compare]
    if len(runs) == 1:
        runs.insert(0, ())
    if not runs:
        runs = [()]
    out = []
    for values in runs:
        merged = dict(base)
        merged.update(values)
        label = ",".join(f"{k}={v}" for k, v in values) or "as configured"
        out.append(Variant(label, tuple(merged.items())))
    return out


def refuse_in_worker_mode(variant: Variant) -> None:
    for key, _ in variant.values:
        if key in WORKER_ONLY_SOURCE:
            raise SettingError(f"--set {key}: {WORKER_ONLY_SOURCE[key]}")


def overrides(base: Overrides, variant: Variant) -> Overrides:
    values = dict(variant.values)
    env = tuple((k[4:], v) for k, v in variant.values if k.startswith("env."))

    def integer(key: str) -> int | None:
        if key not in values:
            return None
        try:
            return int(values[key])
        except ValueError:
            raise SettingError(f"--set {key}={values[key]}: must be a whole number") from None

    return replace(
        base,
        max_instances=integer("max_instances"),
        instances=integer("instances") if "instances" in values else base.instances,
        instance_type=values.get("instance_type"),
        sleep_after=values.get("sleep_after", base.sleep_after),
        env_vars=env,
    )
