"""`/_emu/metrics`: Prometheus text, read from the instances' own counters at scrape time, so
the per-request path pays nothing for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from ..instances.instance import State
from ..instances.pool import ClassPool


class EmuCollector(Collector):
    def __init__(self, pools: Callable[[], Iterable[ClassPool]]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[Metric]:
        labels = ["class_name", "instance"]
        requests = CounterMetricFamily(
            "emu_requests", "Requests routed to an instance", labels=labels
        )
        probes = CounterMetricFamily(
            "emu_readiness_probes", "Readiness probes of an instance (not requests)", labels=labels
        )
        starts = CounterMetricFamily("emu_starts", "Container starts of an instance", labels=labels)
        inflight = GaugeMetricFamily("emu_inflight", "Requests in flight", labels=labels)
        healthy = GaugeMetricFamily(
            "emu_instance_healthy", "1 when the instance is healthy", labels=labels
        )
        cold = GaugeMetricFamily(
            "emu_cold_start_seconds", "The instance's last container start", labels=labels
        )
        waited = GaugeMetricFamily(
            "emu_cold_start_client_last_seconds",
            "The instance's last cold start as its first request waited it",
            labels=labels,
        )
        running = GaugeMetricFamily(
            "emu_running_containers", "Containers holding a slot", labels=["class_name"]
        )
        limit = GaugeMetricFamily("emu_max_instances", "max_instances", labels=["class_name"])
        pools = list(self._pools())
        for pool in pools:
            name = pool.config.class_name
            running.add_metric([name], pool.slots_used())
            limit.add_metric([name], pool.config.max_instances)
            for inst in pool.instances.values():
                key = [name, inst.name]
                requests.add_metric(key, inst.requests)
                probes.add_metric(key, inst.probes)
                starts.add_metric(key, inst.starts)
                inflight.add_metric(key, inst.inflight)
                healthy.add_metric(key, 1 if inst.state is State.HEALTHY else 0)
                if inst.cold_start_ms is not None:
                    cold.add_metric(key, inst.cold_start_ms / 1000)
                if inst.client_cold_start_ms is not None:
                    waited.add_metric(key, inst.client_cold_start_ms / 1000)
        yield from (requests, probes, starts, inflight, healthy, cold, waited, running, limit)
        if pools:  # one session's: every pool shares its runtime
            yield from pools[0].runtime.cold_starts.collect()


def registry(pools: Callable[[], Iterable[ClassPool]]) -> CollectorRegistry:
    """A registry of one Emulator's own (never the process-wide default one)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EmuCollector(pools))
    return reg
