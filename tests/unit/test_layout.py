"""The package's shape: no module in emulator/ (subpackages included) over MAX_LINES lines, no
function over MAX_FUNCTION_LINES unless its `def` line says why (`# layout: long because ...`),
and the Docker SDK imported in one module only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "emulator"
MAX_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_OK = "# layout: long because"
SDK_MODULE = "engine/docker_backend.py"


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


def test_the_docker_sdk_is_imported_in_one_module() -> None:
    importers = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(n == "docker" or n.startswith("docker.") for n in names):
                importers.add(path.relative_to(PACKAGE).as_posix())
    assert importers == {SDK_MODULE}
