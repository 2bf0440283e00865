"""Time expressions: `sleepAfter` as @cloudflare/containers reads it, and emu's duration flags."""

from __future__ import annotations

import math
import re

from emulator.config.jsvalue import js_text

_TIME_EXPRESSION = re.compile(r"^([0-9]+)([smh])$")
_BARE_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}

# Shown next to "invalid time expression ..." so the user knows what to write instead.
ALLOWED_HINT = 'a number of seconds, or a whole number followed by s, m or h, like "15m"'


def parse_sleep_after(value: object) -> float:
    """Seconds for a `sleepAfter` value, as the library's `parseTimeExpression` reads it.

    A number is seconds; a string must match `^(\\d+)([smh])$`. Anything else raises
    ValueError("invalid time expression <value>"). Unlike the library, a negative, infinite or
    NaN number is refused too: the library would let such a container sleep at once or never.
    """
    if isinstance(value, bool):  # a JS boolean is not a number
        raise ValueError(f"invalid time expression {js_text(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
        if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
            raise ValueError(f"invalid time expression {js_text(value)}")
        return seconds
    if isinstance(value, str):
        match = _TIME_EXPRESSION.match(value)
        # `$` in Python also matches before a final newline; the JS regex does not.
        if match is None or value.endswith("\n"):
            raise ValueError(f"invalid time expression {value}")
        return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError(f"invalid time expression {js_text(value)}")


def parse_duration(value: str) -> float:
    """Seconds for a duration flag (`--sleep-after`, `--start-timeout`, `--stop-grace`).

    The `sleepAfter` grammar ("30s", "15m", "1h"), plus a bare number of seconds, which may have
    a fraction ("20", "0.5"). Raises ValueError("invalid time expression <value>").
    """
    if _BARE_NUMBER.match(value) and not value.endswith("\n"):
        return float(value)
    return parse_sleep_after(value)


def format_duration(seconds: float) -> str:
    """A short display form: 900 -> "15m", 5400 -> "1h30m", 0.5 -> "0.5s", 0 -> "0s"."""
    if math.isnan(seconds) or math.isinf(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    whole = int(seconds)
    fraction = seconds - whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or fraction or not parts:
        parts.append(f"{secs + fraction:g}s")
    return "".join(parts)
