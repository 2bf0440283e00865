"""Settings of the executor, read once from the environment and passed down."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

MIB = 1024 * 1024
T = TypeVar("T", int, float)


class SettingsError(Exception):
    """A bad environment variable. `str()` is the one line to print."""


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8000
    workers: int = 4
    diagnostics: bool = False
    access_log: bool = False
    # /execute limits. The concurrency bound is per worker process.
    exec_memory_bytes: int = 512 * MIB  # RLIMIT_AS of each execution; 0 = no cap
    exec_max_concurrency: int = 4
    exec_max_timeout_s: float = 60.0
    exec_output_limit_bytes: int = MIB  # per stream
    # How long a worker lets in-flight requests finish after SIGTERM before cancelling them
    # (they then get 1 s to unwind). Kept well below Docker's default 10 s stop timeout so that
    # `docker stop` ends in a clean exit 0 even with requests in flight.
    shutdown_grace_s: float = 7.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from `env` (normally `os.environ`); raise SettingsError on bad values."""
        d = cls()
        return cls(
            host=env.get("EXECUTOR_HOST", d.host),
            port=_number(env, "EXECUTOR_PORT", int, d.port, lo=0, hi=65535),
            workers=_number(env, "WORKERS", int, d.workers, lo=1, hi=256),
            diagnostics=_flag(env, "EXECUTOR_DIAGNOSTICS", d.diagnostics),
            access_log=_flag(env, "EXECUTOR_ACCESS_LOG", d.access_log),
            exec_memory_bytes=MIB
            * _number(env, "EXECUTOR_EXEC_MEMORY_MIB", int, d.exec_memory_bytes // MIB, lo=0),
            exec_max_concurrency=_number(
                env, "EXECUTOR_EXEC_CONCURRENCY", int, d.exec_max_concurrency, lo=1
            ),
            exec_max_timeout_s=_number(
                env, "EXECUTOR_EXEC_MAX_TIMEOUT_S", float, d.exec_max_timeout_s, lo=0.001
            ),
            exec_output_limit_bytes=_number(
                env, "EXECUTOR_EXEC_OUTPUT_LIMIT_BYTES", int, d.exec_output_limit_bytes, lo=1
            ),
            shutdown_grace_s=_number(
                env, "EXECUTOR_SHUTDOWN_GRACE_S", float, d.shutdown_grace_s, lo=0.0
            ),
        )


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: expected 1 or 0")


def _number(
    env: Mapping[str, str],
    name: str,
    kind: Callable[[str], T],
    default: T,
    *,
    lo: T | None = None,
    hi: T | None = None,
) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    what = "an integer" if kind is int else "a number"
    try:
        value = kind(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{name}={raw!r}: expected a finite number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise SettingsError(f"{name}={raw!r}: expected {what} {bounds}")
    return value
