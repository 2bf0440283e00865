from __future__ import annotations

import pytest

from emulator.config.durations import format_duration, parse_duration, parse_sleep_after


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (90, 90.0),
        (2.5, 2.5),
        ("0s", 0.0),
        ("30s", 30.0),
        ("15m", 900.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("007s", 7.0),
    ],
)
def test_sleep_after_accepts_library_grammar(value: object, seconds: float) -> None:
    assert parse_sleep_after(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["1h30m", "1.5h", "500ms", "1d", "10 m", " 10m", "10m ", "10m\n", "m", "", "10", "-5s", "10M"],
)
def test_sleep_after_refuses_other_strings(value: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_sleep_after(value)
    assert str(caught.value) == f"invalid time expression {value}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (None, "null"), (-1, "-1"), (float("nan"), "NaN"), (float("inf"), "Infinity")],
)
def test_sleep_after_refuses_non_strings_that_are_not_usable_numbers(
    value: object, shown: str
) -> None:
    with pytest.raises(ValueError, match=f"^invalid time expression {shown}$"):
        parse_sleep_after(value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("15m", 900.0), ("1h", 3600.0), ("20", 20.0), ("0.5", 0.5), ("0", 0.0), ("45s", 45.0)],
)
def test_parse_duration_accepts_grammar_and_bare_numbers(value: str, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["1h30m", "1.5h", "500ms", "1d", "10 m", ".5", "5.", "-1", "1e3"])
def test_parse_duration_refuses_the_rest(value: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid time expression "):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "0.5s"),
        (20, "20s"),
        (600, "10m"),
        (900, "15m"),
        (3600, "1h"),
        (5400, "1h30m"),
        (3661, "1h1m1s"),
        (90.25, "1m30.25s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "15m", "2h"])
def test_format_duration_round_trips_the_grammar(text: str) -> None:
    assert format_duration(parse_sleep_after(text)) == text


@pytest.mark.parametrize("value", ["\u0663s", "\uff12m", "\u0967h", "\u0663"])
def test_non_ascii_digits_are_refused(value: str) -> None:
    # The library's `\d` is ASCII only: Arabic-Indic or full-width digits are no time expression.
    with pytest.raises(ValueError, match="invalid time expression"):
        parse_duration(value)
    with pytest.raises(ValueError, match="invalid time expression"):
        parse_sleep_after(value)
