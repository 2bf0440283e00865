"""The session's Docker networks: made once emu listens (labelled with where it listens, so
that `emu status` finds it), and made again when they are removed under a running emu."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack

from ..engine import in_container
from ..engine.docker_backend import DockerBackend
from ..engine.docker_types import DockerError
from .events import EventFields, EventKind


class Networks:
    def __init__(
        self, docker: DockerBackend, on_event: Callable[[EventKind, EventFields], None]
    ) -> None:
        self._docker = docker
        self._on_event = on_event
        self._wanted: list[tuple[str, bool]] = []  # (name, internal)
        self._labels: dict[str, str] = {}
        self._stack: AsyncExitStack | None = None
        self._restoring: asyncio.Future[None] | None = None

    async def make(
        self,
        wanted: Sequence[tuple[str, bool]],
        network_labels: Mapping[str, str],
        stack: AsyncExitStack,
    ) -> None:
        """Make `wanted` ((name, internal) pairs); the session sweep removes them."""
        self._wanted, self._labels, self._stack = list(wanted), dict(network_labels), stack
        await self._make(exist_ok=False)

    async def restore(self) -> None:
        """Networks removed under a running emu: made again once, for every start that found
        them missing at the same time."""
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.ensure_future(self._make(exist_ok=True))
        await asyncio.shield(self._restoring)

    async def _make(self, *, exist_ok: bool) -> None:
        for name, internal in self._wanted:
            try:
                await self._docker.create_network(name, self._labels, internal=internal)
            except DockerError as exc:
                if not exist_ok or "already exists" not in str(exc):
                    raise
                continue
            if in_container.in_container():  # compose.yaml: reach the instances from in there
                assert self._stack is not None
                await in_container.join(self._docker, self._stack, [name], self._labels)
            if exist_ok:
                self._on_event(EventKind.NETWORK_RECREATED, {"network": name})
