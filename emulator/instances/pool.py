"""The instances of one Container class: which name a request gets, how many may run, and
what a class shares (its image, its network, the session's runtime)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable, Iterable
from typing import Unpack

from ..config import ClassConfig
from ..engine.docker_types import Event
from .errors import EmuHTTPError
from .events import EventFields, EventKind
from .images import ImageState
from .instance import HOLDS_SLOT, Instance, State
from .runtime import Named, Runtime
from .spec import capacity_note
from .status import ClassStatus

MAX_REMEMBERED = 1000  # instance records per class before stopped ones are forgotten


class ClassPool:
    """The instances of one Container class."""

    def __init__(self, config: ClassConfig, runtime: Runtime, rng: random.Random) -> None:
        self.config = config
        self.runtime = runtime
        self.rng = rng
        self._names = _names(config)  # what pick() chooses from, made once per config
        self.instances: dict[str, Instance] = {}
        self.by_container: dict[str, Instance] = {}
        self.image = ImageState()
        # Not (or no longer) under their name: replacements being started beside a running
        # instance, and the instances they replaced while those stop. They hold slots.
        self.extra: set[Instance] = set()
        self._swaps: set[asyncio.Task[None]] = set()

    @property
    def worker_mode(self) -> bool:
        return self.runtime.worker_mode

    @property
    def network(self) -> str:
        rt = self.runtime
        return rt.network if self.config.enable_internet else rt.internal_network

    def pick(self) -> str:
        """getRandom parity: uniform over instance-0 .. instance-(N-1), independently per call."""
        names = self._names
        return names[int(self.rng.random() * len(names))]

    def get(self, name: str) -> Instance:
        inst = self.instances.get(name)
        if inst is None:
            if len(self.instances) >= MAX_REMEMBERED:
                self._forget_idle()
            inst = self.instances[name] = Instance(self, name)
        return inst

    def _forget_idle(self) -> None:
        """Names come from clients (`x-emu-instance`, one per user, say): keep the record of
        stopped ones bounded, forgetting the longest idle first."""
        idle = [i for i in self.instances.values() if i.forgettable()]
        idle.sort(key=lambda i: i.last_activity or 0.0)
        for inst in idle[: len(self.instances) - MAX_REMEMBERED // 2]:
            del self.instances[inst.name]

    def holding_slots(self) -> list[Instance]:
        return [i for i in (*self.instances.values(), *self.extra) if i.state in HOLDS_SLOT]

    def slots_used(self) -> int:
        return len(self.holding_slots())

    def emit(self, kind: EventKind, inst: Named, **extra: Unpack[EventFields]) -> None:
        fields: EventFields = {"class": self.config.class_name, "instance": inst.name}
        fields.update(extra)
        self.runtime.on_event(kind, fields)

    def on_docker_event(self, event: Event) -> None:
        inst = self.by_container.get(event.container_id)
        if inst is not None:
            inst.on_docker_event(event)

    async def reconcile(self) -> None:
        """Match every instance with what the engine has (after the engine came back)."""
        await asyncio.gather(*(inst.verify() for inst in list(self.instances.values())))

    def claims(self, container_id: str, instance: str) -> bool:
        """Is this container (of instance name `instance`) one of ours, or one being started
        right now?"""
        if container_id in self.by_container:
            return True
        inst = self.instances.get(instance)
        return inst is not None and inst.state is State.STARTING

    def reconfigure(self, config: ClassConfig) -> list[str]:
        """Take new settings; returns the names of those that changed."""
        before, self.config = self.config, config
        self._names = _names(config)
        return [
            f.name
            for f in dataclasses.fields(ClassConfig)
            if f.name != "origins" and getattr(before, f.name) != getattr(config, f.name)
        ]

    def replace_running(self, reason: str, grace: float) -> None:
        """Replace every instance that has a container. A healthy one, while `max_instances`
        leaves a slot, keeps serving until its replacement is healthy, then stops; the others
        stop now, and the next request for them starts afresh."""
        for inst in list(self.instances.values()):
            if inst.state is State.HEALTHY and self.slots_used() < self.config.max_instances:
                new = Instance(self, inst.name, container_suffix=f"-r{inst.starts + 1}")
                self.extra.add(new)
                task = asyncio.create_task(self._swap(inst, new, reason, grace))
                self._swaps.add(task)
                task.add_done_callback(self._swaps.discard)
            elif inst.container_id is not None:
                inst.stop(reason, grace)

    async def _swap(self, old: Instance, new: Instance, reason: str, grace: float) -> None:
        """Start `new` beside `old`; once it is healthy, it takes the name and `old` retires."""
        try:
            await new.ensure_started()
        except Exception:  # logged by its start; the plain way then: the next request starts one
            old.stop(reason, grace)
            return
        finally:
            self.extra.discard(new)
        closing = self.runtime.state.closing
        if closing or self.instances.get(old.name) is not old:
            new.stop("emu is shutting down" if closing else "replaced meanwhile", grace)
            return
        new.requests, new.starts = old.requests, old.starts + new.starts
        self.instances[old.name] = new
        self.extra.add(old)
        old.stop(reason, grace).add_done_callback(lambda _: self.extra.discard(old))

    def stop_all(self, grace: float) -> list[asyncio.Task[None]]:
        return [
            inst.stop("emu is shutting down", grace)
            for inst in (*self.instances.values(), *self.extra)
            if inst.container_id is not None or inst.starting
        ]

    def snapshot(self) -> ClassStatus:
        cfg = self.config
        return {
            "class_name": cfg.class_name,
            "binding": cfg.binding,
            "name": cfg.name,
            "image": self.image.ref,
            "image_error": self.image.error,
            # getRandom's N: where the Worker calls getRandom, or emu routes as it does
            # (no-worker mode); None for a Worker that picks its instances otherwise.
            "instances_n": cfg.instances if cfg.get_random or not self.worker_mode else None,
            # The instances the Worker's requests reached (a prewarmed one may have none yet).
            "reached": [i.name for i in sorted(self.instances.values(), key=_order) if i.requests],
            "max_instances": cfg.max_instances,
            "running": self.slots_used(),
            "instance_type": {
                "name": cfg.instance_type.name,
                "vcpu": cfg.instance_type.vcpu,
                "memory_mib": cfg.instance_type.memory_mib,
                "disk_mb": cfg.instance_type.disk_mb,
            },
            # What of the instance type this engine cannot give (CPU capped), or None.
            "engine_note": capacity_note(cfg.instance_type, self.runtime.capacity),
            "default_port": cfg.default_port,
            "required_ports": list(cfg.required_ports),
            "sleep_after_s": cfg.sleep_after,
            "ping_endpoint": cfg.ping_endpoint,
            "enable_internet": cfg.enable_internet,
            "instances": [i.snapshot() for i in sorted(self.instances.values(), key=_order)],
        }


async def prewarm(pools: Iterable[ClassPool], n: int, out: Callable[[str, str], None]) -> None:
    """Start instance-0 .. instance-(n-1) of every class (at most max_instances), at once."""
    starts = []
    for pool in pools:
        count = min(n, pool.config.max_instances)
        if count < n:
            out("emu", f"prewarm: {pool.config.class_name} starts {count} (its max_instances)")
        starts += [pool.get(f"instance-{k}").ensure_started() for k in range(count)]
    for result in await asyncio.gather(*starts, return_exceptions=True):
        if isinstance(result, EmuHTTPError):
            out("emu", f"prewarm: {result.error}")
        elif isinstance(result, BaseException):
            raise result


def _order(inst: Instance) -> tuple[int, str]:
    head, _, tail = inst.name.rpartition("-")
    return (int(tail), head) if head == "instance" and tail.isdigit() else (1 << 30, inst.name)


def _names(config: ClassConfig) -> tuple[str, ...]:
    return tuple(f"instance-{i}" for i in range(config.instances))
