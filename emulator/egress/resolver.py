"""emu's side of the gateway's DNS: a name an instance's plan covers resolves to the gateway (its
A record; no AAAA, so clients take the IPv4 address); any other name is passed back to be asked
upstream, or refused (NXDOMAIN) for a container with `enableInternet = false`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord

from .plan import Plan

PASS = b"\0"  # relay.py: ask upstream
TTL = 0  # a runtime change of the plan applies at the next lookup


@dataclass(frozen=True)
class Route:
    """What the resolver and the listener know of one container."""

    class_name: str
    name: str
    durable_object_id: str
    plan: Plan
    gateway: str  # the gateway's address on the container's network
    internet: bool


def answer(query: bytes, route: Route | None) -> bytes:
    try:
        record = DNSRecord.parse(query)
    except DNSError:
        return b""
    qname = str(record.q.qname).rstrip(".")
    if route is None or not route.plan.covers(qname):
        if route is None or route.internet:
            return PASS
        reply = record.reply()
        reply.header.rcode = RCODE.NXDOMAIN
        return bytes(reply.pack())
    reply = record.reply()
    if record.q.qtype in (QTYPE.A, QTYPE.ANY):
        reply.add_answer(RR(record.q.qname, QTYPE.A, rdata=A(route.gateway), ttl=TTL))
    return bytes(reply.pack())


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, lookup: Callable[[str], Route | None]) -> None:
        self._lookup = lookup
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 5 or self._transport is None:
            return
        client = socket.inet_ntoa(data[:4])
        reply = answer(data[4:], self._lookup(client))
        if reply:
            self._transport.sendto(reply, addr)


class Resolver:
    def __init__(self, lookup: Callable[[str], Route | None]) -> None:
        self._lookup = lookup
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._lookup), local_addr=(host, 0)
        )
        self._transport = transport
        return int(transport.get_extra_info("sockname")[1])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
