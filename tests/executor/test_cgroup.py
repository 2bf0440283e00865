"""cgroup limit parsing against fake cgroup trees (v1 and v2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.app.cgroup import CgroupLimits, read_limits

MIB = 1024 * 1024
V1_UNLIMITED = "9223372036854771712"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def v1(root: Path, *, quota: str, period: str = "100000", mem: str, memsw: str | None) -> Path:
    files = {
        "cpu/cpu.cfs_quota_us": quota,
        "cpu/cpu.cfs_period_us": period,
        "memory/memory.limit_in_bytes": mem,
    }
    if memsw is not None:
        files["memory/memory.memsw.limit_in_bytes"] = memsw
    return write(root, files)


def test_v1_docker_limits(tmp_path: Path) -> None:
    """What `docker run --cpus 0.5 -m 512m` shows inside the container."""
    root = v1(tmp_path, quota="50000", mem="536870912", memsw="1073741824")
    assert read_limits(root) == CgroupLimits(1, 0.5, 512 * MIB, 1024 * MIB)


def test_v1_unlimited_is_none(tmp_path: Path) -> None:
    root = v1(tmp_path, quota="-1", mem=V1_UNLIMITED, memsw=V1_UNLIMITED)
    assert read_limits(root) == CgroupLimits(1, None, None, None)


def test_v1_without_swap_accounting(tmp_path: Path) -> None:
    root = v1(tmp_path, quota="200000", mem="268435456", memsw=None)
    assert read_limits(root) == CgroupLimits(1, 2.0, 256 * MIB, None)


def test_v1_own_cgroup_and_stricter_ancestor(tmp_path: Path) -> None:
    """On a host the process sits deep in the hierarchy; a parent's limit also binds it."""
    root = v1(tmp_path, quota="-1", mem=V1_UNLIMITED, memsw=None)
    write(
        root,
        {
            "cpu/docker/cpu.cfs_quota_us": "150000",
            "cpu/docker/cpu.cfs_period_us": "100000",
            "cpu/docker/abc/cpu.cfs_quota_us": "25000",
            "cpu/docker/abc/cpu.cfs_period_us": "100000",
            "memory/docker/memory.limit_in_bytes": str(256 * MIB),
            "memory/docker/abc/memory.limit_in_bytes": str(1024 * MIB),
        },
    )
    proc = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    assert read_limits(root, proc) == CgroupLimits(1, 0.25, 256 * MIB, None)


def test_v1_own_path_not_visible_reads_the_mount_root(tmp_path: Path) -> None:
    """Docker on v1 mounts the container's own cgroup at the root, while /proc/self/cgroup
    still names /docker/<id>."""
    root = v1(tmp_path, quota="100000", mem=str(6 * 1024 * MIB), memsw=str(6 * 1024 * MIB))
    proc = "4:memory:/docker/0123\n3:cpu:/docker/0123\n"
    assert read_limits(root, proc) == CgroupLimits(1, 1.0, 6 * 1024 * MIB, 6 * 1024 * MIB)


def v2(root: Path, *, cpu: str, mem: str, swap: str | None) -> Path:
    files = {"cgroup.controllers": "cpu memory pids", "cpu.max": cpu, "memory.max": mem}
    if swap is not None:
        files["memory.swap.max"] = swap
    return write(root, files)


def test_v2_docker_limits(tmp_path: Path) -> None:
    """--cpus 0.5 -m 512m --memory-swap 512m: swap.max 0, so memory+swap = memory."""
    root = v2(tmp_path, cpu="50000 100000", mem="536870912", swap="0")
    assert read_limits(root, "0::/\n") == CgroupLimits(2, 0.5, 512 * MIB, 512 * MIB)


def test_v2_swap_is_added_to_memory(tmp_path: Path) -> None:
    root = v2(tmp_path, cpu="100000 100000", mem="536870912", swap="536870912")
    assert read_limits(root) == CgroupLimits(2, 1.0, 512 * MIB, 1024 * MIB)


@pytest.mark.parametrize("swap", ["max", None])
def test_v2_unlimited_is_none(tmp_path: Path, swap: str | None) -> None:
    root = v2(tmp_path, cpu="max 100000", mem="max", swap=swap)
    assert read_limits(root) == CgroupLimits(2, None, None, None)


def test_v2_nested_takes_the_smallest(tmp_path: Path) -> None:
    root = v2(tmp_path, cpu="max 100000", mem="max", swap="max")
    write(
        root,
        {
            "a/cpu.max": "200000 100000",
            "a/memory.max": str(128 * MIB),
            "a/b/cpu.max": "100000 100000",
            "a/b/memory.max": "max",
            "a/b/memory.swap.max": "0",
        },
    )
    assert read_limits(root, "0::/a/b\n") == CgroupLimits(2, 1.0, 128 * MIB, 128 * MIB)


def test_garbage_and_missing_files_are_none(tmp_path: Path) -> None:
    root = v2(tmp_path, cpu="lots", mem="", swap="-3")
    assert read_limits(root) == CgroupLimits(2, None, None, None)
    root = v1(tmp_path / "v1", quota="0", period="0", mem="many", memsw=None)
    assert read_limits(root) == CgroupLimits(1, None, None, None)


def test_no_cgroup_filesystem(tmp_path: Path) -> None:
    assert read_limits(tmp_path) == CgroupLimits(None, None, None, None)
