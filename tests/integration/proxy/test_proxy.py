"""What the proxy passes on, both ways: headers, bodies, streams, WebSockets; and routing rules."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import requests

from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.testing import RunningEmulator, wait_for
from tests.support import Project, raw_request

pytestmark = pytest.mark.docker
FORWARDED = ("for", "proto", "host")


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    path = Project(instances=1, max_instances=6).write(tmp_path_factory.mktemp("proxy"))
    with RunningEmulator.from_path(path, options=EmulatorOptions(worker=False)) as running:
        yield running


def echo(emu: RunningEmulator, method: str, path: str, **kwargs: object) -> dict[str, object]:
    resp = requests.request(method, emu.url + path, timeout=60, **kwargs)  # type: ignore[arg-type]
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-emu-instance"] == "instance-0"
    body: dict[str, object] = resp.json()
    return body


def test_method_path_query_and_headers_pass_hop_by_hop_do_not(emu: RunningEmulator) -> None:
    seen = echo(
        emu,
        "PATCH",
        "/diag/echo?a=1&b=x%20y&c=%2F",
        headers={
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Listed",
            "X-Listed": "dropped: named by Connection",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic Zm9vOmJhcg==",
            "X-Forwarded-For": "203.0.113.9",
        },
    )
    assert seen["method"] == "PATCH"
    assert seen["path"] == "/diag/echo?a=1&b=x%20y&c=%2F"
    headers = {k.lower(): v for k, v in seen["headers"]}  # type: ignore[attr-defined]
    assert headers["x-custom"] == "kept"
    for gone in ("x-listed", "keep-alive", "proxy-authorization"):
        assert gone not in headers, gone
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == emu.url.removeprefix("http://")


def test_the_proxy_adds_no_automatic_headers(emu: RunningEmulator) -> None:
    """aiohttp's client adds Accept, Accept-Encoding, User-Agent and a Content-Type for a body
    unless told not to: the container gets only what the client sent (and X-Forwarded-*)."""
    answer = raw_request(
        emu.url,
        b"POST /diag/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:200]
    names = {k.lower() for k, _ in json.loads(body)["headers"]}
    assert names == {"host", "content-length", *(f"x-forwarded-{x}" for x in FORWARDED)}, names


def test_request_body_streams_through(emu: RunningEmulator) -> None:
    blob = os.urandom(1 << 20)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked upload
        for i in range(0, len(blob), 64 * 1024):
            yield blob[i : i + 64 * 1024]

    seen = echo(emu, "POST", "/diag/echo", data=chunks())
    assert seen["body_bytes"] == len(blob)
    assert seen["body_sha256"] == hashlib.sha256(blob).hexdigest()
    sized = echo(emu, "PUT", "/diag/echo", data=blob)
    assert sized["body_sha256"] == hashlib.sha256(blob).hexdigest()


def test_execute_round_trip(emu: RunningEmulator) -> None:
    resp = requests.post(
        emu.url + "/execute", json={"code": "print(6*7)", "timeout_s": 10}, timeout=60
    )
    assert resp.status_code == 200
    assert resp.json()["stdout"] == "42\n"


def test_large_streamed_response_arrives_whole(emu: RunningEmulator) -> None:
    with requests.get(
        emu.url + "/diag/stream?chunks=5000&interval_ms=0", stream=True, timeout=60
    ) as resp:
        lines = [line for line in resp.iter_lines() if line]
    assert len(lines) == 5000
    assert lines[-1] == b"chunk 4999"


def test_websocket_echo_through_the_front(emu: RunningEmulator) -> None:
    async def talk() -> tuple[str, bytes, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(emu.url + "/diag/ws") as ws,
        ):
            await ws.send_str("hello")
            text = await ws.receive_str(timeout=10)
            await ws.send_bytes(b"\x00\x01")
            data = await ws.receive_bytes(timeout=10)
            assert ws._response is not None
            return text, data, ws._response.headers["x-emu-instance"]

    assert asyncio.run(talk()) == ("hello", b"\x00\x01", "instance-0")
    wait_for(
        lambda: emu.instances()["instance-0"]["inflight"] == 0, 5, "the WebSocket to be released"
    )


def test_switch_port_header_picks_the_port(emu: RunningEmulator) -> None:
    ok = requests.get(emu.url + "/health", headers={"cf-container-target-port": "8000"}, timeout=60)
    assert ok.status_code == 200
    bad = requests.get(emu.url + "/health", headers={"cf-container-target-port": "x"}, timeout=60)
    assert bad.status_code == 400


def nginx_project(root: Path) -> Path:
    (root / "src").mkdir()
    (root / "src" / "index.ts").write_text(
        "export class Alpha extends Container { defaultPort = 80; sleepAfter = '1m'; }\n"
        "export class Beta extends Container { defaultPort = 80; sleepAfter = '1m'; }\n"
        "const a = getRandom(env.ALPHA, 4);\nconst b = getRandom(env.BETA, 2);\n"
    )
    (root / "wrangler.jsonc").write_text(
        """{
  "name": "two", "main": "src/index.ts",
  "containers": [
    {"class_name": "Alpha", "image": "nginx:1.22", "instance_type": "basic"},
    {"class_name": "Beta", "image": "nginx:1.22", "instance_type": "basic"},
  ],
  "durable_objects": {"bindings": [
    {"name": "ALPHA", "class_name": "Alpha"}, {"name": "BETA", "class_name": "Beta"},
  ]},
  "migrations": [{"tag": "v1", "new_sqlite_classes": ["Alpha", "Beta"]}],
}"""
    )
    return root / "wrangler.jsonc"


def test_several_classes_by_path_prefix_or_header(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(nginx_project(tmp_path))
    by_path = requests.get(emu.url + "/beta/?x=1", timeout=60)
    assert by_path.status_code == 200 and "nginx" in by_path.text
    by_header = requests.get(emu.url + "/", headers={"x-emu-binding": "ALPHA"}, timeout=60)
    assert by_header.status_code == 200
    nowhere = requests.get(emu.url + "/gamma/", timeout=60)
    assert nowhere.status_code == 404
    assert nowhere.json()["bindings"] == ["ALPHA", "BETA"]
    classes = {c["class_name"]: c for c in emu.status()["classes"]}
    assert sum(i["requests"] for i in classes["Beta"]["instances"]) == 1
    assert sum(i["requests"] for i in classes["Alpha"]["instances"]) == 1
    assert {i["name"] for i in classes["Beta"]["instances"]} <= {"instance-0", "instance-1"}


def test_seed_makes_routing_reproducible(tmp_path: Path, emu_up: EmuUp) -> None:
    path = nginx_project(tmp_path)

    def sequence() -> list[str]:
        emu = emu_up(path, seed=42)
        got = [
            requests.get(emu.url + "/alpha/", timeout=60).headers["x-emu-instance"]
            for _ in range(12)
        ]
        emu.stop()
        return got

    first = sequence()
    assert len(set(first)) > 1
    assert sequence() == first


def test_names_differing_only_in_case_or_punctuation_are_two_instances(
    emu: RunningEmulator,
) -> None:
    ids = set()
    for name in ("Foo", "foo", "x_1", "x-1"):
        resp = requests.get(emu.url + "/health", headers={"x-emu-instance": name}, timeout=60)
        assert resp.status_code == 200, resp.text
        ids.add(emu.instances()[name]["container_id"])
    assert len(ids) == 4
    assert requests.get(emu.url + "/health", headers={"x-emu-instance": "Foo"}).status_code == 200


def test_absolute_form_target_is_400_not_500(emu: RunningEmulator) -> None:
    answer = raw_request(
        emu.url, b"GET http://elsewhere/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
