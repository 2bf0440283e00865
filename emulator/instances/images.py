"""Getting the image of a class: build a Dockerfile (cached by a hash of its context) or use a
reference, pulling it only when it is not there locally. `ImageState` is what a pool knows of
its image."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from ..config import ClassConfig
from ..engine.docker_backend import DockerBackend, context_files
from ..engine.docker_types import BuildError, DockerError
from .errors import StartFailed

BUILD_TIMEOUT = 1800.0
PULL_TIMEOUT = 600.0


class ImageState:
    """A class's image: the reference in use, or why there is none."""

    def __init__(self) -> None:
        self.ref: str | None = None
        self.error: str | None = None
        self.log: list[str] = []  # the failed build's last lines
        self._settled = asyncio.Event()  # the first build or pull has ended, either way
        self._rebuild: asyncio.Event | None = None  # set when the rebuild under way ends

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    async def wait(self) -> None:
        """Until the first build or pull has ended (or `release`)."""
        await self._settled.wait()

    def release(self) -> None:
        """Wake whoever waits for the image (emu is shutting down)."""
        self._settled.set()

    def rebuilding(self) -> None:
        """A rebuild (`--watch`) begins: starts wait for it (`rebuilt`) until `done_rebuilding`."""
        if self._rebuild is None:
            self._rebuild = asyncio.Event()

    def done_rebuilding(self) -> None:
        if self._rebuild is not None:
            self._rebuild.set()
            self._rebuild = None

    async def rebuilt(self) -> None:
        """Return once no rebuild is under way, so that a start gets the new image, not the
        one being replaced (a failed rebuild leaves the old one). The build's own timeout
        bounds the wait."""
        if self._rebuild is not None:
            await self._rebuild.wait()

    def use(self, ref: str) -> bool:
        """The image is `ref` from now on; returns whether that is a change."""
        changed = ref != self.ref
        self.ref, self.error, self.log = ref, None, []
        self._settled.set()
        return changed

    def failed(self, cfg: ClassConfig, exc: DockerError) -> str:
        """Record why the image could not be had, unless an earlier one still serves (a
        failed rebuild). Returns the reason."""
        what = "build" if cfg.dockerfile is not None else f"pull of {cfg.image}"
        reason = f"image {what} failed: {exc}"
        if self.ref is None:
            self.error = reason
            self.log = list(exc.log_tail) if isinstance(exc, BuildError) else []
        self._settled.set()
        return reason

    def require(self) -> str:
        """The reference to start a container from; StartFailed when there is none."""
        if self.error is not None:
            raise StartFailed(self.error, logs=self.log)
        if self.ref is None:
            raise StartFailed("the image is not built yet")
        return self.ref


def image_tag(cfg: ClassConfig, digest: str) -> str:
    repo = re.sub(r"[^a-z0-9._-]+", "-", cfg.name.lower()).strip("-._") or "container"
    return f"emu-{repo}:{digest[:16]}"


async def prepare_image(
    docker: DockerBackend,
    cfg: ClassConfig,
    labels: Mapping[str, str],
    on_line: Callable[[str], None],
) -> str:
    """Return a local image reference for the class. Raises BuildError or DockerError."""
    if cfg.dockerfile is None or cfg.build_context is None:
        if not await docker.image_exists(cfg.image):
            on_line(f"pulling {cfg.image}")
            await docker.pull(cfg.image, PULL_TIMEOUT, on_line)
        return cfg.image
    loop = asyncio.get_running_loop()
    try:
        digest = await loop.run_in_executor(
            None, context_digest, cfg.build_context, cfg.dockerfile, dict(cfg.image_vars)
        )
    except OSError as exc:  # a file went away mid-walk (an editor's save), or is unreadable
        raise BuildError(f"cannot read the build context: {exc}", []) from exc
    tag = image_tag(cfg, digest)
    if await docker.image_exists(tag):
        on_line(f"image {tag} is up to date (build context unchanged)")
        return tag
    on_line(f"building {tag} from {cfg.dockerfile}")
    await docker.build(
        context=cfg.build_context,
        dockerfile=cfg.dockerfile,
        tag=tag,
        buildargs=cfg.image_vars,
        labels=labels,
        on_line=on_line,
        timeout=BUILD_TIMEOUT,
    )
    return tag


@functools.cache
def _hash_file(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def context_digest(context: Path, dockerfile: Path, buildargs: Mapping[str, str]) -> str:
    """A hash of what `docker build` would send (honouring .dockerignore), plus the build args."""
    ignore = context / ".dockerignore"
    patterns: list[str] = []
    if ignore.is_file():
        patterns = [
            line.strip()
            for line in ignore.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
    rel_dockerfile = os.path.relpath(dockerfile, context)
    h = hashlib.sha256()
    h.update(rel_dockerfile.encode())
    for key in sorted(buildargs):
        h.update(f"\0arg {key}={buildargs[key]}".encode())
    for rel in context_files(context, patterns, rel_dockerfile):
        full = context / rel
        try:
            st = full.lstat()
        except OSError:
            continue
        h.update(f"\0{rel}\0{st.st_mode:o}".encode())
        if full.is_symlink():
            h.update(os.readlink(full).encode())
        elif full.is_file():
            h.update(_hash_file(str(full), st.st_mtime_ns, st.st_size).encode())
    if not dockerfile.is_relative_to(context):
        h.update(dockerfile.read_bytes())
    return h.hexdigest()
