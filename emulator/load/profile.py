"""A load profile: how requests are paced (fixed concurrency, a rate, or a ramp of rates), for
how long, and which requests, from flags or a small file of weighted requests."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

Pacing = Literal["concurrency", "rps", "ramp"]
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ProfileError(Exception):
    """A mistake in a load flag or requests file: `str()` is the line to print (exit 2)."""


@dataclass(frozen=True)
class RequestSpec:
    method: str
    path: str  # starts with "/"; may carry a query
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Profile:
    pacing: Pacing
    duration: float  # seconds of sending
    requests: tuple[RequestSpec, ...]
    concurrency: int = 0  # closed loop: this many clients, each sends when its last answer came
    rps: float = 0.0  # open loop: requests per second, each at its intended time
    ramp: tuple[float, float] = (0.0, 0.0)  # open loop: from this rate to that one, linearly
    timeout: float = 30.0  # one request's limit

    def describe(self) -> str:
        if self.pacing == "concurrency":
            pace = f"{self.concurrency} concurrent clients"
        elif self.pacing == "rps":
            pace = f"{self.rps:g} requests/s (open loop)"
        else:
            pace = f"{self.ramp[0]:g} to {self.ramp[1]:g} requests/s (open loop ramp)"
        what = (
            f"{self.requests[0].method} {self.requests[0].path}"
            if len(self.requests) == 1
            else f"{len(self.requests)} weighted requests"
        )
        return f"{pace} for {self.duration:g} s, {what}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        requests = tuple(
            RequestSpec(**{**r, "headers": tuple(tuple(h) for h in r["headers"])})
            for r in data["requests"]
        )
        return cls(**{**data, "requests": requests, "ramp": tuple(data["ramp"])})


def intended_start(profile: Profile, k: int) -> float:
    """When request k (from 0) is due, in seconds from the start, for an open-loop profile;
    math.inf past the duration. A ramp's rate r(t) = a + (b - a) t / T sends its k-th request
    where the integral of r reaches k: a t + (b - a) t^2 / 2T = k."""
    if profile.pacing == "rps":
        t = k / profile.rps
    else:
        a, b = profile.ramp
        big_t = profile.duration
        slope = (b - a) / big_t
        t = k / a if abs(slope) < 1e-12 else (-a + math.sqrt(a * a + 2 * slope * k)) / slope
        if math.isnan(t):
            return math.inf
    return t if t < profile.duration else math.inf


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise ProfileError(f'header {text!r}: write it as "Name: value"')
    return name.strip(), value.strip()


def parse_ramp(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    try:
        a, b = float(start), float(end)
    except ValueError:
        a = b = -1.0
    if not sep or a < 0 or b < 0 or a + b == 0:
        raise ProfileError(
            f"--ramp {text}: write it as FROM:TO requests per second, like 10:200 (not both 0)"
        )
    return a, b


def request_spec(
    method: str, path: str, headers: tuple[tuple[str, str], ...], body: str | None
) -> RequestSpec:
    return RequestSpec(_method(method), _path(path), headers, body)


def _method(method: str) -> str:
    if method.upper() not in METHODS:
        raise ProfileError(f"method {method!r}: allowed: {', '.join(METHODS)}")
    return method.upper()


def _path(path: str) -> str:
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise ProfileError(f"path {path!r}: must start with / and have no spaces")
    return path


def parse_requests_file(
    path: Path, headers: tuple[tuple[str, str], ...]
) -> tuple[RequestSpec, ...]:
    """A file of weighted requests, one a line: `WEIGHT METHOD PATH [BODY]`, where BODY is the
    rest of the line, sent as it is (as JSON when it parses as JSON). Blank lines and lines
    starting with # are skipped. `headers` (-H) go with every request."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read it ({exc})") from None
    found: list[RequestSpec] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            found.append(_request_line(text, headers))
        except ProfileError as exc:
            raise ProfileError(
                f"{path}:{number}: {exc}; a line is WEIGHT METHOD PATH [BODY], "
                'like: 3 POST /execute {"code": "print(1)"}'
            ) from None
    if not found:
        raise ProfileError(f"{path}: no requests in it; a line is WEIGHT METHOD PATH [BODY]")
    return tuple(found)


def _request_line(text: str, headers: tuple[tuple[str, str], ...]) -> RequestSpec:
    parts = text.split(None, 3)
    if len(parts) < 3:
        raise ProfileError(f"{text!r} has {len(parts)} of the 3 fields needed")
    try:
        weight = float(parts[0])
    except ValueError:
        raise ProfileError(f"weight {parts[0]!r} is not a number") from None
    if not weight > 0 or math.isinf(weight):
        raise ProfileError(f"weight {parts[0]} must be more than 0")
    body = parts[3] if len(parts) == 4 else None
    return RequestSpec(_method(parts[1]), _path(parts[2]), headers, body, weight)


def is_json(body: str) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
