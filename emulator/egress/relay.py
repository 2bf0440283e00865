"""emu's egress gateway: runs (stdlib only) in a helper container on the instances' networks.

- UDP 53: each query goes to emu's resolver prefixed with the client's IPv4 address; a reply of
  one NUL byte means "not intercepted": the query then goes to this container's own resolver
  (Docker's, which forwards to the engine's).
- TCP 80 and 443: each connection goes to emu's listener, which is first told
  `EMU <client> <port>` and answers `OK` before any of the client's bytes follow.

Usage: python relay.py EMU_HOST DNS_PORT TCP_PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from typing import cast

UPSTREAM = ("127.0.0.11", 53)
PASS = b"\0"
TIMEOUT = 5.0


async def ask(server: tuple[str, int], payload: bytes) -> bytes | None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bytes] = loop.create_future()

    class Reply(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not answer.done():
                answer.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not answer.done():
                answer.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(Reply, remote_addr=server)
    try:
        transport.sendto(payload)
        return await asyncio.wait_for(answer, TIMEOUT)
    except (OSError, TimeoutError):
        return None
    finally:
        transport.close()


class Dns(asyncio.DatagramProtocol):
    def __init__(self, emu: tuple[str, int]) -> None:
        self.emu = emu
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self.answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await ask(self.emu, socket.inet_aton(addr[0]) + data)
        if reply == PASS:
            reply = await ask(UPSTREAM, data)
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


def relay(emu: tuple[str, int], port: int):  # type: ignore[no-untyped-def]
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*emu), TIMEOUT)
        except (OSError, TimeoutError):
            writer.close()
            return
        try:
            up_writer.write(f"EMU {peer} {port}\n".encode())
            if await asyncio.wait_for(up_reader.readline(), TIMEOUT) == b"OK\n":
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (OSError, TimeoutError):
            pass
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(OSError):
                    w.close()

    return serve


async def main(host: str, dns_port: int, tcp_port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Dns((host, dns_port)), local_addr=("0.0.0.0", 53))
    servers = [
        await asyncio.start_server(relay((host, tcp_port), port), "0.0.0.0", port)
        for port in (80, 443)
    ]
    print("emu egress gateway ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
