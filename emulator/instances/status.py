"""`/_emu/status` as types: what the session, each class's pool, each instance and worker mode's
runtime health put in it. Kept here, below every module that builds or reads a part of it."""

from __future__ import annotations

from typing import NotRequired, TypedDict


class InstanceStatus(TypedDict):
    name: str
    state: str  # an instances.state.State
    container_id: str | None
    ip: str | None
    host_ports: dict[str, int] | None  # container port -> the published one (remote engines)
    node: str | None  # the Swarm node
    inflight: int
    requests: int
    starts: int
    last_activity: float | None
    sleeps_in_s: float | None
    kill_in_s: float | None
    cold_start_ms: float | None
    client_cold_start_ms: float | None
    probes: int
    exit_code: int | None
    oom_killed: bool
    last_error: str | None
    paused: bool
    # With ?usage=1 only (one Docker stats sample each); None without a running container.
    memory_bytes: NotRequired[int | None]
    cpu_throttled_s: NotRequired[float | None]
    cpu_s: NotRequired[float]
    cpu_periods: NotRequired[int]
    cpu_throttled_periods: NotRequired[int]


class InstanceTypeStatus(TypedDict):
    name: str
    vcpu: float
    memory_mib: int
    disk_mb: int


class ClassStatus(TypedDict):
    class_name: str
    binding: str
    name: str
    image: str | None
    image_error: str | None
    instances_n: int | None
    reached: list[str]
    max_instances: int
    running: int
    instance_type: InstanceTypeStatus
    engine_note: str | None
    default_port: int | None
    required_ports: list[int]
    sleep_after_s: float
    ping_endpoint: str
    enable_internet: bool
    instances: list[InstanceStatus]


class RuntimeStatus(TypedDict):
    """Worker mode's Workers runtime."""

    state: str  # a worker.health.RuntimeState
    reason: str | None
    restarts: int
    since: float


class Status(TypedDict):
    url: str
    session: str
    project: str
    config: str
    serving: bool
    refusing: str | None
    engine_up: bool
    engine: str
    mode: str  # "worker" or "no-worker"
    runtime: RuntimeStatus | None  # None in no-worker mode
    disk_limits: str
    inflight: int
    classes: list[ClassStatus]
