"""Worker mode runs what `wrangler dev` runs: a project as `npm create cloudflare` makes it today
(examples/today: dated today, nodejs_compat, an .html module, .dev.vars and .env, --var, KV, R2,
D1, a Queue, a service binding to a second Worker, static assets, a cron trigger, a Workflow
whose steps call containers), workspaces, and the pytest fixture. Real engine, real npm
packages, through wrangler's own translation."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import json5
import pytest
import requests

from emulator.options import EmulatorOptions
from emulator.pytest_plugin import EmuUp
from emulator.testing import wait_for
from emulator.worker import toolchain
from tests.support import DATA, REPO, free_port
from tests.support.worker import NEEDS_NODE, WorkerEmu

pytestmark = [pytest.mark.docker, NEEDS_NODE]
TODAY = REPO / "examples" / "today"


def _wrangler(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`emu wrangler ARGS`: the pinned wrangler, on the same .wrangler/state."""
    return subprocess.run(
        [sys.executable, "-m", "emulator", "wrangler", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def _stop(emu: WorkerEmu) -> None:
    emu.proc.send_signal(signal.SIGINT)
    assert emu.wait_exit(90) == 0, emu.output


def _today(tmp_path: Path) -> Path:
    project = tmp_path / "today"
    shutil.copytree(TODAY, project, ignore=shutil.ignore_patterns(".wrangler", "node_modules"))
    return project


def _start(project: Path, running: list[WorkerEmu], *flags: str) -> WorkerEmu:
    emu = WorkerEmu(
        project / "wrangler.jsonc",
        "--extra-worker",
        str(project / "other" / "wrangler.jsonc"),
        "--test-scheduled",
        *flags,
    )
    running.append(emu)
    return emu.wait_serving()


def _workflow(emu: WorkerEmu, blocks: int) -> list[dict[str, str]]:
    started = emu.get(f"/workflow?n={blocks}").json()

    def done() -> str | None:
        state = emu.get(f"/workflow/status?key={started['id']}").json()
        assert state["status"] not in {"errored", "terminated"}, state
        return state["stored"] if state["status"] == "complete" else None

    return [json.loads(a) for a in json.loads(wait_for(done, 90, "the workflow to complete"))]


def test_a_project_made_today_with_every_local_binding(
    tmp_path: Path, running: list[WorkerEmu]
) -> None:
    project = _today(tmp_path)
    (project / ".dev.vars").write_text("SECRET=from-dev-vars\nthis line is broken\n")
    migrated = _wrangler(project, "d1", "migrations", "apply", "DB", "--local")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator",
            "config",
            "-c",
            str(project / "wrangler.jsonc"),
            "--var",
            "FROM_FLAG:flagged",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    table = {
        line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines() if "env." in line
    }
    assert table["env.SECRET"] == ["****", ".dev.vars"] and "from-dev-vars" not in shown.stdout
    assert table["env.FROM_FLAG"] == ["flagged", "--var"]
    assert table["env.KV"] == ["KV", "namespace", "today-kv"]
    emu = _start(project, running, "--var", "FROM_FLAG:flagged")
    out = emu.output
    assert (
        "today: compatibility_date 2026-12-04 is newer than this runtime supports (" in out
        and "as wrangler dev does" in out
    )
    assert f"{project / '.dev.vars'}:2: not KEY=VALUE, so wrangler skips it" in out
    assert emu.get("/page").text.startswith("<!doctype html>")  # an .html module, as text
    assert emu.get("/vars").json() == {
        "greeting": "hello from vars",
        "secret": "from-dev-vars",
        "fromFlag": "flagged",
    }
    assert emu.get("/node").text == "bm9kZTpidWZmZXIgd29ya3M="  # node:buffer (nodejs_compat)
    assert emu.get("/other").text == "hello from today-other"  # the service binding
    assert emu.get("/hello.txt").text == "hello from an asset\n"  # static assets
    assert emu.get("/asset").text == "hello from an asset\n"  # and env.ASSETS
    assert requests.put(emu.url + "/kv?key=a", data="kv-value", timeout=30).text == "kv-value"
    assert requests.put(emu.url + "/r2?key=a", data="r2-value", timeout=30).text == "r2-value"
    assert requests.put(emu.url + "/d1", data="a note", timeout=30).json() == [{"body": "a note"}]
    assert emu.get("/__scheduled?cron=*/5+*+*+*+*").text == "Ran scheduled event"
    assert emu.get("/kv?key=cron").text == "*/5 * * * *"
    assert emu.get("/queue?key=job-1").text == "queued"
    wait_for(lambda: emu.get("/kv?key=queued:job-1").text == "consumed", 30, "the consumer")
    answers = _workflow(emu, 20)  # each step: getRandom(env.ECHO, 3) and a POST
    assert sorted(a["body"] for a in answers) == sorted(f"block {i}" for i in range(20))
    assert len({a["host"] for a in answers}) >= 2  # spread over the instances
    _stop(emu)

    # The data is still there after a restart, and wrangler itself reads it. Without .dev.vars,
    # the .env file is read instead, as wrangler does.
    (project / ".dev.vars").unlink()
    (project / ".env").write_text("SECRET=from-dot-env\n")
    emu = _start(project, running)
    assert emu.get("/kv?key=a").text == "kv-value"
    assert emu.get("/r2?key=a").text == "r2-value"
    assert emu.get("/d1").json() == [{"body": "a note"}]
    assert emu.get("/vars").json()["secret"] == "from-dot-env"
    _stop(emu)
    rows = _wrangler(
        project, "d1", "execute", "DB", "--local", "--json", "--command", "SELECT body FROM notes"
    )
    assert rows.returncode == 0, rows.stderr
    assert json.loads(rows.stdout)[0]["results"] == [{"body": "a note"}]
    keys = _wrangler(project, "kv", "key", "list", "--binding", "KV", "--local")
    assert keys.returncode == 0, keys.stderr
    assert "a" in {k["name"] for k in json.loads(keys.stdout)}


def test_no_persist_starts_clean(tmp_path: Path, running: list[WorkerEmu]) -> None:
    project = _today(tmp_path)
    emu = _start(project, running, "--no-persist")
    requests.put(emu.url + "/kv?key=a", data="kept?", timeout=30)
    _stop(emu)
    emu = _start(project, running, "--no-persist")
    assert emu.get("/kv?key=a").text == ""
    assert not (project / ".wrangler" / "state").exists()


WORKER = """import { Container, getContainer } from "@cloudflare/containers";
export class Echo extends Container { defaultPort = 8080; }
export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/") return new Response("the Worker's own answer; workspace copy: " +
      String(globalThis.__emuWorkspaceCopy === true));
    return getContainer(env.ECHO, "one").fetch(request);
  },
};
"""
CONFIG = {
    "name": "web",
    "main": "src/index.ts",
    "compatibility_date": "2026-12-04",
    "containers": [{"class_name": "Echo", "image": "./Dockerfile", "max_instances": 1}],
    "durable_objects": {"bindings": [{"name": "ECHO", "class_name": "Echo"}]},
    "migrations": [{"tag": "v1", "new_sqlite_classes": ["Echo"]}],
}


def _library_copy(into: Path) -> Path:
    """A copy of the real library (from emu's cache), marked so the test sees which one ran."""
    wanted = {
        **toolchain.PINNED,
        toolchain.CONTAINERS_PACKAGE: toolchain.DEFAULT_CONTAINERS_VERSION,
    }
    node = toolchain.find_node()
    assert isinstance(node, toolchain.NodeInfo), node
    cached = asyncio.run(toolchain.ensure_packages(node, wanted, lambda line: None))
    source = cached / "node_modules" / toolchain.CONTAINERS_PACKAGE
    shutil.copytree(source, into)
    manifest = json.loads((into / "package.json").read_text())
    entry = manifest.get("module") or manifest.get("main") or "dist/index.js"
    exports = manifest.get("exports", {})
    dot = exports.get(".", {}) if isinstance(exports, dict) else {}
    entry = (dot.get("import") if isinstance(dot, dict) else None) or entry
    if isinstance(entry, dict):
        entry = entry.get("default")
    target = into / str(entry)
    target.write_text(target.read_text() + "\nglobalThis.__emuWorkspaceCopy = true;\n")
    return into


def _app(root: Path, spec: str) -> Path:
    app = root / "apps" / "web"
    (app / "src").mkdir(parents=True)
    (app / "src" / "index.ts").write_text(WORKER)
    (app / "wrangler.jsonc").write_text(json.dumps(CONFIG))
    (app / "Dockerfile").write_text((TODAY / "container" / "Dockerfile").read_text())
    shutil.copy(TODAY / "container" / "server.py", app / "server.py")
    (app / "package.json").write_text(
        json.dumps({"name": "web", "devDependencies": {toolchain.CONTAINERS_PACKAGE: spec}})
    )
    return app / "wrangler.jsonc"


@pytest.mark.parametrize("spec", ["workspace:*", "file:../../packages/containers"])
def test_a_workspace_package_is_used_as_node_resolves_it(
    tmp_path: Path, running: list[WorkerEmu], spec: str
) -> None:
    library = _library_copy(tmp_path / "packages" / "containers")
    config = _app(tmp_path, spec)
    (tmp_path / "package.json").write_text(json.dumps({"workspaces": ["apps/*", "packages/*"]}))
    if spec.startswith("workspace:"):  # hoisted to the root, as pnpm, yarn and npm do
        hoisted = tmp_path / "node_modules" / "@cloudflare"
        hoisted.mkdir(parents=True)
        (hoisted / "containers").symlink_to(library, target_is_directory=True)
    emu = WorkerEmu(config)
    running.append(emu)
    emu.wait_serving()
    assert emu.get("/").text == "the Worker's own answer; workspace copy: true"
    assert emu.get("/x").json()["path"] == "/x"
    assert "@cloudflare/containers@" not in emu.output  # nothing installed for it


def test_the_pytest_fixture_runs_the_worker(emu_up: EmuUp, tmp_path: Path) -> None:
    """`emu_up(...)` with worker=True, as a user's test gets it by default."""
    config = _app(tmp_path, toolchain.DEFAULT_CONTAINERS_VERSION)
    emu = emu_up(config, EmulatorOptions(worker=True))
    assert requests.get(emu.url + "/", timeout=60).text.startswith("the Worker's own answer")
    assert requests.get(emu.url + "/y", timeout=60).json()["path"] == "/y"


def test_the_seeds_pdf_parser_workflow_spreads_its_blocks(running: list[WorkerEmu]) -> None:
    """examples/seed's Workflow: 20 blocks, batches of 5 parallel steps, each step's
    getRandom(this.env.PYTHON_EXECUTOR, 10) and a POST to the executor's /execute."""
    emu = WorkerEmu(REPO / "examples" / "seed" / "wrangler.jsonc", "--no-persist")
    running.append(emu)
    emu.wait_serving()
    blocks = [f"block {i} has " + "word " * i for i in range(20)]
    started = requests.post(emu.url + "/documents", json={"blocks": blocks}, timeout=60).json()

    def done() -> list[dict[str, object]] | None:
        state = emu.get(f"/documents/{started['id']}").json()
        assert state["status"] not in {"errored", "terminated"}, state
        return state["output"] if state["status"] == "complete" else None

    checks = wait_for(done, 120, "the pdf-parser workflow to complete")
    assert [c["block"] for c in checks] == list(range(20))
    assert [c["words"] for c in checks] == [3 + i for i in range(20)]
    served = {str(c["instance"]) for c in checks}
    assert len(served) >= 3, served  # spread over the instances, not all on one
    reached = set(emu.instances())
    assert served <= reached and all(int(n[9:]) < 10 for n in reached)


def json5_load(path: Path) -> object:
    return json5.loads(path.read_text())


def _sources(bundle_map: Path) -> set[str]:
    """The files a bundle was made of (its source map's), as `today/...` or `containers/...`:
    wrangler's map is relative to the folder it was built in, not where it is written."""
    found = set()
    for source in json.loads(bundle_map.read_text())["sources"]:
        for root in ("/today/", "/containers/"):
            if root in "/" + source:
                found.add(root.strip("/") + "/" + ("/" + source).split(root, 1)[1])
    return found


def test_emus_bundle_is_wranglers(tmp_path: Path) -> None:
    """emu bundle against wrangler deploy --dry-run --outdir, on the same project (wrangler's
    copy without `containers`, so that it builds no image): the same additional modules, named
    and typed alike, and the same source files (emu's generated entry and shim aside)."""
    project = _today(tmp_path)
    library = _library_copy(tmp_path / "lib" / "containers")
    (project / "node_modules" / "@cloudflare").mkdir(parents=True)
    (project / "node_modules" / "@cloudflare" / "containers").symlink_to(library)
    ours = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator",
            "bundle",
            "-c",
            str(project / "wrangler.jsonc"),
            "--outdir",
            str(tmp_path / "emu"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ours.returncode == 0, ours.stderr
    listed = [line.split("\t") for line in ours.stdout.splitlines()]
    wrangler_config = json.loads(json.dumps(json5_load(project / "wrangler.jsonc")))
    for key in ("containers", "durable_objects", "migrations"):
        wrangler_config.pop(key)
    (project / "wrangler.json").write_text(json.dumps(wrangler_config))
    theirs = _wrangler(
        project, "deploy", "--dry-run", "--outdir", str(tmp_path / "wr"), "-c", "wrangler.json"
    )
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    wrangler_modules = {p.name for p in (tmp_path / "wr").iterdir()} - {
        "index.js",
        "index.js.map",
        "README.md",
    }
    assert listed[0] == ["ESModule", "__emu_worker.mjs"]
    assert dict((name, kind) for kind, name in listed[1:]) == {
        name: "Text" for name in wrangler_modules
    }  # page.html, as Text, named by its content's hash alike
    assert any(name.endswith("-page.html") for name in wrangler_modules)
    # Beside emu's own entry and shim: the Worker and the library, the same files.
    ours_sources = _sources(tmp_path / "emu" / "__emu_worker.mjs.map")
    assert ours_sources == _sources(tmp_path / "wr" / "index.js.map")
    assert {"today/src/index.ts", "containers/src/lib/container.ts"} <= ours_sources


def test_a_runner_that_spawns_wrangler_dev_can_spawn_emu_dev(tmp_path: Path) -> None:
    node = toolchain.find_node()
    assert isinstance(node, toolchain.NodeInfo), node
    config = _app(tmp_path, toolchain.DEFAULT_CONTAINERS_VERSION)
    port = str(free_port())
    done = subprocess.run(
        [
            *(node.node, str(DATA / "dropin" / "spawn.mjs")),
            *(sys.executable, "-m", "emulator", "dev", "-c", str(config), "--port", port),
            *("--ip", "127.0.0.1", "--local", "--no-persist", "--var", "A:b"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["url"] == f"http://127.0.0.1:{port}" and seen["status"] == 200
    assert seen["body"].startswith("the Worker's own answer")


def test_after_the_first_install_emu_starts_with_no_network(
    tmp_path: Path, running: list[WorkerEmu]
) -> None:
    """npm's registry unreachable (a closed port): nothing is asked of it."""
    config = _app(tmp_path, toolchain.DEFAULT_CONTAINERS_VERSION)
    closed = f"http://127.0.0.1:{free_port()}/"
    emu = WorkerEmu(config, "--no-persist", env={"npm_config_registry": closed})
    running.append(emu)
    emu.wait_serving()
    assert emu.get("/").status_code == 200


def test_inspector_port_serves_chrome_devtools(tmp_path: Path, running: list[WorkerEmu]) -> None:
    config = _app(tmp_path, toolchain.DEFAULT_CONTAINERS_VERSION)
    port = free_port()
    emu = WorkerEmu(config, "--no-persist", "--inspector-port", str(port))
    running.append(emu)
    emu.wait_serving()
    assert f"inspector: ws://127.0.0.1:{port}" in emu.output or "inspector:" in emu.output
    targets = requests.get(f"http://127.0.0.1:{port}/json", timeout=10).json()
    assert any("webSocketDebuggerUrl" in t for t in targets), targets


def test_bad_bindings_are_named(tmp_path: Path) -> None:
    """A binding to a class the Worker does not export: exit 2 with the file and line. A
    remote-only binding: one line at start, never silently undefined."""
    config = _app(tmp_path, toolchain.DEFAULT_CONTAINERS_VERSION)
    data = json.loads(config.read_text())
    data["ai"] = {"binding": "AI"}
    data["durable_objects"]["bindings"].append({"name": "GHOST", "class_name": "Ghost"})
    config.write_text(json.dumps(data, indent=2))
    done = subprocess.run(
        [sys.executable, "-m", "emulator", "up", "-c", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "env.AI (Workers AI): not available locally" in done.stdout
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "Ghost" in text)
    assert (
        f"wrangler.jsonc:{line}: durable_objects.bindings[1].class_name: index.ts exports no "
        "class Ghost (it exports: Echo)" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_watch_reacts_to_dev_vars_and_the_config(tmp_path: Path, running: list[WorkerEmu]) -> None:
    project = _today(tmp_path)
    (project / ".dev.vars").write_text("SECRET=first\n")
    emu = _start(project, running, "--watch", "--no-persist")
    assert emu.get("/vars").json()["secret"] == "first"

    def var(name: str) -> object:
        try:
            return emu.get("/vars", timeout=5).json()[name]
        except requests.ConnectionError:  # workerd restarting with the new options
            return None

    (project / ".dev.vars").write_text("SECRET=second\n")
    wait_for(lambda: var("secret") == "second", 30, "the new secret")
    config = project / "wrangler.jsonc"
    config.write_text(config.read_text().replace("hello from vars", "edited vars"))
    wait_for(lambda: var("greeting") == "edited vars", 30, "the new var")
