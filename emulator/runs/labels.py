"""Every Docker label emu writes or reads, and the builders of label sets.

Label names are spelled once, here: a sweep that filters on a misspelt name finds nothing and
says nothing, so the other modules (and the tests and benchmarks) use these constants, and
tests/unit/test_labels.py fails on an `emu.` string literal anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path

# the engine formats label filters; here too for the sweeps and tests that build them from names
from ..engine.docker_types import docker_filter as docker_filter

PREFIX = "emu."

MANAGED = "emu.managed"  # "true" on everything emu creates
PROJECT = "emu.project"  # project_id() of the config file
SESSION = "emu.session"  # one `emu up` (or Emulator) run
PID = "emu.pid"  # the process of that run
HOST = "emu.host"  # the machine of that process
CONFIG = "emu.config"  # the config file's path
ENV = "emu.env"  # the wrangler environment (--env) the run serves; "" for the top level
CLASS = "emu.class"  # on containers and images: the Container class
BINDING = "emu.binding"  # on containers: the class's binding
INSTANCE = "emu.instance"  # on containers: the instance name
URL = "emu.url"  # on networks: where that run listens
STATUS_URL = "emu.status"  # on networks: where emu itself answers /_emu/* (`emu status`)
ROLE = "emu.role"  # on emu's helper containers (emulator/egress/): what it is; no instance
# Not written by emu itself: the proxy benchmark's own containers and a test's own image.
BENCH = "emu.bench"
BENCH_PID = "emu.bench.pid"
TEST = "emu.test"

ALL = frozenset(
    {
        MANAGED,
        PROJECT,
        SESSION,
        PID,
        HOST,
        CONFIG,
        ENV,
        CLASS,
        BINDING,
        INSTANCE,
        URL,
        STATUS_URL,
        ROLE,
        BENCH,
        BENCH_PID,
        TEST,
    }
)


def named(short: str) -> str:
    """The label called `short` without its prefix ("session" -> "emu.session"); ValueError
    for a name that is not one of ours, so that a misspelt filter fails instead of matching
    nothing."""
    name = PREFIX + short
    if name not in ALL:
        raise ValueError(f"no label {name!r}; known: {', '.join(sorted(ALL))}")
    return name


def project_id(config_path: Path) -> str:
    """Stable for one config file on one machine: how runs of the same project find each other
    (whatever its --env: `emu down` removes them all)."""
    # Resolved: `-c ../proj/wrangler.jsonc` and a symlinked folder are the same project.
    return hashlib.sha256(str(config_path.resolve()).encode()).hexdigest()[:12]


def managed() -> dict[str, str]:
    return {MANAGED: "true"}


def project_labels(project: str | None) -> dict[str, str]:
    """What everything of a project carries; every project's when `project` is None."""
    return managed() if project is None else {MANAGED: "true", PROJECT: project}


def session_filter(session: str) -> dict[str, str]:
    return {MANAGED: "true", SESSION: session}


def session_labels(
    project: str, session: str, config_path: Path, env: str | None
) -> dict[str, str]:
    """What every container and network of one run carries."""
    return {
        **project_labels(project),
        SESSION: session,
        PID: str(os.getpid()),
        HOST: socket.gethostname(),
        CONFIG: str(config_path),
        ENV: env or "",
    }


def instance_labels(
    session: Mapping[str, str], class_name: str, binding: str, instance: str
) -> dict[str, str]:
    return {**session, CLASS: class_name, BINDING: binding, INSTANCE: instance}


def network_labels(session: Mapping[str, str], url: str, status_url: str) -> dict[str, str]:
    return {**session, URL: url, STATUS_URL: status_url}


def image_labels(project: str, class_name: str) -> dict[str, str]:
    return {**project_labels(project), CLASS: class_name}
