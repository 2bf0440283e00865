"""Which emu runs are alive, and the running `emu up`s of a project as another terminal sees
them: where they listen, asking one to stop (`emu down`), what state their instances are in
(`emu ps`). The liveness checks are `pid_alive` and `group_alive` (a zombie counts as gone)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ..engine.docker_backend import DockerBackend
from . import labels

# `emu down` waiting for a running `emu up` to stop: it drains (10 s) and stops its instances
# (10 s at most each, in parallel), so this leaves room.
STOP_WAIT = 60.0


def stop_emu_up(pid: int, timeout: float = STOP_WAIT) -> str | None:
    """Ask a running `emu up` to stop, as Ctrl-C does, and wait until it has. Returns why not:
    it is no `emu up` (an Emulator inside another program), or it did not stop in time."""
    if not is_emu_up(pid):
        return (
            f"process {pid} runs an emulator of this project inside another program; stop it, "
            "or pass --force to remove its containers from under it"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return f"emu up (pid {pid}) did not stop within {timeout:g} s; pass --force"
        time.sleep(0.1)  # polling the process's exit, with the deadline above
    return None


def is_emu_up(pid: int) -> bool:
    """Is `pid` an `emu up` (`emu up ...`, `python -m emulator up ...`)? Where /proc cannot
    say, assume so."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    words = [w.decode(errors="replace") for w in argv if w]
    named = any(Path(w).name == "emu" or w == "emulator" for w in words[:3])
    return named and "up" in words


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) has let go of everything.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def group_alive(pgid: int) -> bool:
    """Is any process of the group alive (zombies count as gone, as in `pid_alive`)?"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg reaches zombies too: where /proc says, only a member that is not one counts.
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True  # fields: state, ppid, pgrp, ...
    return False


def emu_states(urls: Iterable[str], timeout: float = 5.0) -> dict[str, str]:
    """container id -> the state emu gives its instance (`healthy`, `stopping`, ...), from the
    `/_emu/status` of each running `emu up` at `urls`; one that does not answer adds nothing."""
    states: dict[str, str] = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/_emu/status", timeout=timeout) as r:
                data = json.load(r)
        except (OSError, ValueError):
            continue
        for cls in data.get("classes", []):
            for inst in cls.get("instances", []):
                if inst.get("container_id"):
                    states[str(inst["container_id"])] = str(inst["state"])
    return states


# Sessions of the Emulators running in this process (a test suite runs several at once). The
# liveness of a session is a fact about this process, as `kill(pid, 0)` is one about the
# machine, so this one set is process-wide on purpose; `live()` is its only writer.
_LIVE_SESSIONS: set[str] = set()


@contextlib.contextmanager
def live(session: str) -> Iterator[None]:
    """Mark `session` as running in this process for as long as the block runs."""
    _LIVE_SESSIONS.add(session)
    try:
        yield
    finally:
        _LIVE_SESSIONS.discard(session)


def alive(lab: Mapping[str, str]) -> bool:
    """Is the run that made something with these labels still running on this machine?"""
    if lab.get(labels.HOST) != socket.gethostname():
        return False
    try:
        pid = int(lab.get(labels.PID, ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return lab.get(labels.SESSION) in _LIVE_SESSIONS
    return pid_alive(pid)


async def live_runs(docker: DockerBackend, project: str | None) -> dict[int, str]:
    """The processes on this machine whose run of the project (every project's when None) is
    alive: pid -> its session."""
    found = labels.project_labels(project)
    every = [c.labels for c in await docker.list_containers(found)]
    every += [lab for _id, _name, lab in await docker.list_networks(found)]
    return {
        int(lab[labels.PID]): lab.get(labels.SESSION, "")
        for lab in every
        if alive(lab) and lab.get(labels.PID, "").isdigit()
    }


async def running_urls(
    docker: DockerBackend, project: str | None, *, own: bool = False
) -> dict[str, str]:
    """Where the project's running `emu up`s listen (every project's when None), from their
    networks' labels: url -> the wrangler environment it serves ("" for the top level). With
    `own`, where emu itself answers `/_emu/*` instead (in worker mode, also while the Workers
    runtime is down)."""
    networks = await docker.list_networks(labels.project_labels(project))
    return {
        (lab.get(labels.STATUS_URL) or lab[labels.URL]) if own else lab[labels.URL]: lab.get(
            labels.ENV, ""
        )
        for _id, _name, lab in sorted(networks, key=lambda n: n[1])
        if labels.URL in lab and alive(lab)
    }
