"""`ctx.container.exec()` and `inspect()` on emu's engine calls (through the bounded executor;
the Docker SDK is not imported here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.docker_backend import DockerBackend

EXEC_TIMEOUT = 300.0


@dataclass(frozen=True)
class ExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


async def run_exec(docker: DockerBackend, container: str, cmd: list[str]) -> ExecResult:
    """Run `cmd` in the container and wait for it: its output and exit code."""

    def run(client: Any) -> ExecResult:
        api = client.api
        created = api.exec_create(container, cmd, stdout=True, stderr=True)
        out, err = api.exec_start(created["Id"], demux=True)
        code = api.exec_inspect(created["Id"])["ExitCode"]
        return ExecResult(out or b"", err or b"", int(code if code is not None else -1))

    return await docker.call(run, EXEC_TIMEOUT)


async def inspect_container(docker: DockerBackend, container: str) -> dict[str, Any]:
    """What the platform's `inspect()` tells, from the engine's view of the container."""

    def get(client: Any) -> dict[str, Any]:
        attrs = client.api.inspect_container(container)
        state = attrs.get("State", {})
        networks = attrs.get("NetworkSettings", {}).get("Networks", {})
        return {
            "id": attrs.get("Id"),
            "image": attrs.get("Config", {}).get("Image"),
            "status": state.get("Status"),
            "running": bool(state.get("Running")),
            "startedAt": state.get("StartedAt"),
            "exitCode": state.get("ExitCode"),
            "labels": attrs.get("Config", {}).get("Labels") or {},
            "ipAddresses": [n.get("IPAddress") for n in networks.values() if n.get("IPAddress")],
        }

    return await docker.call(get)
