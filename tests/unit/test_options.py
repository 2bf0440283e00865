"""The options object: one list of the Emulator's options, which every caller builds alike."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from emulator.config import Overrides
from emulator.config.model import OverrideFields
from emulator.options import EmulatorOptions

PACKAGE = Path(__file__).resolve().parents[2] / "emulator"


def test_override_keywords_are_the_overrides_fields() -> None:
    fields = typing.get_type_hints(Overrides)
    assert typing.get_type_hints(OverrideFields) == fields


def test_the_options_are_frozen_and_default_to_emu_ups_defaults() -> None:
    options = EmulatorOptions()
    assert (options.worker, options.reaper, options.request_feed, options.debug_headers) == (
        None,
        True,
        True,
        True,
    )
    try:
        options.watch = True  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("EmulatorOptions is not frozen")


def test_no_caller_passes_emulator_options_as_loose_keywords() -> None:
    """`Emulator(config, options)` only: no `**options: Any` pass-through is left."""
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if "**options: Any" in path.read_text() or "Emulator(config, **" in path.read_text()
    ]
    assert offenders == []
