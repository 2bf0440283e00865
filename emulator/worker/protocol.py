"""The messages between emu and its JavaScript (js/protocol.json): the runtime API's calls from
the shim, the runner's commands and messages, and the request records, each with its fields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROTOCOL_PATH = Path(__file__).resolve().parent / "js" / "protocol.json"

Fields = Mapping[str, str]  # field -> its type, as protocol.json writes it ("string|null", ...)


@dataclass(frozen=True)
class RuntimeCall:
    request: Fields
    response: Fields | None  # None: free-form (inspect's Docker data)


@dataclass(frozen=True)
class Protocol:
    runtime: Mapping[str, RuntimeCall]  # op -> its fields
    commands: Mapping[str, Fields]  # emu -> runner, by "op"
    messages: Mapping[str, Fields]  # runner -> emu, by "t"
    emu_messages: frozenset[str]  # kinds emu queues itself, which the runner never sends
    records: Mapping[str, Fields]  # "worker", "container"


def load(path: Path = PROTOCOL_PATH) -> Protocol:
    data: dict[str, Any] = json.loads(path.read_text())
    return Protocol(
        runtime={
            op: RuntimeCall(request=call["request"], response=call["response"])
            for op, call in data["runtime"].items()
        },
        commands=data["commands"],
        messages=data["messages"],
        emu_messages=frozenset(data["emu_messages"]),
        records=data["records"],
    )


PROTOCOL = load()
RUNTIME_OPS = tuple(PROTOCOL.runtime)
