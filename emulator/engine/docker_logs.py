"""Following a container's output: on a local engine whose json-file logs emu may read, the
log file itself, tailed on the loop; else on a local engine its log stream read on the loop
straight from the engine's socket; elsewhere, the SDK's stream in a thread (the backend opens
it)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

# After each read of a log stream, the loop leaves it alone this long: a busy container's lines
# pile up in the socket and are read as one batch. It is also the most a line is held back.
BATCH_S = 0.02
READ_SIZE = 1 << 18
CONNECT_TIMEOUT = 5.0
# A log file read empty is read again after twice as long each time, up to this: an idle
# container costs the loop a few reads a second, and its next line waits at most this long.
IDLE_MAX_S = 0.1


class ByteStream(Iterable[bytes], Protocol):
    def close(self) -> None: ...


def stamped(line: str) -> tuple[float, str]:
    """(unix time, text) of a line the engine gave with `timestamps`:
    "2024-05-01T10:00:00.123456789Z text". A line without a readable time gets 0."""
    stamp, _, text = line.partition(" ")
    try:
        # Nanoseconds are more than fromisoformat takes: keep the microseconds.
        head, _, frac = stamp.rstrip("Z").partition(".")
        when = datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00").timestamp()
    except ValueError:
        return 0.0, line
    return when, text


def follow(
    container_id: str,
    on_line: Callable[[str], None],
    open_stream: Callable[[], ByteStream],
    *,
    tail: int | None = None,
    log_files: str = "",
) -> Callable[[], None]:
    """Call `on_line` on the loop for each line of the container's output; returns a function
    that stops it.

    On a local engine (a unix socket) the stream is read on the loop itself, in batches: the
    SDK reads it a frame at a time in a thread, which under a line per request costs the proxy
    half its throughput in GIL hand-offs. Elsewhere, `open_stream()` (the SDK's) in a
    thread. `tail`: start from the last lines only (default: from the container's start).

    `log_files` (see `log_files_dir`): where the engine writes each container's json-file log,
    when this process may read it. Following from the start, emu then reads that file rather
    than the engine's stream: the engine's follower decodes each line from that same file and
    encodes it again, at about a sixth of a core at a few thousand lines a second here, which a
    line-per-request container under load takes from the proxy."""
    socket_path = _unix_socket()
    if socket_path is None:
        return _follow_in_thread(container_id, on_line, open_stream)
    path = os.path.join(log_files, container_id, f"{container_id}-json.log") if log_files else ""
    if tail is None and path and os.access(path, os.R_OK):
        follower = _follow_file(path, on_line)
    else:
        follower = _follow_unix(socket_path, container_id, on_line, tail)
    task = asyncio.create_task(follower, name=f"logs {container_id[:12]}")

    def cancel() -> None:
        task.cancel()

    return cancel


def log_files_dir(root_dir: str, logging_driver: str) -> str:
    """The folder of containers' json-file logs of a local engine, if this process can read
    it; else "" (another log driver, a remote engine, an engine in a VM, not root)."""
    folder = os.path.join(root_dir, "containers") if root_dir else ""
    if logging_driver != "json-file" or _unix_socket() is None or not folder:
        return ""
    return folder if os.access(folder, os.R_OK | os.X_OK) else ""


def _unix_socket() -> str | None:
    """The engine's unix socket, when DOCKER_HOST names one or is unset."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return None


async def _follow_unix(
    socket_path: str, container_id: str, on_line: Callable[[str], None], tail: int | None = None
) -> None:
    """Read a container's log stream in bulk and hand on whole lines. Ends when the container's
    stream ends or the engine goes away.

    A plain socket, not an HTTP client: after each read the loop leaves the socket alone for
    BATCH_S, so a container logging a line per request costs the loop one wake-up per batch, not
    one per line. HTTP/1.0, so the engine sends the body unchunked and closes it at the end."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    request = (
        f"GET /containers/{container_id}/logs?follow=1&stdout=1&stderr=1"
        f"&tail={'all' if tail is None else tail} HTTP/1.0\r\n"
        "Host: docker\r\n\r\n"
    )
    frames = Frames()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, socket_path), CONNECT_TIMEOUT)
        await loop.sock_sendall(sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(sock, READ_SIZE)
            if not chunk:
                return
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"]:
            return
        while True:
            for line in frames.feed(body):
                on_line(line)
            await asyncio.sleep(BATCH_S)
            body = await loop.sock_recv(sock, READ_SIZE)
            if not body:
                return
    except (OSError, TimeoutError):
        return  # the engine went away: the stream just ends
    finally:
        sock.close()


async def _follow_file(path: str, on_line: Callable[[str], None]) -> None:
    """Tail a container's json-file log from its start; ends when cancelled (the container's
    `destroy`). A rotated log (the engine's `max-size`) is followed into its new file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    lines, wait = JsonFileLines(), BATCH_S
    try:
        while True:
            # A read of the page cache: microseconds, like the socket's.
            data = os.read(fd, READ_SIZE)
            if data:
                for line in lines.feed(data):
                    on_line(line)
                wait = BATCH_S
            else:
                wait = min(wait * 2, IDLE_MAX_S)
                if os.fstat(fd).st_nlink == 0:
                    return  # removed with its container, also if its `destroy` went unheard
                if _replaced(fd, path):
                    os.close(fd)
                    fd = os.open(path, os.O_RDONLY)
            await asyncio.sleep(wait)
    except OSError:
        return  # removed with its container
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _replaced(fd: int, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(fd).st_ino
    except OSError:
        return False


class JsonFileLines:
    """The json-file driver's records ({"log": "text\n", "stream": …, "time": …}, one per
    line), turned into whole lines of output; a line longer than the engine's buffer comes in
    several records, only the last of which ends in a newline."""

    def __init__(self) -> None:
        self._buf = b""
        self._text = ""

    def feed(self, data: bytes) -> list[str]:
        *records, self._buf = (self._buf + data).split(b"\n")
        parts = [self._text]
        for record in records:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                parts.append(json.loads(record)["log"])
        *lines, self._text = "".join(parts).split("\n")
        return lines


class Frames:
    """The engine's multiplexed stream (frames of an 8-byte header: stream, 0, 0, 0, size; then
    the payload), turned into whole lines of output."""

    def __init__(self) -> None:
        self._buf = b""
        self._text = b""

    def feed(self, data: bytes) -> list[str]:
        buf = self._buf + data
        parts = [self._text]
        at = 0
        while len(buf) - at >= 8:
            size = int.from_bytes(buf[at + 4 : at + 8], "big")
            if len(buf) - at - 8 < size:
                break
            parts.append(buf[at + 8 : at + 8 + size])
            at += 8 + size
        self._buf = buf[at:]
        *lines, self._text = b"".join(parts).split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]


def _follow_in_thread(
    container_id: str, on_line: Callable[[str], None], open_stream: Callable[[], ByteStream]
) -> Callable[[], None]:
    """Lines are handed to the loop in batches: the thread only wakes the loop when the
    previous batch has been taken."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    holder: list[ByteStream] = []
    pending: collections.deque[str] = collections.deque()
    scheduled = threading.Event()

    def drain() -> None:
        scheduled.clear()
        while pending:
            on_line(pending.popleft())

    def read() -> None:
        try:
            stream = open_stream()
            holder.append(stream)
            buf = b""
            for chunk in stream:
                if stop.is_set():
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                pending.extend(line.decode("utf-8", "replace") for line in lines)
                if lines and not scheduled.is_set():
                    scheduled.set()
                    loop.call_soon_threadsafe(drain)
        except Exception:  # the container went away or the engine did: the stream just ends
            return

    threading.Thread(target=read, name=f"emu-logs-{container_id[:12]}", daemon=True).start()

    def cancel() -> None:
        stop.set()
        for stream in holder:
            with contextlib.suppress(Exception):
                stream.close()

    return cancel
