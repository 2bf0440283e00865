"""Worker mode's pure logic: the Worker's settings, the generated entry, the npm toolchain's
choices and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.config import Overrides, load_config
from emulator.worker import toolchain
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
    assert project.compatibility_date == "2026-01-02"
    assert project.compatibility_flags == ("nodejs_compat",)
    assert project.vars == {"GREETING": "hi"}
    # Every class of this Worker is bound; one of another script is not ours to run.
    assert project.durable_objects == {"BOX": "Box", "ROOM": "Room"}
    assert project.container_classes == ("Box",)


def test_an_environment_has_its_own_vars_and_bindings(tmp_path: Path) -> None:
    extra = """"env": {"staging": {
      "vars": {"GREETING": "staging"},
      "containers": [{"class_name": "Box", "image": "nginx:1.22"}],
      "durable_objects": {"bindings": [{"name": "BOX", "class_name": "Box"}]}
    }}"""
    config = load_config(_project(tmp_path, extra), Overrides(env="staging"))
    project = worker_project(config)
    assert project.vars == {"GREETING": "staging"}
    assert project.durable_objects == {"BOX": "Box"}
    assert project.compatibility_date == "2026-01-02"  # inherited, as in wrangler


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
    assert toolchain.containers_spec(tmp_path) == toolchain.DEFAULT_CONTAINERS_VERSION
    (tmp_path / "package.json").write_text(
        json.dumps({"devDependencies": {"@cloudflare/containers": "^0.3.5"}})
    )
    sub = tmp_path / "worker"
    sub.mkdir()
    assert toolchain.containers_spec(sub) == "^0.3.5"  # the nearest package.json up the tree
    wanted = toolchain.packages(sub)
    assert wanted["miniflare"] == toolchain.PINNED["miniflare"]
    default = {**toolchain.PINNED, toolchain.CONTAINERS_PACKAGE: "0.3.7"}
    assert toolchain.package_dir(wanted) != toolchain.package_dir(default)  # a cache per version


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
    monkeypatch.setenv("PATH", str(tmp_path))  # no node here
    choice = choose_mode(None)
    assert not choice.worker and "no `node` on PATH" in choice.reason
    old = tmp_path / "node"
    old.write_text("#!/bin/sh\necho v18.19.0\n")
    old.chmod(0o755)
    choice = choose_mode(None)
    assert not choice.worker and "v18.19.0 is older than 20" in choice.reason
    old.write_text("#!/bin/sh\necho v22.1.0\n")
    assert choose_mode(None).worker
