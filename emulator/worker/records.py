"""Worker mode's request records: the shim's reports (emulator/worker/js/shim.js) turned into the
request feed's records (emulator/front/requests_log.py).

A Worker's record carries the container requests made while serving it (`containers`); a
container request made outside any (an RPC method, an alarm, a Workflow step, a request the Worker
answered before it) is a record of its own, with `tied` false."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..front.requests_log import Record
from ..instances.errors import EmuHTTPError

NO_ANSWER = 502  # a container request that got no response (the fetch threw)


@dataclass(frozen=True)
class Counts:
    """What one Durable Object's shim counted since its last report."""

    requests: int
    inflight: int
    probes: int = 0  # the library's readiness probes, not requests
    cold_waits_ms: tuple[float, ...] = ()  # first request after a start: its wait, as a client's
    records: tuple[Mapping[str, Any], ...] = ()  # container requests no Worker request took


def counts(body: Mapping[str, Any]) -> Counts:
    numbers = [body["requests"], body["inflight"], body.get("probes", 0)]
    if not all(isinstance(n, int) for n in numbers):
        raise EmuHTTPError(400, "requests, inflight and probes must be integers")
    waits = body.get("cold_waits_ms") or []
    records = body.get("records") or []
    if not isinstance(waits, list) or not all(isinstance(w, int | float) for w in waits):
        raise EmuHTTPError(400, "cold_waits_ms must be an array of numbers")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise EmuHTTPError(400, "records must be an array of objects")
    return Counts(
        requests=numbers[0],
        inflight=numbers[1],
        probes=numbers[2],
        cold_waits_ms=tuple(float(w) for w in waits),
        records=tuple(records),
    )


def _status(raw: object) -> int:
    return raw if isinstance(raw, int) else NO_ANSWER


def container(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One container request, as the feed shows it inside a Worker's record."""
    return {
        "class": str(raw.get("class")),
        "instance": str(raw.get("instance")),
        "port": raw.get("port"),
        "method": str(raw.get("method", "GET")),
        "path": str(raw.get("path", "/")),
        "status": _status(raw.get("status")),
        "duration_ms": round(float(raw.get("ms") or 0), 2),
        "cold": bool(raw.get("cold")),
        "timed_out": bool(raw.get("timedOut")),
    }


class Containers:
    """A record's container requests, as the shim sent them; turned into fields when read."""

    __slots__ = ("raw", "source", "tied", "timed_out")

    def __init__(self, raw: list[Any], source: str, tied: bool, timed_out: bool = False) -> None:
        self.raw = raw
        self.source = source
        self.tied = tied
        self.timed_out = timed_out  # no answer within --request-timeout: emu answered a 504

    def fields(self) -> dict[str, Any]:
        containers = [container(c) for c in self.raw if isinstance(c, dict)]
        return {
            "source": self.source,
            "tied": self.tied,
            "timed_out": self.timed_out,
            "instances": list(dict.fromkeys(c["instance"] for c in containers)),
            "containers": containers,
        }


def worker_record(raw: Mapping[str, Any]) -> Record:
    """A request the Worker served: `class` and `instance` are of its first container request;
    `instances` names them all, in order. Little work here: 3,000 a second may come."""
    containers = raw.get("containers")
    if not isinstance(containers, list):
        containers = []
    first = containers[0] if containers and isinstance(containers[0], dict) else None
    return (
        float(raw.get("time") or 0),
        str(raw.get("method", "GET")),
        str(raw.get("path", "/")),
        None if first is None else str(first.get("class")),
        None if first is None else str(first.get("instance")),
        _status(raw.get("status")),
        float(raw.get("ms") or 0),
        any(isinstance(c, dict) and c.get("cold") for c in containers),
        False,
        Containers(containers, "worker", True, bool(raw.get("timedOut"))),
    )


def untied_record(raw: Mapping[str, Any]) -> Record:
    """A container request that no request of the Worker's record holds."""
    one = container(raw)
    return (
        float(raw.get("time") or 0),
        one["method"],
        one["path"],
        one["class"],
        one["instance"],
        one["status"],
        one["duration_ms"],
        one["cold"],
        False,
        Containers([raw], "container", False, one["timed_out"]),
    )
