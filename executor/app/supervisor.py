"""PID 1 of the container: binds the port once, forks the workers that serve it, and makes the
container live and die as one unit.

- SIGTERM (or a first SIGINT): forward SIGTERM to the workers, which stop accepting and finish
  in-flight requests; exit 0 once they are gone, or SIGKILL them at the deadline and exit 0.
- A worker that dies unexpectedly (e.g. the OOM killer): kill the others and exit 128+signal
  (or the worker's own non-zero status), like a single-process container would.
- A worker asks "exit N" (POST /diag/exit): kill the workers, exit N.
- A worker asks "ignore-sigterm" (POST /diag/ignore-sigterm): from then on SIGTERM does nothing.

The loop is plain `selectors`, not asyncio: the supervisor must fork, and forking a process that
runs an event loop (or threads) is unsafe. Signal handlers do nothing; the signal numbers reach the
loop through `signal.set_wakeup_fd`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import time
import traceback

from . import control, worker
from .config import Settings

log = logging.getLogger("executor.supervisor")

# After the workers' own shutdown grace, how long before they are killed anyway.
_KILL_MARGIN_S = 2.0
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)


def bind(settings: Settings) -> socket.socket:
    # Forked workers inherit the socket as is: one accept queue, shared by all of them.
    return socket.create_server((settings.host, settings.port), backlog=1024)


class Supervisor:
    def __init__(self, settings: Settings, sock: socket.socket, started: float) -> None:
        self._settings = settings
        self._sock = sock
        self._started = started
        self._workers: set[int] = set()
        self._stopping = False
        self._interrupts = 0
        self._ignore_sigterm = False
        self._deadline: float | None = None
        self._exit_code: int | None = None
        self._control_buf = b""

    def run(self) -> int:
        """Fork the workers and supervise them; the container's exit status."""
        wake_r, wake_w = os.pipe()
        control_r, control_w = os.pipe()
        lifeline_r, lifeline_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, _noop)
        for _ in range(self._settings.workers):
            pid = os.fork()
            if pid == 0:
                # Worker side: never returns into the supervisor's code.
                _become_worker(
                    self._settings,
                    self._sock,
                    control_w,
                    lifeline_r,
                    self._started,
                    close=(wake_r, wake_w, control_r, lifeline_w),
                )
            self._workers.add(pid)
        # The supervisor serves nothing: once only the workers hold the socket, it really closes
        # when the last worker stops accepting, and new connections are refused, not queued.
        self._sock.close()
        os.close(control_w)
        os.close(lifeline_r)
        log.info("%d workers started: %s", len(self._workers), sorted(self._workers))
        with selectors.DefaultSelector() as sel:
            sel.register(wake_r, selectors.EVENT_READ, "signals")
            sel.register(control_r, selectors.EVENT_READ, "control")
            while self._exit_code is None:
                timeout = None
                if self._deadline is not None:
                    timeout = max(0.0, self._deadline - time.monotonic())
                for key, _ in sel.select(timeout):
                    if key.data == "signals":
                        self._on_signals(os.read(wake_r, 512))
                    else:
                        self._on_control(os.read(control_r, 4096), sel, control_r)
                self._reap()
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    log.warning("workers still running at the deadline; killing them")
                    self._finish(0)
        # lifeline_w closes with the process, which is what tells orphaned workers to stop.
        return self._exit_code

    def _on_signals(self, data: bytes) -> None:
        for signum in data:
            if signum == signal.SIGTERM:
                if self._ignore_sigterm:
                    log.info("SIGTERM ignored, as asked through /diag/ignore-sigterm")
                else:
                    self._begin_stop("SIGTERM")
            elif signum == signal.SIGINT:
                self._interrupts += 1
                if self._interrupts == 1:
                    self._begin_stop("SIGINT")
                else:
                    log.warning("second SIGINT: killing the workers")
                    self._finish(128 + signal.SIGINT)
            # SIGCHLD only needs to wake the loop; _reap runs after every wake-up.

    def _on_control(self, data: bytes, sel: selectors.BaseSelector, fd: int) -> None:
        if not data:  # every worker has closed its end
            sel.unregister(fd)
            return
        self._control_buf += data
        *lines, self._control_buf = self._control_buf.split(b"\n")
        for line in lines:
            message = control.decode(line)
            if isinstance(message, control.ExitRequest):
                log.info("exit %d requested through /diag/exit", message.code)
                self._finish(message.code)
                return
            if isinstance(message, control.IgnoreSigterm):
                log.info("ignoring SIGTERM from now on")
                self._ignore_sigterm = True

    def _begin_stop(self, reason: str) -> None:
        if self._stopping:
            return
        log.info("%s: stopping workers (grace %gs)", reason, self._settings.shutdown_grace_s)
        self._stopping = True
        self._deadline = time.monotonic() + self._settings.shutdown_grace_s + _KILL_MARGIN_S
        self._signal_workers(signal.SIGTERM)

    def _reap(self) -> None:
        """Collect every exited child. Orphans re-parented to PID 1 are reaped and forgotten."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid not in self._workers:
                continue
            self._workers.discard(pid)
            if self._stopping or self._exit_code is not None:
                continue
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                log.error(
                    "worker %d was killed by %s%s; stopping the container",
                    pid,
                    signal.Signals(sig).name,
                    " (out of memory?)" if sig == signal.SIGKILL else "",
                )
                self._finish(128 + sig)
            else:
                code = os.waitstatus_to_exitcode(status)
                log.error("worker %d exited with %d; stopping the container", pid, code)
                self._finish(code or 1)
            return
        if self._stopping and not self._workers and self._exit_code is None:
            log.info("all workers stopped")
            self._exit_code = 0

    def _finish(self, code: int) -> None:
        """Kill whatever workers remain and end the loop with `code`."""
        self._signal_workers(signal.SIGKILL)
        for pid in list(self._workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self._workers.clear()
        self._exit_code = code

    def _signal_workers(self, sig: signal.Signals) -> None:
        for pid in self._workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _become_worker(
    settings: Settings,
    sock: socket.socket,
    control_fd: int,
    lifeline_fd: int,
    started: float,
    close: tuple[int, ...],
) -> None:
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Ctrl-C in a terminal reaches the whole process group; the supervisor coordinates.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in close:
            os.close(fd)
        status = worker.run(settings, sock, control_fd, lifeline_fd, started)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _noop(signum: int, frame: object) -> None:
    pass
