"""The request feed: a bounded ring of what the front answered, for the dashboard, `/_emu/requests`
and `RunningEmulator.requests()`.

The proxy only appends a tuple (one per request, whether anyone watches or not); readers turn
records into dicts when they read, and find the new ones by a running count."""

from __future__ import annotations

import collections
import itertools
import time
from typing import Any, Protocol

FEED_SIZE = 1000  # records kept; the dashboard shows the last 200

# time (wall clock), method, path, class or None, instance or None, status, duration in ms,
# waited for a start, routed by getRandom (not by x-emu-instance), and in worker mode more
# fields (the container requests made for it, whether it is tied to a request of the Worker)


class Extra(Protocol):
    """More fields of a record, made when it is read (the hot path only keeps what it got)."""

    def fields(self) -> dict[str, Any]: ...


Record = tuple[float, str, str, str | None, str | None, int, float, bool, bool, Extra | None]
FIELDS = (
    "time",
    "method",
    "path",
    "class",
    "instance",
    "status",
    "duration_ms",
    "cold",
    "random",
)
# The status of a request whose client went away before it was answered (nginx's convention).
CLIENT_GONE = 499


def as_dict(record: Record) -> dict[str, Any]:
    out = dict(zip(FIELDS, record[:9], strict=True))
    out["duration_ms"] = round(record[6], 2)
    if record[9] is not None:
        out.update(record[9].fields())
    if "://" in record[2]:  # a container's outbound request (add_outbound): its whole URL
        out["outbound"] = True
    return out


# How often (in records) `wall_offset` is read again, so that a step of the wall clock (NTP)
# shows in the records' times within that many requests.
OFFSET_EVERY = 1024


class RequestLog:
    def __init__(self, size: int = FEED_SIZE) -> None:
        self._ring: collections.deque[Record] = collections.deque(maxlen=size)
        self.count = 0  # records ever added: readers remember where they were
        # time.time() - time.perf_counter(): the front times a request with perf_counter and
        # makes its record's wall-clock time from the same reading, one clock read less.
        self.wall_offset = time.time() - time.perf_counter()

    def add(self, record: Record) -> None:
        self._ring.append(record)
        self.count += 1
        if not self.count % OFFSET_EVERY:
            self.wall_offset = time.time() - time.perf_counter()

    def add_outbound(
        self, method: str, url: str, class_name: str, instance: str, status: int, ms: float
    ) -> None:
        """A container's outbound request that the Worker intercepted (emulator/egress/): the
        instance that sent it, the URL it asked for, the status the Worker's fetcher gave."""
        began = time.time() - ms / 1000
        self.add((began, method, url, class_name, instance, status, ms, False, False, None))

    def records(self, last: int | None = None) -> list[dict[str, Any]]:
        """The kept records, oldest first; the `last` ones only, when given."""
        ring = self._ring
        start = 0 if last is None else max(0, len(ring) - last)
        return [as_dict(r) for r in itertools.islice(ring, start, None)]

    def since(self, seen: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The records added after the first `seen`, at most the `limit` newest; and how many
        newer ones were left out (dropped from the ring, or beyond the limit)."""
        new = self.count - seen
        if new <= 0:
            return [], 0
        take = min(new, limit, len(self._ring))
        return self.records(take), new - take
