"""Node.js and the npm packages worker mode needs, installed once into a cache outside the project.

miniflare and esbuild are pinned by emu; `@cloudflare/containers` takes the version the project's
package.json asks for (the library is the user's, emu implements only the runtime under it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_NODE_MAJOR = 20
# Versions measured with emu (see docs-draft/worker-mode.md).
PINNED = {"miniflare": "4.20260426.0", "esbuild": "0.28.0"}
CONTAINERS_PACKAGE = "@cloudflare/containers"
DEFAULT_CONTAINERS_VERSION = "0.3.7"  # when the project has no package.json that names it
NPM_TIMEOUT = 600.0
# npm's codes for a registry it cannot reach.
_UNREACHABLE = re.compile(
    r"\b(ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET|ENETUNREACH|EHOSTUNREACH)\b"
)
_REQUEST_URL = re.compile(r"request to (\S+) failed")


class ToolchainError(Exception):
    """Worker mode cannot get what it needs (npm failed); the message is one line."""


@dataclass(frozen=True)
class NodeInfo:
    node: str  # the executable
    version: str  # "v20.20.2"
    npm: str | None


def find_node() -> NodeInfo | str:
    """The Node.js on PATH when it can run worker mode, else why not (one line)."""
    node = shutil.which("node")
    if node is None:
        return "no `node` on PATH"
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`node --version` failed: {exc}"
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        return f"node {version or '?'} is older than {MIN_NODE_MAJOR}"
    return NodeInfo(node=node, version=version, npm=shutil.which("npm"))


def cache_root() -> Path:
    if "EMU_CACHE_DIR" in os.environ:
        return Path(os.environ["EMU_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emu"


def containers_spec(project_dir: Path) -> str:
    """The version of @cloudflare/containers in the nearest package.json, else emu's default."""
    for folder in (project_dir, *project_dir.parents):
        manifest = folder / "package.json"
        if not manifest.is_file():
            continue
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(manifest.read_text())
            for section in ("dependencies", "devDependencies"):
                spec = data.get(section, {}).get(CONTAINERS_PACKAGE)
                if isinstance(spec, str) and spec:
                    return spec
        break
    return DEFAULT_CONTAINERS_VERSION


def packages(project_dir: Path) -> dict[str, str]:
    return {**PINNED, CONTAINERS_PACKAGE: containers_spec(project_dir)}


def package_dir(wanted: Mapping[str, str]) -> Path:
    """Where these exact packages are (or go): one folder per set of versions."""
    key = hashlib.sha256(json.dumps(sorted(wanted.items())).encode()).hexdigest()[:16]
    return cache_root() / "node" / key


def installed(folder: Path) -> bool:
    return (folder / "node_modules" / ".emu-complete").is_file()


async def ensure_packages(
    node: NodeInfo, wanted: Mapping[str, str], notice: Callable[[str], None]
) -> Path:
    """The folder whose node_modules holds `wanted`, installing it with npm when missing."""
    folder = package_dir(wanted)
    if installed(folder):
        return folder
    listing = ", ".join(f"{name}@{version}" for name, version in wanted.items())
    if node.npm is None:
        raise ToolchainError(f"worker mode needs {listing}, and there is no `npm` on PATH")
    notice(f"installing {listing} into {folder} (once)")
    # Installed beside the target and renamed into place, so that a crash or a second emu
    # installing at the same time never leaves a half-filled folder behind.
    work = await asyncio.to_thread(_work_dir, folder, wanted)
    try:
        proc = await asyncio.create_subprocess_exec(
            node.npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            cwd=work,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), NPM_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ToolchainError(
                f"npm install of {listing} took longer than {NPM_TIMEOUT:g} s"
            ) from None
        if proc.returncode != 0:
            raise ToolchainError(npm_failure(output.decode(errors="replace"), listing))
        await asyncio.to_thread(_move_into_place, work, folder, listing)
        return folder
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def _work_dir(folder: Path, wanted: Mapping[str, str]) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    (work / "package.json").write_text(
        json.dumps({"private": True, "dependencies": dict(wanted)}, indent=2)
    )
    return work


def _move_into_place(work: Path, folder: Path, listing: str) -> None:
    (work / "node_modules" / ".emu-complete").write_text(listing + "\n")
    try:
        work.rename(folder)
    except OSError:
        if not installed(folder):  # not a concurrent install that finished first
            raise


def npm_failure(output: str, listing: str) -> str:
    """One line saying why `npm install` failed."""
    unreachable = _UNREACHABLE.search(output)
    if unreachable is not None:
        url = _REQUEST_URL.search(output)
        where = url.group(1).split("/")[2] if url and url.group(1).count("/") >= 2 else None
        registry = f" ({where})" if where else ""
        return (
            f"npm cannot reach its registry{registry}: {unreachable.group(1)}; worker mode "
            f"needs {listing} installed once (or run emu up --no-worker)"
        )
    errors = [line for line in output.splitlines() if "ERR" in line] or output.splitlines()
    last = errors[-1].strip() if errors else "no output"
    return f"npm install of {listing} failed: {last}"
