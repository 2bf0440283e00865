"""The live reaper: a watchdog process that removes a session's containers when emu dies.

`emu up` starts it with `Reaper.spawn(session)`. The watchdog runs in a session of its own (so a
Ctrl-C or a kill of emu's process group does not reach it) and blocks on a pipe whose only write
end emu holds. However emu ends, `kill -9` included, the kernel closes that end and the watchdog
reads EOF at once: no polling of pids. If emu said `clean` first (it removed everything itself),
the watchdog just exits; otherwise it removes every container and network labelled with the
session, and kills the processes emu registered with `pid N`, and the process groups it registered
with `group N` (the Workers runtime: node and its workerd).

This is testcontainers' Ryuk as a process rather than a container: nothing else is given the
Docker socket, and it needs no image.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from typing import IO


class Reaper:
    """emu's end of the pipe to a watchdog process."""

    def __init__(self, process: subprocess.Popen[bytes], pipe: IO[bytes]) -> None:
        self.process = process
        self._pipe: IO[bytes] | None = pipe

    @classmethod
    def spawn(cls, session: str, engine: str = "local") -> Reaper:
        """`engine`: "swarm" to remove the session's services too."""
        process = subprocess.Popen(
            [sys.executable, "-m", "emulator.runs.reaper", session, engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        assert process.stdin is not None
        return cls(process, process.stdin)

    def watch_pid(self, pid: int) -> None:
        """Kill `pid` too if emu dies without saying `clean`."""
        self._send(f"pid {pid}\n")

    def watch_group(self, pgid: int) -> None:
        """Kill process group `pgid` too if emu dies without saying `clean`."""
        self._send(f"group {pgid}\n")

    def close(self, *, clean: bool) -> None:
        """emu is ending: `clean` when it removed everything itself, so the watchdog has no work."""
        if clean:
            self._send("clean\n")
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
            self._pipe = None

    def _send(self, line: str) -> None:
        if self._pipe is None:
            return
        with contextlib.suppress(OSError):
            self._pipe.write(line.encode())
            self._pipe.flush()


def read_orders(stream: IO[bytes]) -> tuple[bool, list[int]]:
    """Read the pipe to EOF: (whether emu ended clean, the pids it asked to be killed). A
    process group comes back as its negated id, as `os.kill` takes it."""
    clean = False
    pids: list[int] = []
    for raw in stream:
        words = raw.decode(errors="replace").split()
        if words == ["clean"]:
            clean = True
        elif len(words) == 2 and words[0] in ("pid", "group") and words[1].isdigit():
            pid = int(words[1])
            if pid > 1:  # never 0 or 1: os.kill(-1 or 0) would reach far more than ours
                pids.append(pid if words[0] == "pid" else -pid)
    return clean, pids


async def _sweep(session: str, engine: str) -> None:
    # Imported here: the parent only needs `Reaper`, not the Docker SDK.
    from emulator.engine.choice import Engine
    from emulator.runs.sweep import sweep_session

    docker = Engine.detect(engine).backend(start_timeout=20.0, stop_grace=10.0)
    try:
        await sweep_session(docker, session)
        # A create that was in flight when emu died may land after the first pass.
        await asyncio.sleep(1.0)
        await sweep_session(docker, session)
    finally:
        docker.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(
            "usage: python -m emulator.runs.reaper SESSION [ENGINE]  (stdin: emu's pipe)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only EOF on the pipe ends the watch
    clean, pids = read_orders(sys.stdin.buffer)
    if clean:
        return 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    try:
        asyncio.run(_sweep(argv[0], argv[1] if len(argv) == 2 else "local"))
    except Exception as exc:  # the watchdog has no one to report to but stderr
        print(f"emu reaper: sweep of session {argv[0]} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
