"""What the benchmarks share: wrk runs, /proc readings, Docker look-ups. The `emu up` child
process (`EmuProcess`) and `wait_for` are emu's own, from emulator/testing.py.

Load goes only to 127.0.0.1 and to containers the benchmark itself started: every URL passes
`check_target` before a request is sent.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import docker
import docker.errors
import requests.exceptions

from emulator.testing import EmuProcessError, WaitTimeout, descendants

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024
ENGINE_COMMANDS = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2"}
DOCKER_TIMEOUT = 30  # seconds, for every Docker SDK call the benchmarks make
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class BenchError(Exception):
    """Something the benchmark cannot go on without; `str()` is the line to print."""


# ---------------------------------------------------------------------------------------------
# Preconditions and small helpers


def interruptible() -> None:
    """Make Ctrl-C and SIGTERM raise KeyboardInterrupt, also when started in the background
    (where SIGINT starts out ignored), so that `finally` blocks stop emu and remove containers."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed; install it with: apt-get install -y wrk")
    return path


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    lines = (out.stdout + out.stderr).splitlines()
    return lines[0].strip() if lines else ""


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise BenchError(
            f"cannot reach the Docker engine ({exc}); is dockerd running? (try: docker info)"
        ) from None
    return client


def require_image(client: docker.DockerClient, ref: str) -> None:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise BenchError(f"image {ref} is not there locally; docker pull {ref} first") from None


def check_target(url: str, allow: Collection[str] = ()) -> None:
    """Refuse any address but loopback and the containers (by IP) this run started."""
    host = urlsplit(url).hostname
    if host != LOOPBACK and host not in allow:
        raise BenchError(f"refusing to send requests to {host}: only {LOOPBACK} and own containers")


def main_body(
    run: Callable[[dict[str, Any]], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    args: dict[str, Any],
) -> dict[str, Any]:
    """What both benchmarks' commands do: run, turn failures into one line and exit code 2 (130
    on Ctrl-C), write the JSON, print the table. Returns the results."""
    import click  # only the commands need it

    interruptible()
    try:
        results = run(args)
    except KeyboardInterrupt:
        click.echo("bench: interrupted", err=True)
        sys.exit(130)
    except (BenchError, EmuProcessError, WaitTimeout) as exc:
        click.echo(f"bench: {exc}", err=True)
        sys.exit(2)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        click.echo(f"bench: Docker: {exc} (did the engine restart? try: docker info)", err=True)
        sys.exit(2)
    write_json(args["out"], results)
    click.echo(render(results))
    click.echo(f"\nJSON: {args['out']}")
    return results


def out_option(name: str) -> Callable[[F], F]:
    """--out PATH, by default bench/<name>: where a benchmark writes its JSON results."""
    return click.option(
        "--out",
        type=click.Path(path_type=Path, dir_okay=False),
        default=Path(__file__).resolve().parent / name,
        show_default=f"bench/{name}",
        help="Where to write the JSON results.",
    )


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def busy_cpu(window: float = 1.0) -> float:
    """Fraction of all CPUs busy over `window` seconds: other work on the machine skews figures."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user .. steal
        return sum(ticks), ticks[3] + ticks[4]  # total, idle + iowait

    total0, idle0 = read()
    time.sleep(window)  # the measurement window
    total1, idle1 = read()
    return round(1 - (idle1 - idle0) / max(1, total1 - total0), 3)


def machine() -> dict[str, Any]:
    """What the figures depend on."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "commit": commit,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---------------------------------------------------------------------------------------------
# HTTP, for warm-up and cold starts (wrk does the load)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    seconds: float  # from sending the request to the last byte of the body


def http_request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
    allow: Collection[str] = (),
) -> Reply:
    """One request on a fresh connection. Raises OSError or http.client errors."""
    check_target(url, allow)
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname or LOOPBACK, parts.port or 80, timeout=timeout)
    try:
        began = time.perf_counter()
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        seconds = time.perf_counter() - began
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, seconds)
    finally:
        conn.close()


def answers_200(
    url: str, headers: Mapping[str, str] | None = None, allow: Collection[str] = ()
) -> bool:
    try:
        return http_request(url, headers=headers, timeout=5, allow=allow).status == 200
    except (OSError, http.client.HTTPException):
        return False


# ---------------------------------------------------------------------------------------------
# /proc readings of the front process


@dataclass(frozen=True)
class ProcSample:
    t: float  # seconds since the sampler's start, or monotonic time
    rss_kib: int  # VmRSS
    hwm_kib: int  # VmHWM: peak RSS so far
    cpu_s: float  # user + system CPU time so far

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024


