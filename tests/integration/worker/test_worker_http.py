"""Worker mode: what a container request carries through the shim's own connection (bodies both
ways, streamed or whole, HEAD, a crash mid-request and mid-stream), on the executor image."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
from collections.abc import Iterator

import pytest
import requests

from emulator.instances.errors import DISCONNECTED
from emulator.testing import wait_for
from tests.support import Project
from tests.support.worker import WorkerEmu

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerEmu]:
    """The seed-style Worker with one instance name: every request reaches instance-0."""
    config = Project(instances=1, max_instances=1).write(tmp_path_factory.mktemp("http"))
    emu = WorkerEmu(config, "--no-logs")
    try:
        yield emu.wait_serving()
    finally:
        emu.stop()


def echo(emu: WorkerEmu, data: object, **kw: object) -> dict[str, object]:
    answer = requests.post(emu.url + "/diag/echo?x=1", data=data, timeout=60, **kw)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_request_bodies_arrive_whole_with_their_headers(executor: WorkerEmu) -> None:
    big = os.urandom(8 * 1024 * 1024)
    got = echo(executor, big, headers={"X-Custom": "one", "Connection": "keep-alive"})
    assert got["body_bytes"] == len(big)
    assert got["body_sha256"] == hashlib.sha256(big).hexdigest()
    assert got["method"] == "POST" and got["path"] == "/diag/echo?x=1"
    headers = {k.lower(): v for k, v in got["headers"]}  # type: ignore[attr-defined]
    assert headers["x-custom"] == "one" and headers["content-length"] == str(len(big))
    # The client's connection is not the container's: the shim's own says it ends with the answer.
    assert headers.get("connection") == "close"

    # A client's chunked upload goes on chunked, as it comes.
    parts = [os.urandom(100_000) for _ in range(5)]
    got = echo(executor, iter(parts))
    assert got["body_bytes"] == 500_000
    assert got["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()

    head = requests.head(executor.url + "/health", timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_a_streamed_response_comes_chunk_by_chunk(executor: WorkerEmu) -> None:
    with requests.get(
        executor.url + "/diag/stream?chunks=5&interval_ms=200", stream=True, timeout=30
    ) as stream:
        assert stream.status_code == 200
        pieces = list(stream.iter_content(chunk_size=None))
    assert b"".join(pieces) == b"".join(f"chunk {i}\n".encode() for i in range(5))
    assert len(pieces) > 1  # not gathered into one


def test_a_crash_mid_request_and_mid_stream(executor: WorkerEmu) -> None:
    assert executor.get("/health").status_code == 200
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        sleeping = pool.submit(executor.get, "/diag/sleep?ms=10000")
        wait_for(lambda: executor.instances()["instance-0"]["inflight"] == 1, 10, "one in flight")
        assert requests.post(executor.url + "/diag/exit?code=7", timeout=30).status_code == 200
        crashed = sleeping.result(timeout=60)
    # The library's answer to a connection lost, as on the platform.
    assert (crashed.status_code, crashed.text) == (500, DISCONNECTED)
    wait_for(lambda: executor.get("/health").status_code == 200, 60, "a fresh start")

    received = b""
    exited = False
    with (
        pytest.raises(requests.exceptions.ChunkedEncodingError),
        requests.get(
            executor.url + "/diag/stream?chunks=100&interval_ms=100", stream=True, timeout=60
        ) as stream,
    ):
        assert stream.status_code == 200
        for chunk in stream.iter_content(chunk_size=None):
            received += chunk
            if not exited and received.count(b"\n") >= 2:
                exited = True
                requests.post(executor.url + "/diag/exit?code=9", timeout=30)
    assert received.startswith(b"chunk 0\nchunk 1\n") and b"HTTP/1.1" not in received
