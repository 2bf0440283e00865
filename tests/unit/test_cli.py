"""The CLI's thin layer, without Docker: `emu config`, flag errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.cli.commands import main
from emulator.runs.labels import project_id
from tests.support import Project


def test_config_shows_each_setting_with_its_origin(tmp_path: Path) -> None:
    path = Project(sleep_after="2m").write(tmp_path)
    result = CliRunner().invoke(main, ["config", "-c", str(path), "--instances", "4"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert lines["max_instances"].split()[1] == "10"
    assert "wrangler.jsonc:" in lines["max_instances"]
    assert "standard-2" in lines["instance_type"]
    assert "src/index.ts:" in lines["sleep_after"] and " 2m " in lines["sleep_after"]
    assert lines["instances"].split()[1] == "4"
    assert lines["instances"].rstrip().endswith("flag --instances")
    assert lines["start_timeout"].split()[1:] == ["20s", "default"]


def test_config_json(tmp_path: Path) -> None:
    path = Project().write(tmp_path)
    result = CliRunner().invoke(main, ["config", "-c", str(path), "--json", "--port", "9000"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["settings"]["port"] == {"value": 9000, "origin": "flag --port"}
    cls = data["classes"][0]
    assert cls["class_name"] == "PythonExecutorContainer"
    assert cls["settings"]["instances"]["value"] == 10
    assert cls["settings"]["default_port"]["value"] == 8000
    assert cls["settings"]["default_port"]["origin"].endswith("src/index.ts:4")


def test_bad_flag_is_exit_2_and_one_line(tmp_path: Path) -> None:
    path = Project().write(tmp_path)
    result = CliRunner().invoke(main, ["config", "-c", str(path), "--sleep-after", "1h30m"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        'emu: flag --sleep-after: invalid time expression 1h30m; allowed: "30s", "15m", "1h" '
        "or a number of seconds like 20 or 0.5"
    ]


def test_no_config_here_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 2
    assert "no wrangler config here" in result.output


def test_env_flag_picks_the_wrangler_environment(tmp_path: Path) -> None:
    path = Project().write(tmp_path)
    text = path.read_text()
    head, _, _ = text.rpartition("}")
    path.write_text(
        head
        + """  "env": {
    "staging": {
      "containers": [
        {"class_name": "PythonExecutorContainer", "image": "./Dockerfile", "max_instances": 4},
      ],
      "durable_objects": {
        "bindings": [{"name": "PYTHON_EXECUTOR", "class_name": "PythonExecutorContainer"}],
      },
    },
  },
}
"""
    )
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    result = CliRunner().invoke(main, ["config", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    plain = json.loads(result.output)
    assert plain["classes"][0]["settings"]["max_instances"]["value"] == 10
    for flag in ("--env", "-e"):
        result = CliRunner().invoke(main, ["config", "-c", str(path), "--json", flag, "staging"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["settings"]["env"] == {"value": "staging", "origin": "flag --env"}
        assert data["settings"]["worker_name"]["value"] == "research-api-staging"
        assert data["classes"][0]["settings"]["max_instances"]["value"] == 4
    from_env = CliRunner().invoke(
        main, ["config", "-c", str(path), "--json"], env={"CLOUDFLARE_ENV": "staging"}
    )
    assert json.loads(from_env.stdout)["settings"]["env"] == {
        "value": "staging",
        "origin": "$CLOUDFLARE_ENV",
    }
    result = CliRunner().invoke(main, ["config", "-c", str(path), "--env", "prod"])
    assert result.exit_code == 2
    assert result.output.startswith("emu: flag --env: ")
    assert 'wrangler.jsonc has no environment "prod"; it has staging\n' in result.output


def test_status_asks_the_configs_dev_port(tmp_path: Path) -> None:
    path = Project().write(tmp_path)
    text = path.read_text()
    path.write_text(text.replace('"main":', '"dev": {"port": 9},\n  "main":', 1))
    result = CliRunner().invoke(main, ["status", "-c", str(path)])
    assert result.exit_code == 1
    assert "no emu up answers at http://127.0.0.1:9 " in result.output


def test_one_config_is_one_project_however_it_is_reached(tmp_path: Path) -> None:
    path = Project().write(tmp_path / "proj")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "proj")
    same = {
        project_id(path),
        project_id(tmp_path / "sub" / ".." / "proj" / "wrangler.jsonc"),
        project_id(tmp_path / "link" / "wrangler.jsonc"),
    }
    assert len(same) == 1
