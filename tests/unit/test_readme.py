"""The README and docs/ show what emu really prints, document every command and flag, and link
only to files and headings that exist."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from emulator.cli.commands import main

REPO = Path(__file__).resolve().parents[2]
SEED = Path(__file__).resolve().parent / "data" / "seed"  # instance_type on line 43
PAGES = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
# Linked from those, and checked for their links alike.
OTHER_PAGES = [REPO / "bench" / "README.md", REPO / "executor" / "README.md"]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^()\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


def _prose(text: str) -> str:
    """The text outside fenced code blocks, where links and headings are Markdown's."""
    return FENCE.sub("", text)


def _docs() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces
    to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(_prose(page.read_text())):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _flags(command: click.Command) -> Iterator[str]:
    for param in command.params:
        if isinstance(param, click.Option):
            yield from (
                o for o in [*param.opts, *param.secondary_opts] if o not in ("-h", "--help")
            )


def test_the_sample_config_error_is_the_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    after = page.partition("A bad config is refused before anything starts.")[2]
    match = re.search(r"```text\n(.*?)\n```", after, re.S)
    assert match, "docs/configuration.md's sample error is gone"
    sample = match.group(1)
    shutil.copytree(SEED, tmp_path, dirs_exist_ok=True)
    config = tmp_path / "wrangler.jsonc"
    config.write_text(config.read_text().replace('"standard-2"', '"standard-9"'))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["up"])
    assert result.exit_code == 2
    assert result.output.strip() == sample


def test_every_command_has_a_row_in_the_cli_page() -> None:
    cli = (REPO / "docs" / "cli.md").read_text()
    first_cells = re.findall(r"^\| (`emu .*?) \|", cli, re.M)
    rows = {name for cell in first_cells for name in re.findall(r"`emu ([a-z]+)", cell)}
    assert set(main.commands) <= rows, set(main.commands) - rows


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_flag_of_a_command_is_documented(name: str) -> None:
    """Each flag, as `emu NAME --help` lists it, is named somewhere in README.md or docs/, as a
    whole word (`-e` does not count as `--env`, nor `--persist` as `--persist-to`)."""
    docs = _docs()
    missing = [
        flag
        for flag in _flags(main.commands[name])
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", docs)
    ]
    assert not missing, f"emu {name}: {missing} not in README.md or docs/"
    assert f"emu {name}" in docs


def test_the_top_level_flags_are_documented() -> None:
    docs = _docs()
    assert [*_flags(main)] == ["--version"]
    assert "emu --version" in docs


def broken_links(page: Path) -> list[str]:
    """The relative links of a Markdown page whose file, or heading, does not exist."""
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix != ".md":
            broken.append(f"{target}: an anchor into a file that is not Markdown")
        elif anchor and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading in {linked.name}")
    return broken


@pytest.mark.parametrize("page", PAGES + OTHER_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    assert not broken_links(page)


def test_the_readme_links_every_page_of_docs() -> None:
    readme = REPO / "README.md"
    linked = {
        (readme.parent / t.partition("#")[0]).resolve() for t in LINK.findall(readme.read_text())
    }
    assert {
        p.resolve() for p in PAGES if p.parent == REPO / "docs" and p.name != "index.md"
    } <= linked


def test_the_link_check_finds_a_missing_file_and_heading(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Title\n\n## Two words\n\n## Two words\n")
    page = tmp_path / "a.md"
    page.write_text(
        "# A\n\n[ok](b.md#two-words) [ok](b.md#two-words-1) [ok](#a) [web](https://x.org/y)\n"
        "[gone](c.md) [nohead](b.md#three) [self](#b)\n\n```text\n[code](not-a-link.md)\n```\n"
    )
    assert broken_links(page) == [
        "c.md: no such file",
        "b.md#three: no such heading in b.md",
        "#b: no such heading in a.md",
    ]


def test_the_slug_is_githubs() -> None:
    assert slug("`/_emu/status`, `/_emu/events` and `/_emu/metrics`") == (
        "_emustatus-_emuevents-and-_emumetrics"
    )
    assert slug("Two modes: worker and no-worker") == "two-modes-worker-and-no-worker"
    assert slug("Routing (no-worker mode)") == "routing-no-worker-mode"
