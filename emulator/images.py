"""Getting the image of a class: build a Dockerfile (cached by a hash of its context) or use a
reference, pulling it only when it is not there locally."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping

from .config import ClassConfig
from .docker_backend import BuildError, DockerBackend, context_digest

BUILD_TIMEOUT = 1800.0
PULL_TIMEOUT = 600.0


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
        labels={**labels, "emu.class": cfg.class_name},
        on_line=on_line,
        timeout=BUILD_TIMEOUT,
    )
    return tag
