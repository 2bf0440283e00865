"""The seed-style project under emu, on every engine: routing like getRandom over its ten
instances, env and platform variables, instance-type limits in Docker and inside, idle sleep,
one start for a hundred requests, max_instances, build errors, container output, the access log,
/_emu/status and metrics, internal networks, required ports, image vars, environments."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import docker
import pytest
import requests
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from emulator.cli.commands import main
from emulator.engine import docker_logs
from emulator.engine.choice import EngineKind
from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.runs.labels import MANAGED
from emulator.testing import RunningEmulator, wait_for
from tests.support import JSON, REPO, Project, dockerfile_project, idle_stop
from tests.support.engines import (
    ALL_ENGINES,
    LOCAL_AND_SWARM,
    LOCAL_ONLY,
    EngineUnderTest,
    type_limits,
)

pytestmark = pytest.mark.docker

GIB = 1024**3


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, engine: EngineUnderTest) -> Any:
    """The seed's project (10 names, max 10, standard-2), shared by the tests that only read;
    one per engine."""
    path = Project(instance_type=engine.seed_type).write(tmp_path_factory.mktemp("seed"))
    with RunningEmulator.from_path(
        path, options=EmulatorOptions(engine=engine.engine, worker=False)
    ) as emu:
        yield emu


def fan_out(
    url: str, count: int, concurrency: int, headers: dict[str, str] | None = None
) -> list[requests.Response]:
    with requests.Session() as s, concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=concurrency)
        s.mount("http://", adapter)
        return list(pool.map(lambda _: s.get(url, headers=headers, timeout=60), range(count)))


@LOCAL_AND_SWARM  # the spread is emu's own: remote mode's proxying is in the other tests
def test_seed_routes_like_get_random_over_all_ten(seed: RunningEmulator) -> None:
    responses = fan_out(seed.url + "/health", 500, 20)
    assert [r.status_code for r in responses] == [200] * 500
    counts = collections.Counter(r.headers["x-emu-instance"] for r in responses)
    assert set(counts) == {f"instance-{k}" for k in range(10)}
    expected = 500 / 10
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    # p < 0.00001 (9 degrees of freedom): a fair router fails this once in 100,000 runs (at
    # p < 0.001 it did once here, at 30.0); a router that favours some instances scores in the
    # hundreds.
    assert chi2 < 39.34, f"not uniform (chi-square {chi2:.1f} >= 39.34, p < 1e-5): {counts}"
    status = seed.status()["classes"][0]
    assert status["running"] == 10
    assert sum(i["requests"] for i in status["instances"]) >= 500


@ALL_ENGINES
def test_env_vars_and_platform_variables_reach_the_container(seed: RunningEmulator) -> None:
    info = requests.get(
        seed.url + "/info", headers={"x-emu-instance": "instance-3"}, timeout=60
    ).json()
    assert info["env"]["GREETING"] == "hello from envVars"
    cf = info["cloudflare"]
    assert len(cf["CLOUDFLARE_DURABLE_OBJECT_ID"]) == 64
    again = requests.get(seed.url + "/info", headers={"x-emu-instance": "instance-3"}, timeout=60)
    assert again.json()["cloudflare"] == cf, "per-name variables must be stable"
    other = requests.get(seed.url + "/info", headers={"x-emu-instance": "instance-4"}, timeout=60)
    assert (
        other.json()["cloudflare"]["CLOUDFLARE_DURABLE_OBJECT_ID"]
        != cf["CLOUDFLARE_DURABLE_OBJECT_ID"]
    )


@ALL_ENGINES
def test_instance_type_limits_in_docker_and_inside(
    seed: RunningEmulator, docker_client: docker.DockerClient, engine: EngineUnderTest
) -> None:
    resp = requests.get(seed.url + "/info", headers={"x-emu-instance": "instance-1"}, timeout=60)
    assert resp.headers["x-emu-instance"] == "instance-1"
    _, vcpu, memory = type_limits(engine.seed_type)
    inst = seed.instances()["instance-1"]
    attrs = engine.container_attrs(docker_client, inst["container_id"])
    host = attrs["HostConfig"]
    assert host["NanoCpus"] == int(vcpu * 1e9)
    assert host["Memory"] == memory
    if engine.kind is not EngineKind.SWARM:  # a service has no swap setting
        assert host["MemorySwap"] == memory
    assert host["Privileged"] is False
    if engine.kind is EngineKind.LOCAL:
        assert not host.get("PortBindings")
    else:  # published, and emu proxies to the port of IPv4 (Swarm's IPv6 one is another)
        bound = attrs["NetworkSettings"]["Ports"]["8000/tcp"]
        [ipv4] = [b for b in bound if b["HostIp"] in ("127.0.0.1", "0.0.0.0")]
        assert inst["host_ports"] == {"8000": int(ipv4["HostPort"])}
    info = resp.json()
    assert info["cpu_limit_vcpu"] == vcpu
    assert info["memory_limit_bytes"] == memory


@ALL_ENGINES
def test_status_lists_classes_and_instances(seed: RunningEmulator, engine: EngineUnderTest) -> None:
    requests.get(seed.url + "/health", headers={"x-emu-instance": "instance-0"}, timeout=60)
    body = requests.get(seed.url + "/_emu/status", timeout=10).json()
    cls = body["classes"][0]
    assert cls["class_name"] == "PythonExecutorContainer"
    assert cls["binding"] == "PYTHON_EXECUTOR"
    assert cls["max_instances"] == 10
    assert cls["instance_type"]["name"] == type_limits(engine.seed_type)[0]
    inst = {i["name"]: i for i in cls["instances"]}["instance-0"]
    assert inst["state"] == "healthy"
    assert len(inst["container_id"]) == (25 if engine.kind is EngineKind.SWARM else 64)
    assert inst["inflight"] == 0
    assert inst["last_activity"] > time.time() - 60


@LOCAL_AND_SWARM
def test_idle_instance_sleeps_and_streaming_one_stays(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient, engine: EngineUnderTest
) -> None:
    itype = engine.instance_type
    path = Project(sleep_after="2s", instances=2, instance_type=itype).write(tmp_path)
    emu = emu_up(path, EmulatorOptions(engine=engine.engine))

    # Idle: emu stops it 2 s after its last response, not before and not much after (its own
    # clocks: how long the engine then takes to stop and remove it is the engine's, and on a
    # busy machine it took 2 s once), and the engine removes it.
    requests.get(emu.url + "/health", headers={"x-emu-instance": "idle"}, timeout=60)
    last = time.time()
    idle = emu.instances()["idle"]
    wait_for(lambda: engine.gone(docker_client, idle["container_id"]), 20, "the idle one to go")
    stop = idle_stop(emu, "idle")
    assert stop["time"] - idle["last_activity"] >= 2.0 and stop["time"] - last <= 3.0, stop
    # Its state is set just after the removal returns.
    wait_for(lambda: emu.instances()["idle"]["state"] == "stopped", 5, "the stop to end")

    # Streaming for 5 s: stays while the response is in flight, goes after.
    with requests.get(
        emu.url + "/diag/stream?chunks=6&interval_ms=1000",
        headers={"x-emu-instance": "streamer"},
        stream=True,
        timeout=60,
    ) as resp:
        assert resp.status_code == 200
        cid = emu.instances()["streamer"]["container_id"]
        chunks = 0
        for _ in resp.iter_lines():
            chunks += 1
            assert not engine.gone(docker_client, cid), (
                f"stopped with a response in flight (after {chunks} chunks)"
            )
        assert chunks == 6
    ended = time.time()
    streamer = emu.instances()["streamer"]
    wait_for(
        lambda: engine.gone(docker_client, cid),
        20,
        "the streaming container to go after its response",
    )
    stop = idle_stop(emu, "streamer")
    assert stop["time"] - streamer["last_activity"] >= 2.0 and stop["time"] - ended <= 3.0, stop


@ALL_ENGINES
def test_one_start_for_a_hundred_concurrent_requests(
    tmp_path: Path, emu_up: EmuUp, engine: EngineUnderTest
) -> None:
    path = Project(instances=1, instance_type=engine.instance_type).write(tmp_path)
    emu = emu_up(path, EmulatorOptions(engine=engine.engine))
    responses = fan_out(emu.url + "/health", 100, 100, headers={"x-emu-instance": "cold"})
    assert [r.status_code for r in responses] == [200] * 100
    starts = [e for e in emu.events() if e["event"] == "starting" and e["instance"] == "cold"]
    assert len(starts) == 1
    assert emu.instances()["cold"]["starts"] == 1


@ALL_ENGINES
def test_max_instances_is_enforced(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient, engine: EngineUnderTest
) -> None:
    itype = engine.instance_type
    path = Project(max_instances=2, instances=5, instance_type=itype).write(tmp_path)
    emu = emu_up(path, EmulatorOptions(engine=engine.engine))
    project = emu.status()["project"]
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, len(engine.live(docker_client, project=project)))
            done.wait(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        names = [f"instance-{k}" for k in range(5)] * 4
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            responses = list(
                pool.map(
                    lambda n: requests.get(
                        emu.url + "/health", headers={"x-emu-instance": n, **JSON}, timeout=60
                    ),
                    names,
                )
            )
    finally:
        done.set()
        watcher.join()
    codes = collections.Counter(r.status_code for r in responses)
    assert set(codes) == {200, 503}, codes
    served = {r.headers["x-emu-instance"] for r in responses if r.status_code == 200}
    assert len(served) == 2
    for r in responses:
        if r.status_code == 503:
            body = r.json()
            assert body["error"].startswith("There is no Container instance available")
            assert body["max_instances"] == 2
    assert most <= 2
    assert len(engine.live(docker_client, project=project)) == 2
    assert (
        json.loads(requests.get(emu.url + "/_emu/status", timeout=10).text)["classes"][0]["running"]
        == 2
    )


def test_build_error_answers_500_json_with_the_log(tmp_path: Path, emu_up: EmuUp) -> None:
    path = dockerfile_project(
        tmp_path, "FROM python:3.11-slim\nRUN echo 'compiling the thing' && exit 7\n"
    )
    emu = emu_up(path)
    resp = requests.get(emu.url + "/", headers={"x-emu-instance": "instance-0", **JSON}, timeout=60)
    assert resp.status_code == 500
    body = resp.json()
    assert body["error"].startswith("Failed to start container: image build failed")
    assert any("compiling the thing" in line for line in body["logs"])
    assert emu.status()["classes"][0]["image_error"]
    assert emu.instances()["instance-0"]["state"] == "stopped"


@pytest.mark.parametrize("reader", ["unix socket", "SDK thread"])
def test_container_output_is_relayed_with_the_instance_name(
    tmp_path: Path, emu_up: EmuUp, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reader == "SDK thread":  # what a TCP DOCKER_HOST gets
        monkeypatch.setattr(docker_logs, "_unix_socket", lambda: None)
    lines: list[tuple[str, str]] = []
    emu = emu_up(
        Project(instances=1).write(tmp_path),
        EmulatorOptions(
            follow_logs=True, on_output=lambda source, line: lines.append((source, line))
        ),
    )
    requests.get(emu.url + "/health", headers={"x-emu-instance": "talker"}, timeout=60)
    wait_for(
        lambda: any(src == "talker" and "listening on" in text for src, text in list(lines)),
        10,
        "the executor's start-up line under the instance's name",
    )
    events = [text for src, text in list(lines) if src == "emu"]
    assert any("talker healthy" in text for text in events)


def test_access_log_and_emu_status_show_who_served_what(tmp_path: Path, emu_up: EmuUp) -> None:
    lines: list[tuple[str, str]] = []
    emu = emu_up(
        Project(instances=2).write(tmp_path),
        EmulatorOptions(
            access_log=True, on_output=lambda source, line: lines.append((source, line))
        ),
    )
    requests.get(emu.url + "/health?x=1", headers={"x-emu-instance": "instance-1"}, timeout=60)
    access = [line for source, line in list(lines) if source == "access"]
    assert len(access) == 1
    assert access[0].startswith("GET /health?x=1 -> instance-1 200 ")

    # Without --url, emu status finds this emu up (on a port of its own) by its network's label.
    result = CliRunner().invoke(main, ["status", "-c", str(tmp_path / "wrangler.jsonc")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(emu.url + "  ")
    row = next(line for line in result.output.splitlines() if line.startswith("instance-1 "))
    assert row.split()[1:5] == ["healthy", "0", "1", "1"]  # state, inflight, requests, starts
    assert "1/10 running" in result.output
    raw = CliRunner().invoke(main, ["status", "--url", emu.url, "--json"])
    assert json.loads(raw.output)["classes"][0]["running"] == 1

    gone = CliRunner().invoke(main, ["status", "--url", "http://127.0.0.1:9"])
    assert gone.exit_code == 1
    assert "no emu up answers at http://127.0.0.1:9" in gone.output


def test_status_shows_memory_and_cpu_throttling_on_request(tmp_path: Path, emu_up: EmuUp) -> None:
    emu = emu_up(Project(instances=1, instance_type="basic").write(tmp_path))  # 1/4 vCPU, 1 GiB
    assert requests.get(emu.url + "/health", timeout=60).status_code == 200
    assert "memory_bytes" not in emu.instances()["instance-0"]  # only when asked: it costs
    plain = requests.get(emu.url + "/_emu/status?usage=1", timeout=30).json()
    before = plain["classes"][0]["instances"][0]
    assert 0 < before["memory_bytes"] < 200 * 2**20
    requests.get(emu.url + "/diag/alloc?mib=256", timeout=60).raise_for_status()
    # A second of work at 1/4 vCPU: the limit holds it back for most of it.
    requests.get(emu.url + "/diag/cpu?ms=1000", timeout=60).raise_for_status()
    after = requests.get(emu.url + "/_emu/status?usage=1", timeout=30).json()
    inst = after["classes"][0]["instances"][0]
    assert inst["memory_bytes"] - before["memory_bytes"] >= 250 * 2**20
    assert inst["cpu_throttled_s"] > before["cpu_throttled_s"]

    table = CliRunner().invoke(main, ["status", "--url", emu.url])
    row = next(line for line in table.output.splitlines() if line.startswith("instance-0 "))
    used = re.search(r" \d+ MiB (\d+)% ", row)
    assert used is not None and 25 <= int(used.group(1)) < 100, row


@LOCAL_ONLY
@pytest.mark.timeout(60)
def test_status_watch_prints_again_until_ctrl_c(seed: RunningEmulator) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "status", "--url", seed.url, "--watch", "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        snapshots = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [s["url"] for s in snapshots] == [seed.url, seed.url]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.wait()


@ALL_ENGINES
def test_metrics_in_prometheus_text(seed: RunningEmulator) -> None:
    requests.get(seed.url + "/health", headers={"x-emu-instance": "instance-2"}, timeout=60)
    resp = requests.get(seed.url + "/_emu/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, s.labels.get("instance")): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    assert samples[("emu_requests_total", "instance-2")] >= 1
    assert samples[("emu_starts_total", "instance-2")] == 1
    assert samples[("emu_instance_healthy", "instance-2")] == 1
    assert 0 < samples[("emu_cold_start_seconds", "instance-2")] < 20
    assert samples[("emu_max_instances", None)] == 10


@pytest.mark.parametrize("internet", [True, False])
def test_enable_internet_false_puts_the_class_on_an_internal_network(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient, internet: bool
) -> None:
    """Checked on the network and the container's routes, not by sending anything out: no
    address outside this machine is ever a test's target. Docker 20.10 gives an internal
    network's containers a default route to the host, through which the host's addresses on
    other bridges answer; emu removes it (emulator/egress/seal.py). The reach itself is tested
    in test_egress.py."""
    body = "" if internet else "  enableInternet = false;\n"
    emu = emu_up(Project(instances=1, extra_class_body=body).write(tmp_path))
    assert requests.get(emu.url + "/health", timeout=60).status_code == 200  # still reachable
    cid = emu.instances()["instance-0"]["container_id"]
    nets = docker_client.api.inspect_container(cid)["NetworkSettings"]["Networks"]
    (name,) = nets
    network = docker_client.api.inspect_network(name)
    assert network["Internal"] is (not internet)
    assert network["Labels"][MANAGED] == "true"
    routes = docker_client.containers.get(cid).exec_run(["cat", "/proc/net/route"]).output
    assert isinstance(routes, bytes)
    default = [line for line in routes.decode().splitlines()[1:] if line.split()[1] == "00000000"]
    assert bool(default) is internet, routes


def test_required_ports_must_all_answer_on_the_ping_endpoint(tmp_path: Path, emu_up: EmuUp) -> None:
    ok = emu_up(
        Project(instances=1, extra_class_body="  pingEndpoint = 'container/health';\n").write(
            tmp_path / "ok"
        )
    )
    assert requests.get(ok.url + "/health", timeout=60).status_code == 200
    assert ok.status()["classes"][0]["ping_endpoint"] == "container/health"

    missing = emu_up(
        Project(instances=1, extra_class_body="  requiredPorts = [8000, 8001];\n").write(
            tmp_path / "missing"
        ),
        start_timeout="6s",  # 8000 answers in about a second; on a busy machine not in 2
    )
    resp = requests.get(missing.url + "/health", headers=JSON, timeout=60)
    assert resp.status_code == 500
    assert "port 8001 did not answer" in resp.json()["error"]


def test_image_vars_are_build_args(tmp_path: Path, emu_up: EmuUp) -> None:
    path = dockerfile_project(
        tmp_path,
        "FROM python:3.11-slim\nARG GREETING=unset\nWORKDIR /srv\n"
        'RUN echo "$GREETING" > /srv/greeting.txt\n'
        'CMD ["python", "-m", "http.server", "8000"]\n',
        image_vars={"GREETING": f"hello {tmp_path.name}"},
    )
    emu = emu_up(path, stop_grace="1s")  # http.server as PID 1 ignores SIGTERM
    assert requests.get(emu.url + "/greeting.txt", timeout=60).text == f"hello {tmp_path.name}\n"


def test_the_example_project_serves(emu_up: EmuUp) -> None:
    """examples/seed, as the README's quick start runs it (two names, to keep the test light)."""
    emu = emu_up(REPO / "examples" / "seed" / "wrangler.jsonc", instances=2)
    responses = [requests.get(emu.url + "/health", timeout=60) for _ in range(6)]
    assert {r.status_code for r in responses} == {200}
    info = requests.get(emu.url + "/info", timeout=60).json()
    assert info["workers"] == 4
    assert info["memory_limit_bytes"] == 6 * GIB


