"""CPU and memory limits of this process, read from the cgroup filesystem (v1 or v2).

Pure functions over a root directory, so tests can point them at fake files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

DEFAULT_ROOT = Path("/sys/fs/cgroup")

# cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages, e.g. 9223372036854771712);
# anything this large cannot be a real limit.
_UNLIMITED_BYTES = 1 << 62

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class CgroupLimits:
    version: int | None  # 1 or 2; None when no cgroup filesystem was found
    cpu_limit_vcpu: float | None  # quota / period; None = unlimited
    memory_limit_bytes: int | None  # None = unlimited
    # Memory plus swap, as Docker's --memory-swap means it (v1 memory.memsw.limit_in_bytes,
    # v2 memory.max + memory.swap.max). Equal to memory_limit_bytes when no swap is allowed.
    # None when unlimited or not readable (v1 without swap accounting).
    memory_swap_limit_bytes: int | None


def read_limits(root: Path = DEFAULT_ROOT, proc_self_cgroup: str = "") -> CgroupLimits:
    """Effective limits of the process whose /proc/self/cgroup text is `proc_self_cgroup`.

    A limit set on any ancestor cgroup applies too, so each limit is the smallest found between
    the process's own cgroup and the mount root. When the own cgroup's path is not visible under
    `root` (Docker on cgroup v1 mounts the container's cgroup itself at the root), only the root
    is read.
    """
    if (root / "cgroup.controllers").is_file():
        return _read_v2(root, _own_path(proc_self_cgroup, controller=None))
    if (root / "memory").is_dir() or (root / "cpu").is_dir():
        return _read_v1(root, proc_self_cgroup)
    return CgroupLimits(None, None, None, None)


def read_own_limits(root: Path = DEFAULT_ROOT) -> CgroupLimits:
    """`read_limits` for the calling process."""
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        text = ""
    return read_limits(root, text)


def _read_v2(root: Path, own: PurePosixPath | None) -> CgroupLimits:
    dirs = list(_chain(root, own))
    cpu = _min(_v2_cpu(d) for d in dirs)
    memory = _min(_bytes(d / "memory.max") for d in dirs)
    swap = _min(_bytes(d / "memory.swap.max") for d in dirs)
    memory_swap = memory + swap if memory is not None and swap is not None else None
    return CgroupLimits(2, cpu, memory, memory_swap)


def _read_v1(root: Path, proc_self_cgroup: str) -> CgroupLimits:
    cpu_dirs = list(_chain(root / "cpu", _own_path(proc_self_cgroup, controller="cpu")))
    mem_dirs = list(_chain(root / "memory", _own_path(proc_self_cgroup, controller="memory")))
    cpu = _min(_v1_cpu(d) for d in cpu_dirs)
    memory = _min(_bytes(d / "memory.limit_in_bytes") for d in mem_dirs)
    memory_swap = _min(_bytes(d / "memory.memsw.limit_in_bytes") for d in mem_dirs)
    return CgroupLimits(1, cpu, memory, memory_swap)


def _own_path(proc_self_cgroup: str, controller: str | None) -> PurePosixPath | None:
    """The cgroup path of `controller` (v1) or of the unified hierarchy (None) from the text of
    /proc/self/cgroup, whose lines read `id:controllers:path`."""
    for line in proc_self_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = controllers.split(",") if controllers else []
        if (controller is None and parts[0] == "0" and not names) or (
            controller is not None and controller in names
        ):
            return PurePosixPath(path)
    return None


def _chain(mount: Path, own: PurePosixPath | None) -> Iterator[Path]:
    """The own cgroup directory and its ancestors up to `mount`, deepest first."""
    relative = own.relative_to("/") if own is not None and own.is_absolute() else None
    if relative is not None and relative.parts and (mount / relative).is_dir():
        for depth in range(len(relative.parts), 0, -1):
            yield mount.joinpath(*relative.parts[:depth])
    yield mount


def _v1_cpu(d: Path) -> float | None:
    quota = _int(d / "cpu.cfs_quota_us")
    period = _int(d / "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _v2_cpu(d: Path) -> float | None:
    words = _text(d / "cpu.max").split()
    if len(words) != 2 or words[0] == "max":
        return None
    try:
        quota, period = int(words[0]), int(words[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _bytes(path: Path) -> int | None:
    value = _int(path)
    if value is None or value < 0 or value >= _UNLIMITED_BYTES:
        return None
    return value


def _int(path: Path) -> int | None:
    text = _text(path)
    try:
        return int(text)
    except ValueError:  # "max", "" (missing file) or garbage
        return None


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _min(values: Iterable[N | None]) -> N | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None
