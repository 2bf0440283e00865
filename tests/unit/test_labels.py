"""Docker label names: spelled once, in emulator/runs/labels.py; and what the builders label is
what the sweeps find."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from emulator.engine.docker_types import ContainerInfo
from emulator.runs import labels
from emulator.runs.live import alive, live, running_urls
from emulator.runs.sweep import remove_images, sweep_project, sweep_session

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("emulator", "tests", "bench")
LABELS_MODULE = REPO / "emulator" / "runs" / "labels.py"
# Written by emu itself, and documented in docs/safety.md's "Labels" section.
EMU_WRITES = labels.ALL - {labels.BENCH, labels.BENCH_PID, labels.TEST}


def label_literals(source: str) -> list[str]:
    """String literals (plain or the head of an f-string) that start with the labels' prefix,
    other than logger names: a label name typed out instead of taken from emulator.runs.labels."""
    tree = ast.parse(source)
    loggers = {
        id(call.args[0])
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute | ast.Name)
        and (call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id)
        == "getLogger"
        and call.args
    }
    pieces = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            head = node.values[0]
            if isinstance(head, ast.Constant) and str(head.value).startswith(labels.PREFIX):
                found.append(f"line {node.lineno}: f-string {head.value!r}...")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(labels.PREFIX)
            and id(node) not in loggers
            and id(node) not in pieces
        ):
            found.append(f"line {node.lineno}: {node.value!r}")
    return sorted(found)


def _sources() -> list[Path]:
    return [
        p
        for top in SCANNED
        for p in sorted((REPO / top).rglob("*.py"))
        if p != LABELS_MODULE and ".venv" not in p.parts
    ]


def test_no_label_name_is_typed_out_outside_labels_py() -> None:
    offenders = {
        str(p.relative_to(REPO)): hits
        for p in _sources()
        if (hits := label_literals(p.read_text()))
    }
    assert offenders == {}, "use the constants of emulator/runs/labels.py"


def test_the_scan_catches_a_misspelt_label_and_spares_loggers() -> None:
    typo = labels.PREFIX + "sesion"
    source = (
        "import logging\n"
        f"log = logging.getLogger('{labels.PREFIX}http')\n"
        f"filters = {{'{typo}': session}}\n"
        f"wanted = f'{labels.PREFIX}pid={{pid}}'\n"
    )
    assert label_literals(source) == [
        f"line 3: {typo!r}",
        f"line 4: f-string '{labels.PREFIX}pid='...",
    ]


def test_every_name_is_a_distinct_prefixed_constant() -> None:
    constants = {
        name: value
        for name, value in vars(labels).items()
        if name.isupper() and isinstance(value, str) and name != "PREFIX"
    }
    assert set(constants.values()) == labels.ALL
    assert len(set(constants.values())) == len(constants)
    assert all(v.startswith(labels.PREFIX) for v in labels.ALL)


def test_the_names_are_those_the_readme_documents() -> None:
    """A typo inside labels.py itself would be consistent everywhere in emu, yet break the
    contract with users' own filters and with runs of an earlier emu (their sweeps)."""
    safety = (REPO / "docs" / "safety.md").read_text()
    section = safety.partition("\n## Labels\n")[2].partition("\n## ")[0]
    documented = set(re.findall(r"`(emu\.[a-z.]+)", section))
    assert documented == EMU_WRITES


def test_named_refuses_a_name_that_is_not_a_label() -> None:
    assert labels.named("session") == labels.SESSION
    with pytest.raises(ValueError, match="no label"):
        labels.named("sesion")


# -- the builders against the sweeps, on a fake engine that filters as Docker does ----------


@dataclass
class FakeEngine:
    containers: dict[str, dict[str, str]] = field(default_factory=dict)
    networks: dict[str, dict[str, str]] = field(default_factory=dict)
    images: dict[str, dict[str, str]] = field(default_factory=dict)

    @staticmethod
    def _match(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
        # Docker's `label=k=v` filters, all of which must hold.
        pairs = [f.partition("=") for f in labels.docker_filter(want)]
        return all(have.get(k) == v for k, _, v in pairs)

    async def list_containers(self, want: Mapping[str, str]) -> list[ContainerInfo]:
        return [
            ContainerInfo(id=n, name=n, status="running", labels=lab)
            for n, lab in self.containers.items()
            if self._match(lab, want)
        ]

    async def list_networks(self, want: Mapping[str, str]) -> list[tuple[str, str, dict[str, str]]]:
        return [(n, n, lab) for n, lab in self.networks.items() if self._match(lab, want)]

    async def remove_container(self, cid: str) -> None:
        del self.containers[cid]

    async def remove_network(self, nid: str) -> None:
        del self.networks[nid]

    async def remove_images(self, want: Mapping[str, str]) -> list[str]:
        gone = [n for n, lab in self.images.items() if self._match(lab, want)]
        for n in gone:
            del self.images[n]
        return gone


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # exited and reaped: no such process now


def _run(engine: FakeEngine, project: str, session: str, *, pid: int | None = None) -> None:
    """What one `emu up` of `project` labels: a container, its network, its image."""
    mine = labels.session_labels(project, session, Path("/p/wrangler.jsonc"), "staging")
    if pid is not None:
        mine[labels.PID] = str(pid)
    engine.containers[f"c-{session}"] = labels.instance_labels(mine, "Exec", "EXEC", "i-0")
    url = f"http://127.0.0.1/{session}"
    engine.networks[f"n-{session}"] = labels.network_labels(mine, url, url + "/own")
    engine.images[f"img-{session}"] = labels.image_labels(project, "Exec")


async def test_the_sweeps_find_what_the_builders_label() -> None:
    engine = FakeEngine()
    _run(engine, "proj", "live")
    _run(engine, "proj", "dead", pid=_dead_pid())
    _run(engine, "other", "theirs", pid=_dead_pid())
    docker = cast(Any, engine)
    with live("live"):
        assert await running_urls(docker, "proj") == {"http://127.0.0.1/live": "staging"}
        own = await running_urls(docker, "proj", own=True)
        assert own == {"http://127.0.0.1/live/own": "staging"}
        removed = await sweep_project(docker, "proj")
    assert sorted(removed) == ["c-dead", "n-dead"]
    assert await sweep_session(docker, "live") == ["c-live", "n-live"]
    assert sorted(engine.containers) == ["c-theirs"]  # another project's: untouched
    assert sorted(await remove_images(docker, "proj")) == ["img-dead", "img-live"]
    assert await sweep_project(docker, None, only_dead=False) == ["c-theirs", "n-theirs"]


def test_alive_needs_this_host_and_a_live_process() -> None:
    here = {labels.HOST: socket.gethostname(), labels.SESSION: "s"}
    assert alive({**here, labels.PID: str(os.getppid())})
    assert not alive({**here, labels.PID: str(_dead_pid())})
    assert not alive({**here, labels.PID: str(os.getppid()), labels.HOST: "elsewhere"})
    assert not alive({**here, labels.PID: str(os.getpid())})  # no Emulator runs it
    with live("s"):
        assert alive({**here, labels.PID: str(os.getpid())})


def test_a_zombie_run_is_not_alive() -> None:
    """An exited `emu up` its parent has not reaped yet still answers `kill(pid, 0)`: the one
    liveness check (runs/live.py) reads its state, so a sweep takes what it left."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)  # polling the child's state, with the deadline above
        here = {labels.HOST: socket.gethostname(), labels.SESSION: "z"}
        assert not alive({**here, labels.PID: str(child.pid)})
    finally:
        child.wait()