def test_env_runs_the_environments_containers(
    tmp_path: Path, emu_up: EmuUp, docker_client: docker.DockerClient
) -> None:
    """--env staging: the environment's own container entry (basic: 1/4 vCPU, 1 GiB), the
    Worker named "<name>-staging", an `exports` entry instead of a migration, and a port set in
    a base class's constructor."""
    (tmp_path / "Dockerfile").write_text("FROM nginx:1.22\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "index.ts").write_text(
        "class Base extends Container {\n"
        "  constructor(ctx: DurableObjectState, env: Env) {\n"
        "    super(ctx, env);\n"
        "    this.defaultPort = 80;\n"
        "  }\n"
        "}\n"
        'export class Web extends Base { sleepAfter = "1m"; }\n'
    )
    entry = '[{"class_name": "Web", "image": "./Dockerfile", "instance_type": "TYPE"}]'
    bindings = '{"bindings": [{"name": "WEB", "class_name": "Web"}]}'
    (tmp_path / "wrangler.jsonc").write_text(
        f"""{{
  "name": "small", "main": "src/index.ts",
  "exports": {{"Web": {{"type": "durable-object", "storage": "sqlite"}}}},
  "containers": {entry.replace("TYPE", "lite")},
  "durable_objects": {bindings},
  "env": {{
    "staging": {{
      "containers": {entry.replace("TYPE", "basic")},
      "durable_objects": {bindings},
    }},
  }},
}}"""
    )
    emu = emu_up(tmp_path / "wrangler.jsonc", env="staging")
    assert emu.emulator.config.warnings == ()
    resp = requests.get(emu.url + "/", timeout=60)
    assert resp.status_code == 200 and "nginx" in resp.text
    cls = emu.status()["classes"][0]
    assert cls["instance_type"]["name"] == "basic"
    cid = emu.instances()[resp.headers["x-emu-instance"]]["container_id"]
    attrs = docker_client.api.inspect_container(cid)
    assert attrs["HostConfig"]["NanoCpus"] == 250_000_000
    assert attrs["HostConfig"]["Memory"] == GIB
    assert attrs["Config"]["Image"].startswith("emu-small-staging-web:")

    # emu status tells the running emu ups of one config apart by their environment.
    top = emu_up(tmp_path / "wrangler.jsonc")
    config = str(tmp_path / "wrangler.jsonc")
    both = CliRunner().invoke(main, ["status", "-c", config])
    assert both.exit_code == 1
    assert f"{emu.url} (env staging), {top.url} (top level)" in both.output or (
        f"{top.url} (top level), {emu.url} (env staging)" in both.output
    )
    staging = CliRunner().invoke(main, ["status", "-c", config], env={"CLOUDFLARE_ENV": "staging"})
    assert staging.exit_code == 0, staging.output
    assert staging.output.startswith(emu.url + "  ")
