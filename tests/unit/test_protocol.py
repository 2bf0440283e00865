"""The Python side of the messages with emu's JavaScript, against their one definition
(emulator/worker/js/protocol.json): every op api.py serves and every field it reads, every
request record field records.py reads, every command runtime.py sends and every message kind it
handles. The JavaScript side is checked by the emu/protocol ESLint rule (tests/js/)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from emulator.worker import api, describe, records, runtime
from emulator.worker.protocol import PROTOCOL, PROTOCOL_PATH, RUNTIME_OPS, Fields, load
from tests.unit.test_worker_api import FakeHost

SAMPLES: dict[str, Any] = {
    "string": "x",
    "integer": 15,
    "number": 1.5,
    "boolean": True,
    "object": {},
    "array": [],
    "any": "x",
}
SAMPLE_FIELDS: dict[str, Any] = {"cmd": ["true"], "cold_waits_ms": [3.0]}


class Reading(dict[str, Any]):
    """A body that notes every field its reader asks for."""

    def __init__(self, fields: Fields) -> None:
        super().__init__({name: _sample(name, kind) for name, kind in fields.items()})
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def _sample(name: str, kind: str) -> Any:
    return SAMPLE_FIELDS.get(name, SAMPLES[kind.split("|")[0].rstrip("?")])


def test_every_field_has_a_known_type() -> None:
    shapes: list[Mapping[str, str]] = [
        *(c.request for c in PROTOCOL.runtime.values()),
        *(c.response for c in PROTOCOL.runtime.values() if c.response is not None),
        *PROTOCOL.commands.values(),
        *PROTOCOL.messages.values(),
        *PROTOCOL.records.values(),
    ]
    for fields in shapes:
        for kind in fields.values():
            for part in kind.rstrip("?").split("|"):
                assert part in SAMPLES or part == "null", kind


def test_api_serves_exactly_the_defined_ops() -> None:
    async def map_stack(text: str) -> str:
        return text

    served = {
        r.path.removeprefix("/_emu/runtime/")
        for r in api.routes(FakeHost(), "t", map_stack)
        if isinstance(r, web.RouteDef)
    }
    assert served == set(RUNTIME_OPS)


@pytest.mark.parametrize("op", [op for op in RUNTIME_OPS if op != "stack"])
async def test_api_reads_and_answers_only_defined_fields(op: str) -> None:
    call = PROTOCOL.runtime[op]
    body = Reading(call.request)
    answer = await getattr(api._Calls(FakeHost()), op)(body)
    assert body.read <= set(call.request), f"{op} reads fields protocol.json lacks"
    if call.response is not None:
        assert set(answer) == set(call.response), f"{op} answers other fields"


def test_records_read_only_defined_fields() -> None:
    worker, container = PROTOCOL.records["worker"], PROTOCOL.records["container"]
    inner = Reading(container)
    outer = Reading(worker)
    outer["containers"] = [inner]
    extra = records.worker_record(outer)[9]
    assert extra is not None
    extra.fields()
    untied = Reading(container)
    records.untied_record(untied)
    assert outer.read <= set(worker)
    assert inner.read | untied.read <= set(container)
    assert inner.read and untied.read


def _sent_dicts(tree: ast.AST, key: str) -> list[tuple[str, set[str]]]:
    """Dict literals with a constant `key` (`{"op": "map", ...}`): that value and the other keys."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
        if key not in keys:
            continue
        value = node.values[keys.index(key)]
        assert isinstance(value, ast.Constant), ast.unparse(node)
        found.append((str(value.value), {str(k) for k in keys} - {key}))
    return found


def _handled_kinds(tree: ast.AST) -> set[str]:
    """Kinds compared with a message's "t" (`kind == "log"`, `m["t"] == ...`, `m.get("t") ==`)
    or awaited (`self._next("ready", ...)`)."""

    def is_kind(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "kind"
        if isinstance(node, ast.Subscript):
            return isinstance(node.slice, ast.Constant) and node.slice.value == "t"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            args = node.args
            return node.func.attr == "get" and bool(args) and ast.literal_eval(args[0]) == "t"
        return False

    kinds: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and is_kind(node.left):
            kinds |= {str(c.value) for c in node.comparators if isinstance(c, ast.Constant)}
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_next"
        ):
            kinds |= {str(a.value) for a in node.args if isinstance(a, ast.Constant)}
    return kinds


def _tree(module: Any) -> ast.AST:
    return ast.parse(Path(module.__file__).read_text())


def test_runtime_sends_defined_commands() -> None:
    sent = _sent_dicts(_tree(runtime), "op")
    assert {op for op, _ in sent} == set(PROTOCOL.commands)
    for op, fields in sent:
        assert fields <= set(PROTOCOL.commands[op]), op


def test_runtime_handles_every_defined_message() -> None:
    handled = _handled_kinds(_tree(runtime)) | _handled_kinds(_tree(describe))
    assert handled == set(PROTOCOL.messages)
    for kind, fields in _sent_dicts(_tree(runtime), "t"):
        assert kind in PROTOCOL.emu_messages
        assert fields <= set(PROTOCOL.messages[kind])


def test_a_misspelled_kind_or_op_fails(tmp_path: Path) -> None:
    """The checks above can fail: a handler of a kind, or an op, the definition lacks."""
    tree = ast.parse(
        'async def f(self):\n    m = await self._next("raedy")\n    if m["t"] == "ok": pass'
    )
    assert not _handled_kinds(tree) <= set(PROTOCOL.messages)
    tree = ast.parse('self._send({"op": "srve"})')
    assert not {op for op, _ in _sent_dicts(tree, "op")} <= set(PROTOCOL.commands)
    data = json.loads(PROTOCOL_PATH.read_text())
    data["runtime"]["monitr"] = data["runtime"].pop("monitor")
    (tmp_path / "p.json").write_text(json.dumps(data))
    assert set(load(tmp_path / "p.json").runtime) != set(RUNTIME_OPS)
