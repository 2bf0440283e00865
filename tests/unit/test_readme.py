"""The README shows what emu really prints."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.cli.commands import main

REPO = Path(__file__).resolve().parents[2]
SEED = Path(__file__).resolve().parent / "data" / "seed"  # instance_type on line 43


def test_the_readmes_sample_config_error_is_the_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (REPO / "README.md").read_text()
    after = readme.partition("A bad config is refused before anything starts.")[2]
    match = re.search(r"```text\n(.*?)\n```", after, re.S)
    assert match, "the README's sample error is gone"
    sample = match.group(1)
    shutil.copytree(SEED, tmp_path, dirs_exist_ok=True)
    config = tmp_path / "wrangler.jsonc"
    config.write_text(config.read_text().replace('"standard-2"', '"standard-9"'))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["up"])
    assert result.exit_code == 2
    assert result.output.strip() == sample
