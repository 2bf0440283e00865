"""One worker process: serves the app on the socket the supervisor bound, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from .config import Settings
from .control import PipeControl
from .server import create_app, serve

log = logging.getLogger("executor.worker")


class _WorkerControl:
    """Forwards to the supervisor, and makes this worker itself ignore SIGTERM when asked."""

    def __init__(self, pipe: PipeControl, loop: asyncio.AbstractEventLoop) -> None:
        self._pipe = pipe
        self._loop = loop

    def request_exit(self, code: int) -> None:
        self._pipe.request_exit(code)

    def ignore_sigterm(self) -> None:
        self._loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self._pipe.ignore_sigterm()


def run(
    settings: Settings, sock: socket.socket, control_fd: int, lifeline_fd: int, started: float
) -> int:
    """Serve until SIGTERM or until the supervisor is gone; the exit status."""
    asyncio.run(_serve(settings, sock, control_fd, lifeline_fd, started))
    return 0


async def _serve(
    settings: Settings, sock: socket.socket, control_fd: int, lifeline_fd: int, started: float
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def supervisor_gone() -> None:
        # Nobody ever writes to the lifeline: it turns readable (EOF) only when the supervisor's
        # end closes, i.e. the supervisor died. Outside a container nothing else would stop us.
        loop.remove_reader(lifeline_fd)
        log.warning("supervisor is gone; shutting down")
        stop.set()

    loop.add_reader(lifeline_fd, supervisor_gone)
    app = create_app(settings, _WorkerControl(PipeControl(control_fd), loop), started)
    await serve(app, sock, settings, stop.wait())
