"""Bad configs through the CLI: refused with exit code 2 in one or two lines that name
the file, the field and what is allowed; nothing is created. An unreadable Worker source is only
a warning."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from emulator.testing import EmuProcess
from tests.support import Project, containers, emu_cli

pytestmark = pytest.mark.docker

Edit = Callable[[Path], None]


def replace(old: str, new: str, file: str = "wrangler.jsonc") -> Edit:
    def edit(root: Path) -> None:
        path = root / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new, 1))

    return edit


def no_edit(root: Path) -> None:
    pass


CASES = [
    pytest.param(
        Project(),
        replace('"main": "src/index.ts",', '"main": "src/index.ts"'),
        [r"wrangler\.jsonc:\d+:\d+: invalid JSONC"],
        id="broken-jsonc",
    ),
    pytest.param(
        Project(instance_type="standard-9"),
        no_edit,
        [r"wrangler\.jsonc:\d+: containers\[0\]\.instance_type:", '"standard-9"', "allowed: lite"],
        id="unknown-instance-type",
    ),
    pytest.param(
        Project(instance_type={"vcpu": 1, "memory_mib": 1024}),
        no_edit,
        [r"containers\[0\]\.instance_type:", "at least 3 GiB per vCPU|under 3 GiB per vCPU"],
        id="custom-type-memory-per-vcpu",
    ),
    pytest.param(
        Project(instance_type={"vcpu": 8, "memory_mib": 12288}),
        no_edit,
        [r"containers\[0\]\.instance_type:", r"vcpu 8 is outside 1/16 \(0\.0625\) to 4"],
        id="custom-type-vcpu",
    ),
    pytest.param(
        Project(max_instances=-1),
        no_edit,
        [r"containers\[0\]\.max_instances:", "whole number of at least 1", "not -1"],
        id="max-instances-negative",
    ),
    pytest.param(
        Project(),
        replace('"max_instances": 10', '"max_instances": 2.5'),
        [r"containers\[0\]\.max_instances:", "whole number of at least 1", "not 2.5"],
        id="max-instances-fraction",
    ),
    pytest.param(
        Project(),
        replace('"max_instances": 10', '"max_instances": "3"'),
        [r"containers\[0\]\.max_instances:", "whole number", 'not "3"'],
        id="max-instances-string",
    ),
    pytest.param(
        Project(sleep_after="1h30m"),
        no_edit,
        [r"src/index\.ts:\d+: PythonExecutorContainer\.sleepAfter:", "1h30m", "allowed:"],
        id="bad-sleep-after",
    ),
    pytest.param(
        Project(),
        replace('"image": "', '"image": "./missing/Dockerfile", "unused": "'),
        [r"containers\[0\]\.image:", '"./missing/Dockerfile" not found'],
        id="missing-dockerfile",
    ),
    pytest.param(
        Project(),
        replace('"max_instances"', '"image_build_context": "./nope", "max_instances"'),
        [r"containers\[0\]\.image_build_context:", '"./nope" is not a folder'],
        id="missing-build-context",
    ),
    pytest.param(
        Project(),
        replace('{ "name": "PYTHON_EXECUTOR", "class_name": "PythonExecutorContainer" },', ""),
        [r"containers\[0\]\.class_name:", "no Durable Object binding", "durable_objects.bindings"],
        id="class-without-binding",
    ),
]


@pytest.mark.parametrize(("project", "edit", "expected"), CASES)
def test_bad_config_is_refused_with_exit_2(
    project: Project,
    edit: Edit,
    expected: list[str],
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    path = project.write(tmp_path)
    edit(tmp_path)
    result = emu_cli("up", "-c", str(path), "--port", "0")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(tmp_path) in lines[0], "the message names the file"
    for pattern in expected:
        assert re.search(pattern, result.stderr), (pattern, result.stderr)
    assert result.stdout == ""
    assert containers(docker_client, config=str(path)) == []


def test_unreadable_worker_source_is_a_warning_with_the_defaults(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    path = Project().write(tmp_path)
    (tmp_path / "src" / "index.ts").write_bytes(b"\xff\xfe not UTF-8")
    proc = EmuProcess(path, "--no-logs").start()  # waits until it serves
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        out = proc.output
        assert proc.returncode == 0, out
    finally:
        proc.kill()
    warning = next(line for line in out.splitlines() if "warning" in line)
    assert "src/index.ts: Worker source not read" in warning
    assert "Container defaults: defaultPort none" in warning and "sleepAfter 10m" in warning
    assert "Traceback" not in out
    assert containers(docker_client, config=str(path)) == []
