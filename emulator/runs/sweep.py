"""Removing what emu runs left behind, by label: a session's, a project's, the images it built.
Which runs are still alive is live.py's."""

from __future__ import annotations

from ..engine.docker_backend import DockerBackend
from . import labels
from .live import alive


async def sweep_session(docker: DockerBackend, session: str) -> list[str]:
    """Remove the containers and networks of one run; returns their names."""
    found = labels.session_filter(session)
    removed: list[str] = []
    for c in await docker.list_containers(found):
        await docker.remove_container(c.id)
        removed.append(c.name)
    for net_id, name, _labels in await docker.list_networks(found):
        await docker.remove_network(net_id)
        removed.append(name)
    return removed


async def sweep_project(
    docker: DockerBackend,
    project: str | None,
    keep_session: str | None = None,
    only_dead: bool = True,
) -> list[str]:
    """Remove containers and networks of earlier runs whose `emu up` is gone (or all, with
    `only_dead=False`); every project's when `project` is None. Returns the names removed."""
    found = labels.project_labels(project)
    removed: list[str] = []
    containers = await docker.list_containers(found)
    networks = await docker.list_networks(found)
    sessions = {c.labels.get(labels.SESSION, ""): c.labels for c in containers}
    sessions.update({lab.get(labels.SESSION, ""): lab for _i, _n, lab in networks})
    dead = {
        s for s, lab in sessions.items() if s != keep_session and (not only_dead or not alive(lab))
    }
    for c in containers:
        if c.labels.get(labels.SESSION, "") in dead:
            await docker.remove_container(c.id)
            removed.append(c.name)
    for net_id, name, lab in networks:
        if lab.get(labels.SESSION, "") in dead:
            await docker.remove_network(net_id)
            removed.append(name)
    return removed


async def remove_images(docker: DockerBackend, project: str | None) -> list[str]:
    """The images emu built for the project (every project's when None); returns their tags."""
    return await docker.remove_images(labels.project_labels(project))