def proc_sample(pid: int, t: float | None = None) -> ProcSample:
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0])  # kB
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime, stime: fields 14 and 15
    return ProcSample(time.monotonic() if t is None else t, fields["VmRSS"], fields["VmHWM"], cpu)


def runtime_pids(emu_pid: int) -> list[int]:
    """workerd's processes under `emu up`: where a worker-mode request's JavaScript runs."""
    found = []
    for pid in descendants(emu_pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "workerd":
                found.append(pid)
    return found


def engine_pids() -> list[int]:
    """dockerd's and containerd's processes, when this machine runs the engine: relaying logs
    costs the engine CPU too, on the cores the front shares."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ENGINE_COMMANDS:
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: Collection[int]) -> dict[int, float]:
    """User + system CPU seconds of each process that is still there."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rpartition(")")[2].split()
            found[pid] = (int(stat[11]) + int(stat[12])) / ticks
    return found


def cpu_used(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds used between two `cpu_seconds` readings, by the processes in both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


class Sampler:
    """Samples a process's RSS and CPU every `every` seconds on a thread, until `stop()`."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[ProcSample] = []
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                self.samples.append(proc_sample(self.pid, time.monotonic() - self._t0))
            if self._stop.wait(self.every):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


# ---------------------------------------------------------------------------------------------
# wrk

# Appended to every wrk script: prints one line "WRK_JSON {...}" with the summary, the latency
# percentiles, and what each thread's response() counted in its global table `counters`. That
# table must be flat ("group:key" -> number): wrk 4.1's thread:get crashes on nested tables.
LUA_REPORT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function encode(v)
  local t = type(v)
  if t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(x)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "string" then
    return '"' .. (v:gsub('[%c"\\]', "?")) .. '"'
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return "null"
    end
    return string.format("%.17g", v)
  elseif t == "boolean" then
    return tostring(v)
  end
  return "null"
end

local function add(into, from)
  for k, x in pairs(from) do
    if type(x) == "number" then
      into[k] = (into[k] or 0) + x
    end
  end
end

function done(summary, latency, requests)
  local counters = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counters")
    if type(c) == "table" then
      add(counters, c)
    end
  end
  local e = summary.errors
  io.write("WRK_JSON " .. encode({
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors = {
      connect = e.connect, read = e.read, write = e.write, status = e.status, timeout = e.timeout,
    },
    latency_us = {
      mean = latency.mean, min = latency.min, max = latency.max,
      p50 = latency:percentile(50), p90 = latency:percentile(90),
      p99 = latency:percentile(99), p999 = latency:percentile(99.9),
    },
    counters = counters,
  }) .. "\n")
end
"""


def lua_string(text: str) -> str:
    """A Lua string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    bytes: int
    # connect/read/write/timeout are socket errors; status counts non-2xx/3xx responses.
    errors: Mapping[str, int]
    latency_ms: Mapping[str, float]  # mean, min, max, p50, p90, p99, p999
    # What the script counted, by group: {"status": {"200": 1234}, "instance": {...}}
    counters: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def run_wrk(
    wrk: str,
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    script: str = "",
    request_timeout: float = 10.0,
    allow: Collection[str] = (),
) -> WrkResult:
    """Run wrk for `duration` seconds; `script` is Lua run before LUA_REPORT."""
    check_target(url, allow)
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="emu-bench-") as tmp:
        path = Path(tmp) / "script.lua"
        path.write_text(script + "\n" + LUA_REPORT)
        cmd = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={max(1, round(request_timeout))}s",
            "-s",
            str(path),
            url,
        ]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        except subprocess.TimeoutExpired:
            raise BenchError(f"wrk did not finish within {duration + 60:g} s") from None
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if out.returncode != 0 or line is None:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        raise BenchError(f"wrk failed (exit {out.returncode}): {' | '.join(tail)}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        bytes=int(data["bytes"]),
        errors={k: int(v) for k, v in data["errors"].items()},
        latency_ms={k: round(v / 1000, 3) for k, v in data["latency_us"].items() if v is not None},
        counters=_grouped(data.get("counters") or {}),
    )


def _grouped(flat: Mapping[str, float]) -> dict[str, dict[str, int]]:
    """{"status:200": 5} -> {"status": {"200": 5}}."""
    out: dict[str, dict[str, int]] = {}
    for key, count in flat.items():
        group, _, name = key.partition(":")
        out.setdefault(group, {})[name] = int(count)
    return dict(sorted(out.items()))


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)
