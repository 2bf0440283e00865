"""emu's egress listener on loopback, with a stand-in Worker: the gateway's line, TLS with a
certificate of the project's CA for the name asked, and the request as the Worker gets it."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from emulator.egress.ca import Authority
from emulator.egress.listener import Listener, _headers
from emulator.egress.plan import Plan
from emulator.egress.resolver import Route

ROUTE = Route("Box", "a", "ab" * 32, Plan(all=True, https=("*",)), "172.18.0.9", True)


async def _worker(seen: list[dict[str, str]]) -> TestServer:
    async def egress(request: web.Request) -> web.Response:
        seen.append(dict(request.headers) | {"body": (await request.read()).decode()})
        return web.Response(status=201, text="from the fetcher", headers={"x-answer": "yes"})

    app = web.Application()
    app.router.add_route("*", "/_emu/egress", egress)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def _ask(port: int, client: str, target: int) -> tuple[Any, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"EMU {client} {target}\n".encode())
    return reader, writer


async def test_https_is_terminated_and_handed_to_the_worker(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []
    worker = await _worker(seen)
    ca = Authority(tmp_path / "ca")
    records: list[tuple[Any, ...]] = []
    listener = Listener(
        {"10.0.0.5": ROUTE}.get,
        lambda: str(worker.make_url("")).rstrip("/"),
        "tok",
        ca.server_context,
        lambda *r: records.append(r),
    )
    port = await listener.start("127.0.0.1")
    try:
        reader, writer = await _ask(port, "10.0.0.5", 443)
        assert await reader.readline() == b"OK\n"
        trust = ssl.create_default_context(cafile=str(ca.cert_path))
        await writer.start_tls(trust, server_hostname="secure.test")
        writer.write(
            b"POST /p?q=1 HTTP/1.1\r\nHost: secure.test\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\nhi"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    finally:
        await listener.close()
        await worker.close()
    assert answer.startswith(b"HTTP/1.1 201") and answer.endswith(b"from the fetcher")
    assert b"x-answer: yes" in answer.lower()
    (got,) = seen
    assert got["x-emu-egress-url"] == "https://secure.test/p?q=1"
    assert (got["x-emu-egress-class"], got["x-emu-egress-id"]) == ("Box", "ab" * 32)
    assert got["x-emu-egress-token"] == "tok" and got["body"] == "hi"
    assert records and records[0][1:4] == ("POST", "https://secure.test/p?q=1", 201)


async def test_a_client_emu_does_not_know_is_dropped(tmp_path: Path) -> None:
    known: dict[str, Route] = {}
    listener = Listener(known.get, lambda: None, "tok", lambda: None, lambda *r: None)
    port = await listener.start("127.0.0.1")
    try:
        for line in ("EMU 10.0.0.6 80", "GET / HTTP/1.1"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(line.encode() + b"\n")
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
    finally:
        await listener.close()


def test_headers_between_container_and_worker_lose_hop_by_hop_host_and_emus_own() -> None:
    sent = CIMultiDict(
        [
            ("Host", "api.example"),
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "named by Connection"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Trailers", "x"),
            ("X-Emu-Egress-Token", "secret"),
            ("x-emu-egress-class", "Box"),
            ("Accept", "a"),
            ("Accept", "b"),
            ("Authorization", "Bearer t"),
        ]
    )
    kept = _headers(sent)
    assert list(kept.items()) == [("Accept", "a"), ("Accept", "b"), ("Authorization", "Bearer t")]
