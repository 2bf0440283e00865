"""After the Docker engine was away: emu's instances matched with what the engine has."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from .engine.backoff import Backoff, retry
from .engine.docker_backend import DockerBackend
from .engine.docker_types import DockerError
from .instances.events import EventFields, EventKind
from .instances.pool import ClassPool
from .runs import labels

# Retried (the engine's first answers can fail while it is still starting up), for at most this
# long in all.
RECONCILE_BACKOFF = Backoff(first=0.2, cap=2.0, total=15.0)


class Reconciler:
    """One matching at a time: a new one (the engine came back again) replaces a running one."""

    def __init__(
        self,
        pools: Mapping[str, ClassPool],
        docker: DockerBackend,
        session: str,
        on_event: Callable[[EventKind, EventFields], None],
        out: Callable[[str, str], None],
    ) -> None:
        self._pools = pools
        self._docker = docker
        self._session = session
        self._on_event = on_event
        self._out = out
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is not None:  # an earlier one may have met the engine away
            self._task.cancel()
        self._task = asyncio.create_task(self._run(), name="reconcile")

    async def _run(self) -> None:
        """An instance whose container died meanwhile is marked stopped (the next request starts
        a fresh one), and containers of this session that no instance owns any more (dead ones
        the engine could not remove) are removed."""
        try:
            await retry(self._once, RECONCILE_BACKOFF, DockerError)
        except DockerError as exc:
            self._out("emu", f"could not match instances with the engine: {exc}")
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _once(self) -> None:
        await asyncio.gather(*(pool.reconcile() for pool in self._pools.values()))
        for c in await self._docker.list_containers(labels.session_filter(self._session)):
            pool = self._pools.get(c.labels.get(labels.CLASS, ""))
            if labels.ROLE in c.labels:
                continue  # emu's own helper (emulator/egress/), not an instance's
            if pool is None or not pool.claims(c.id, c.labels.get(labels.INSTANCE, "")):
                await self._docker.remove_container(c.id)
                self._on_event(
                    EventKind.REMOVED, {"container": c.name, "reason": "no instance owns it"}
                )

    async def cancel(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
