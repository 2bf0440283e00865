"""JavaScript values as Python holds them: how JS prints them, and how emu's messages name them.

The one copy of these helpers, shared by the config loader, the Worker-source scan and the
duration parser. JSON and JS literals arrive as bool, int, float, str, list, dict or None.
"""

from __future__ import annotations

import json
import math


def js_string(value: object) -> str | None:
    """JS `String(value)` for a scalar; None for an object or array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() else repr(value)
    if value is None:
        return "null"
    return None


def js_text(value: object) -> str:
    """How JS prints `value` inside a template string (`${value}`), for error messages."""
    text = js_string(value)
    return text if text is not None else str(value)


def is_integer(value: object) -> bool:
    """An int that is not a bool (JSON's whole numbers)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_whole(value: object) -> bool:
    """A JS number with no fraction: 8080 and 8080.0 alike (JS has one number type)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def literal(value: object) -> str:
    """A value as it is written in a config file: `true`, `null`, `"text"`, `an array`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return str(value)


def kind(value: object) -> str:
    """A value named by its kind, for source scans: `a boolean`, `the number 3`, `an array`."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {js_string(value)}"
    if isinstance(value, str):
        return f"the string {json.dumps(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
