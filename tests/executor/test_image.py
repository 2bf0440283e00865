"""The executor image on the real Docker engine: build, limits seen from inside, stop, crash."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from emulator.runs.labels import MANAGED, PID
from emulator.testing import wait_for as wait_until
from tests.support.executor import EXECUTOR_DIR, request

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

TAG = "emu-executor:test"
# The pid label lets the session-wide leak check in tests/conftest.py find what these tests leave.
LABELS = {MANAGED: "true", PID: str(os.getpid())}
MIB = 1024 * 1024

StartContainer = Callable[..., Container]


@pytest.fixture(scope="session")
def executor_image(docker_client: docker.DockerClient) -> str:
    """Built once per test session (the layer cache makes later sessions quick)."""
    try:
        image, _ = docker_client.images.build(
            path=str(EXECUTOR_DIR),
            tag=TAG,
            labels={MANAGED: "true"},
            rm=True,
            forcerm=True,
            timeout=600,
        )
    except docker.errors.BuildError as e:
        log = "".join(str(chunk.get("stream", chunk)) for chunk in e.build_log)
        pytest.fail(f"building {EXECUTOR_DIR} failed: {e}\n{log}")
    assert image.id is not None
    return image.id


def _run(
    client: docker.DockerClient, image: str, made: list[Container], **kwargs: Any
) -> Container:
    """Create (labelled) and start a container, remembering it for removal."""
    container = client.containers.create(image, labels=LABELS, **kwargs)
    made.append(container)
    container.start()
    return container


def _remove(made: list[Container]) -> None:
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.fixture
def start_container(
    docker_client: docker.DockerClient, executor_image: str
) -> Iterator[StartContainer]:
    made: list[Container] = []
    try:
        yield lambda **kwargs: _run(docker_client, executor_image, made, **kwargs)
    finally:
        _remove(made)


def base_url(container: Container) -> str:
    container.reload()
    ip = container.attrs["NetworkSettings"]["IPAddress"]
    assert ip, f"container {container.short_id} has no bridge IP"
    return f"http://{ip}:8000"


def wait_healthy(container: Container, timeout: float = 30) -> str:
    """The container's URL once /health answers 200."""
    url = base_url(container)

    def healthy() -> bool:
        container.reload()
        if container.status == "exited":
            raise AssertionError(f"container exited:\n{container.logs().decode()}")
        return request("GET", url + "/health", timeout=1)[0] == 200

    wait_until(healthy, timeout, f"/health of {container.short_id} to answer 200")
    return url


def get_json(url: str, method: str = "GET", body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    status, raw = request(method, url, data, timeout=30)
    return status, json.loads(raw) if raw else None


def exit_code(container: Container, timeout: float) -> int:
    result = container.wait(timeout=timeout)
    return int(result["StatusCode"])


@pytest.fixture(scope="module")
def limited(docker_client: docker.DockerClient, executor_image: str) -> Iterator[str]:
    """One container at half a vCPU and 512 MiB, shared by the tests that only send requests."""
    made: list[Container] = []
    try:
        container = _run(
            docker_client,
            executor_image,
            made,
            nano_cpus=500_000_000,
            mem_limit="512m",
            environment={"CLOUDFLARE_LOCATION": "test-loc", "GREETING": "hi"},
        )
        yield wait_healthy(container)
    finally:
        _remove(made)


def test_image_runs_as_a_non_root_user(
    docker_client: docker.DockerClient, executor_image: str
) -> None:
    config = docker_client.images.get(executor_image).attrs["Config"]
    assert config["User"] == "executor"
    assert config["Labels"][MANAGED] == "true"


def test_health_and_limits_seen_from_inside(limited: str) -> None:
    assert get_json(limited + "/health") == (200, {"status": "ok"})
    status, info = get_json(limited + "/info")
    assert status == 200
    assert info["cpu_limit_vcpu"] == 0.5
    assert info["memory_limit_bytes"] == 512 * MIB
    assert info["cloudflare"] == {"CLOUDFLARE_LOCATION": "test-loc"}
    assert info["env"]["GREETING"] == "hi"
    assert info["workers"] == 4
    assert info["pid"] != 1  # a worker answers; PID 1 is the supervisor


def test_execute_in_the_container(limited: str) -> None:
    status, result = get_json(limited + "/execute", "POST", {"code": "print(6*7)", "timeout_s": 10})
    assert status == 200
    assert result["stdout"] == "42\n"
    assert result["exit_code"] == 0
    _, result = get_json(
        limited + "/execute", "POST", {"code": "import os; print(os.getuid())", "timeout_s": 10}
    )
    assert result["stdout"].strip() != "0", "the code runs as root"


def test_execute_timeout_in_the_container(limited: str) -> None:
    started = time.monotonic()
    status, result = get_json(
        limited + "/execute", "POST", {"code": "while True: pass", "timeout_s": 1}
    )
    assert time.monotonic() - started < 5
    assert status == 200
    assert result["timed_out"] is True


def test_broken_json_is_400(limited: str) -> None:
    status, raw = request("POST", limited + "/execute", b'{"code": "print(1)"', timeout=10)
    assert status == 400
    assert "not valid JSON" in json.loads(raw)["error"]


def test_diagnostics_are_off_by_default(limited: str) -> None:
    assert request("GET", limited + "/diag/pid")[0] == 404


def test_docker_stop_ends_it_with_0_within_10_s(start_container: StartContainer) -> None:
    container = start_container()
    wait_healthy(container)
    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 10
    assert exit_code(container, 10) == 0


def test_docker_stop_cuts_a_long_request_and_still_exits_0_within_10_s(
    start_container: StartContainer,
) -> None:
    container = start_container(environment={"EXECUTOR_DIAGNOSTICS": "1"})
    url = wait_healthy(container)
    host = url.removeprefix("http://").split(":")[0]
    conn = http.client.HTTPConnection(host, 8000, timeout=30)
    try:
        conn.request("GET", "/diag/stream?chunks=2&interval_ms=60000")
        stream = conn.getresponse()
        assert stream.readline() == b"chunk 0\n"  # in flight now
        started = time.monotonic()
        container.stop(timeout=10)
        assert time.monotonic() - started < 10
        assert exit_code(container, 10) == 0
    finally:
        conn.close()


def test_diag_exit_sets_the_container_exit_code(start_container: StartContainer) -> None:
    container = start_container(environment={"EXECUTOR_DIAGNOSTICS": "1", "WORKERS": "2"})
    url = wait_healthy(container)
    request("POST", url + "/diag/exit?code=3")  # the answer may or may not arrive
    assert exit_code(container, 10) == 3


def test_out_of_memory_kills_the_container(start_container: StartContainer) -> None:
    """No swap, as on the platform: a worker holding more than the limit takes it down."""
    container = start_container(
        mem_limit="256m",
        memswap_limit="256m",
        environment={"EXECUTOR_DIAGNOSTICS": "1", "WORKERS": "2"},
    )
    url = wait_healthy(container)
    request("GET", url + "/diag/alloc?mib=400", timeout=30)
    assert exit_code(container, 30) == 137
    container.reload()
    assert container.attrs["State"]["OOMKilled"] is True


def test_ignore_sigterm_means_sigkill_after_the_grace(start_container: StartContainer) -> None:
    container = start_container(environment={"EXECUTOR_DIAGNOSTICS": "1"})
    url = wait_healthy(container)
    assert request("POST", url + "/diag/ignore-sigterm")[0] == 200
    started = time.monotonic()
    container.stop(timeout=2)
    assert time.monotonic() - started >= 2
    assert exit_code(container, 10) == 137
