"""What a worker can ask of the supervisor, and the one-line messages that carry it.

Workers write lines to a pipe the supervisor reads. Each line is far shorter than PIPE_BUF, so
writes from several workers never interleave.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol


class Control(Protocol):
    """The container-wide actions a request can trigger (diagnostics only)."""

    def request_exit(self, code: int) -> None:
        """Make the whole container exit with `code`, promptly."""

    def ignore_sigterm(self) -> None:
        """From now on, SIGTERM to the container does nothing."""


@dataclass(frozen=True)
class ExitRequest:
    code: int


@dataclass(frozen=True)
class IgnoreSigterm:
    pass


Message = ExitRequest | IgnoreSigterm


def encode(message: Message) -> bytes:
    if isinstance(message, ExitRequest):
        return f"exit {message.code}\n".encode()
    return b"ignore-sigterm\n"


def decode(line: bytes) -> Message | None:
    """The message on `line` (without its newline); None for anything unrecognised."""
    words = line.decode("ascii", "replace").split()
    if words == ["ignore-sigterm"]:
        return IgnoreSigterm()
    if len(words) == 2 and words[0] == "exit" and words[1].isdigit() and int(words[1]) <= 255:
        return ExitRequest(int(words[1]))
    return None


class PipeControl:
    """A worker's `Control`: tells the supervisor through the write end of its pipe."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def request_exit(self, code: int) -> None:
        os.write(self._fd, encode(ExitRequest(code)))

    def ignore_sigterm(self) -> None:
        os.write(self._fd, encode(IgnoreSigterm()))
