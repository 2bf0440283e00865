"""The Worker's local state folder (KV, R2, D1, Durable Objects, ... in wrangler's layout): where
it is, and one `emu up` at a time on it.

Two workerd processes on one folder open the same SQLite files; the second one to start fails
while loading ("database is locked: SQLITE_BUSY"), or a Durable Object's request fails later
("internal error"). So an emu that runs the Worker holds a lock on the folder (flock on a file in
it, released by the kernel however emu ends), and a second one is refused with the first one's
pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = ".emu-up.lock"


def state_folder(config_path: Path, persist: bool, persist_to: Path | None) -> Path | None:
    """`--persist-to`, else `.wrangler/state` beside the config (wrangler's); None for
    `--no-persist` (a folder of the run's own, gone when it ends)."""
    if not persist:
        return None
    return persist_to or config_path.parent / ".wrangler" / "state"


class StateError(Exception):
    """The state folder cannot be had: in use by another emu, or not makeable."""


class StateLock:
    """The claim of one emu on a state folder, from `acquire` until `release` (or its end)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises StateError while another process holds it, or when the folder cannot be
        made."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"cannot keep the Worker's state in {self.folder}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"another emu (pid {holder})" if holder else "another emu"
            raise StateError(
                f"{who} runs a Worker on {self.folder} (its SQLite files take one workerd at "
                "a time): stop it (emu down), or give this one --persist-to DIR or --no-persist"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # the flock goes with the last descriptor of it


def _holder(fd: int) -> int | None:
    """The pid the holder wrote (None while it has not yet, or the file says nothing)."""
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
