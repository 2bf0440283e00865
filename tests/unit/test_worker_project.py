"""Worker mode's pure logic: the Worker's settings, the generated entry, the npm toolchain's
choices and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.config import load_config
from emulator.worker import toolchain
from emulator.worker.dev_vars import check_dev_vars, secrets_files
from emulator.worker.mode import choose_mode
from emulator.worker.project import SHIM, entry_module, worker_project


def _project(root: Path, extra: str = "") -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.ts").write_text("export class Box extends Container {}\n")
    (root / "wrangler.jsonc").write_text(
        """{
  "name": "w", "main": "src/index.ts", "compatibility_date": "2026-01-02",
  "compatibility_flags": ["nodejs_compat"],
  "vars": {"GREETING": "hi"},
  "containers": [{"class_name": "Box", "image": "nginx:1.22"}],
  "durable_objects": {"bindings": [
    {"name": "BOX", "class_name": "Box"},
    {"name": "ROOM", "class_name": "Room"},
    {"name": "FAR", "class_name": "Far", "script_name": "other"}
  ]},
  "migrations": [{"tag": "v1", "new_sqlite_classes": ["Box", "Room"]}],
  EXTRA
}""".replace("EXTRA", extra)
    )
    return root / "wrangler.jsonc"


def test_worker_settings_come_from_the_config(tmp_path: Path) -> None:
    project = worker_project(load_config(_project(tmp_path)))
    assert project.config_path == tmp_path / "wrangler.jsonc"
    assert project.env is None
    assert project.container_classes == ("Box",)


def test_entry_wraps_each_container_class_and_keeps_the_rest(tmp_path: Path) -> None:
    project = worker_project(load_config(_project(tmp_path)))
    text = entry_module(project, "http://127.0.0.1:4321", "tok")
    main = json.dumps(str(tmp_path / "src" / "index.ts"))
    assert f"export * from {main};" in text  # Room and any other export stay as they are
    assert json.dumps(str(SHIM)) in text
    assert 'export const Box = wrapContainerClass(user["Box"], "Box", FRONT, TOKEN,' in text
    assert "export default wrapWorker(user.default, FRONT, false, TOKEN, {});" in text
    assert 'const TOKEN = "tok";' in text
    # Listening beyond loopback: the Worker passes on only the public part of /_emu/.
    public = entry_module(
        project, "http://127.0.0.1:4321", "tok", public_only=True, cockpit={"feed": True}
    )
    assert 'export default wrapWorker(user.default, FRONT, true, TOKEN, {"feed": true});' in public


def test_containers_version_is_the_projects(tmp_path: Path) -> None:
    assert toolchain.containers_spec(tmp_path)[0] == toolchain.DEFAULT_CONTAINERS_VERSION
    (tmp_path / "package.json").write_text(
        json.dumps({"devDependencies": {"@cloudflare/containers": "^0.3.5"}})
    )
    sub = tmp_path / "worker"
    sub.mkdir()
    assert toolchain.containers_spec(sub) == ("^0.3.5", tmp_path)  # the nearest one up the tree
    plan = toolchain.plan_packages(sub)
    assert plan.wanted == {**toolchain.PINNED, toolchain.CONTAINERS_PACKAGE: "^0.3.5"}
    default = {**toolchain.PINNED, toolchain.CONTAINERS_PACKAGE: "0.3.7"}
    assert toolchain.package_dir(plan.wanted) != toolchain.package_dir(default)  # one per version


def _package(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps({"name": name, "version": "0.3.7"}))
    return folder


def test_the_library_is_found_as_node_finds_it(tmp_path: Path) -> None:
    """A workspace: node_modules hoisted to the root, the package a symlink, a `workspace:*`
    spec npm cannot install. Nothing is installed for it."""
    real = _package(tmp_path / "packages" / "containers", toolchain.CONTAINERS_PACKAGE)
    hoisted = tmp_path / "node_modules" / "@cloudflare"
    hoisted.mkdir(parents=True)
    (hoisted / "containers").symlink_to(real, target_is_directory=True)
    app = tmp_path / "apps" / "web"
    (app / "src").mkdir(parents=True)
    (app / "package.json").write_text(
        json.dumps({"dependencies": {toolchain.CONTAINERS_PACKAGE: "workspace:*"}})
    )
    plan = toolchain.plan_packages(app / "src")
    assert plan.wanted == toolchain.PINNED and plan.containers == real and not plan.linked


def test_file_and_link_specs_point_at_the_folder(tmp_path: Path) -> None:
    real = _package(tmp_path / "vendor" / "containers", toolchain.CONTAINERS_PACKAGE)
    app = tmp_path / "app"
    app.mkdir()
    for spec in ("file:../vendor/containers", "link:../vendor/containers"):
        (app / "package.json").write_text(
            json.dumps({"dependencies": {toolchain.CONTAINERS_PACKAGE: spec}})
        )
        plan = toolchain.plan_packages(app)
        assert plan.wanted == toolchain.PINNED and plan.containers == real and plan.linked


def test_a_local_spec_nothing_holds_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(
        json.dumps({"dependencies": {toolchain.CONTAINERS_PACKAGE: "workspace:*"}})
    )
    with pytest.raises(toolchain.ToolchainError) as caught:
        toolchain.plan_packages(tmp_path)
    message = str(caught.value)
    assert '"@cloudflare/containers": "workspace:*"' in message and "\n" not in message
    assert str(tmp_path / "package.json") in message


def test_dev_vars_lines_wrangler_skips_are_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FROM_ENV=1\n")
    assert secrets_files(tmp_path, None) == [tmp_path / ".env"]  # the .env fallback
    (tmp_path / ".dev.vars").write_text(
        '# a comment\nSECRET=s3cret\nthis line is broken\nQUOTED="a\nb"\nexport X=1\n'
    )
    assert secrets_files(tmp_path, None) == [tmp_path / ".dev.vars"]  # .env is then not read
    warnings = check_dev_vars(tmp_path, None)
    assert warnings == [
        f"{tmp_path / '.dev.vars'}:3: not KEY=VALUE, so wrangler skips it: this line is broken"
    ]
    (tmp_path / ".dev.vars.staging").write_text("S=1\n")
    assert secrets_files(tmp_path, "staging") == [tmp_path / ".dev.vars.staging"]


def test_npm_unreachable_is_said_in_one_line() -> None:
    output = (
        "npm error code ECONNREFUSED\n"
        "npm error syscall connect\n"
        "npm error errno ECONNREFUSED\n"
        "npm error FetchError: request to http://127.0.0.1:9/esbuild failed, reason: connect "
        "ECONNREFUSED 127.0.0.1:9\n"
    )
    message = toolchain.npm_failure(output, "esbuild@0.28.0")
    assert "\n" not in message
    assert message.startswith("npm cannot reach its registry (127.0.0.1:9): ECONNREFUSED")
    other = toolchain.npm_failure("npm error code ETARGET\nnpm error notarget No matching", "x@9")
    assert other == "npm install of x@9 failed: npm error notarget No matching"


def test_mode_follows_the_flag_and_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert not choose_mode(False).worker
    assert choose_mode(None).worker  # the wheel's Node.js, installed with emu
    monkeypatch.setattr(toolchain, "_wheel_node", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # and no node here
    choice = choose_mode(None)
    assert not choice.worker and "no Node.js 22.12 or later" in choice.reason
    old = tmp_path / "node"
    old.write_text("#!/bin/sh\necho v20.20.2\n")
    old.chmod(0o755)
    choice = choose_mode(None)
    assert not choice.worker and "node v20.20.2 on PATH is older than 22.12" in choice.reason
    old.write_text("#!/bin/sh\necho v22.12.0\n")
    assert choose_mode(None).worker
