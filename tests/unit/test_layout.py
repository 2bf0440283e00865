"""The package's shape: no module in emulator/ (subpackages included) over MAX_LINES lines, no
function over MAX_FUNCTION_LINES unless its `def` line says why (`# layout: long because ...`),
the Docker SDK imported in engine/ only, no import cycle between modules, no import from a
higher layer (LAYERS), and every module importable alone."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "emulator"
MAX_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_OK = "# layout: long because"
SDK_PACKAGE = "engine"
# Bottom to top: a module may import from its own layer and the ones below, never above. A layer
# is a subpackage of emulator/ or a top-level module ("__init__" is the facade).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),  # settings from files, flags and the Worker source
    ("engine",),  # the Docker SDK and the engines (local, remote, Swarm)
    ("runs",),  # labels, sweeps, which runs are alive, the reaper
    ("instances",),  # pools, instances, their containers, images and networks
    ("front",),  # the aiohttp app and the proxy
    ("cockpit",),  # /_emu: control, events, metrics, the dashboard
    ("egress",),  # worker mode's outbound interception
    ("worker",),  # worker mode
    ("session", "options", "reload", "reconcile", "watch"),  # the Emulator and its options
    (
        "load",
        "blocking",
        "testing",
        "pytest_plugin",
        "cli",
        "__main__",
        "__init__",
    ),  # what users run
)


def _modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert found, f"no modules under {PACKAGE}"
    return found


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """`name (N lines)` of each function longer than `limit` lines, from its `def` line to its
    last; nested functions count in their own right and in their parent's length."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit and LONG_OK not in lines[node.lineno - 1]:
                found.append(f"{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_module_is_at_most_500_lines(path: Path) -> None:
    count = len(path.read_text().splitlines())
    assert count <= MAX_LINES, f"{_name(path)} has {count} lines; split it by role"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_functions_are_at_most_60_lines(path: Path) -> None:
    assert long_functions(path.read_text()) == [], f"in {_name(path)}"


def test_the_measure_counts_from_def_to_end_and_takes_a_reason() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    assert long_functions(f"def ok():\n{body[: body.rindex('    x59')]}") == []
    assert long_functions(f"def f():\n{body}") == ["f (61 lines)"]
    assert long_functions(f"async def g():\n{body}") == ["g (61 lines)"]
    assert long_functions(f"def h():  {LONG_OK} it is a table\n{body}") == []


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in _modules()}


def _imports(path: Path) -> Iterator[str]:
    """Every module `path` imports (at the top, in a function or under TYPE_CHECKING alike),
    absolute; `from pkg import name` counts as `pkg.name` where that is a module of ours."""
    here = _module(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            source = ".".join([*base, *([node.module] if node.module else [])])
            for a in node.names:
                yield f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of emulator/ it imports."""
    return {
        name: {m for m in _imports(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    unit = parts[1] if len(parts) > 1 else "__init__"
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise AssertionError(f"{module}: not in any layer of LAYERS; add it there")


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{m} -> {t}" for m, targets in graph.items() for t in targets if layer(t) > layer(m)
    )


def test_no_module_imports_from_a_higher_layer() -> None:
    assert upward(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_find_a_cycle_and_an_upward_import() -> None:
    graph = {"emulator.a": {"emulator.b"}, "emulator.b": {"emulator.c"}, "emulator.c": {"a"}}
    graph["emulator.c"] = {"emulator.a"}
    assert cycles(graph) == [["emulator.a", "emulator.b", "emulator.c"]]
    assert cycles({"emulator.a": {"emulator.b"}, "emulator.b": set()}) == []
    assert upward({"emulator.engine.x": {"emulator.front.app"}}) == [
        "emulator.engine.x -> emulator.front.app"
    ]
    assert upward({"emulator.front.app": {"emulator.engine.x"}}) == []


def test_the_docker_sdk_is_imported_in_engine_only() -> None:
    importers = set()
    for path in _modules():
        if any(n == "docker" or n.startswith("docker.") for n in _imports(path)):
            importers.add(_name(path))
    assert importers, "the SDK is imported nowhere: is the check still looking?"
    assert {i for i in importers if not i.startswith(f"emulator/{SDK_PACKAGE}/")} == set()


# Each module imported alone in a fresh process (forked from one that has loaded the
# third-party libraries, so this takes seconds): an import cycle at import time fails here.
_ALONE = r"""
import importlib, os, sys, traceback
for lib in ("aiohttp.web", "click", "docker", "json5", "tree_sitter", "prometheus_client"):
    importlib.import_module(lib)
failed = []
for name in sys.argv[1:]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException:
            os.write(w, traceback.format_exc().strip().splitlines()[-1].encode())
            os._exit(1)
    os.close(w)
    message = os.read(r, 4096).decode()
    os.close(r)
    if os.waitpid(pid, 0)[1] != 0:
        failed.append(f"{name}: {message}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone() -> None:
    names = sorted(n for n in MODULES if not n.endswith("__main__"))
    done = subprocess.run(
        [sys.executable, "-c", _ALONE, *names],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=PACKAGE.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
