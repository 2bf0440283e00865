"""Cold starts, two ways, as histograms for `/_emu/metrics`: the container's own start (create to
ready, as emu saw it) and the wait of the first request that needed the start, as its client
waited it (in worker mode: from the request entering the Worker to the container's first answer,
the library's readiness polling and the Worker's own time included)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.core import Metric

# Seconds: a start here takes from a quarter of a second to tens of seconds (a large image).
BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


class ColdStarts:
    """The two histograms of one Emulator, labelled by class (registered by metrics.registry)."""

    def __init__(self) -> None:
        labels = ["class_name"]
        self.container = Histogram(
            "emu_container_start_seconds",
            "A container's own start: created to ready (worker mode: to running)",
            labels,
            registry=None,
            buckets=BUCKETS,
        )
        self.client = Histogram(
            "emu_cold_start_client_seconds",
            "A cold start as its first request waited it: arrival to the container's answer",
            labels,
            registry=None,
            buckets=BUCKETS,
        )

    def collect(self) -> Iterator[Metric]:
        yield from self.container.collect()
        yield from self.client.collect()
