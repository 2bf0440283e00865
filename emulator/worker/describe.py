"""`emu config`'s part of worker mode: every binding wrangler's translation gives the Worker, and
where each var came from (the config's `vars`, `--var`, or a secrets file), with the values of
secrets masked. Run by the same runner as `emu up`, in a describe-only mode."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .dev_vars import secrets_files
from .project import WorkerProject
from .runtime import BUNDLE_NAME, RUNNER
from .toolchain import NodeInfo

MASK = "****"


def describe_bindings(
    project: WorkerProject, node: NodeInfo, modules_dir: Path, vars_: Mapping[str, str]
) -> dict[str, Any]:
    """{"vars": [{name, source, value}], "bindings": [{name, kind, target}], "remote": [...]}
    or {"error": "..."}; a secret's value is MASK and its source the file it came from."""
    with tempfile.TemporaryDirectory(prefix="emu-describe-") as work:
        settings = {
            "describeOnly": True,
            "configPath": str(project.config_path),
            "env": project.env,
            "outdir": work,
            "moduleName": BUNDLE_NAME,
            "modulesDir": str(modules_dir),
            "vars": dict(vars_),
            "alias": {},
        }
        path = Path(work) / "settings.json"
        path.write_text(json.dumps(settings))
        env = {**os.environ, "WRANGLER_LOG": "error", "WRANGLER_SEND_METRICS": "false"}
        done = subprocess.run(
            [node.node, str(RUNNER), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    for line in done.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("t") == "described":
            files = secrets_files(project.config_path.parent, project.env)
            where = ", ".join(f.name for f in files) or "secrets"
            for var in message["vars"]:
                if var["source"] == "secret":
                    var.update(source=where, value=MASK)
            return {k: message[k] for k in ("vars", "bindings", "remote")}
        if message.get("t") == "config_error":
            return {"error": str(message.get("message", "")).strip()}
    return {"error": (done.stderr.strip().splitlines() or ["the runner said nothing"])[-1]}


def render(described: Mapping[str, Any]) -> str:
    if "error" in described:
        return f"bindings: {described['error']}"
    lines = ["bindings (wrangler's translation)"]
    for var in described["vars"]:
        value = var["value"] if isinstance(var["value"], str) else json.dumps(var["value"])
        lines.append(f"  env.{var['name']:<16} {value:<24} {var['source']}")
    for binding in described["bindings"]:
        lines.append(f"  env.{binding['name']:<16} {binding['kind']:<24} {binding['target']}")
    lines += [f"  {what}: not available locally" for what in described["remote"]]
    return "\n".join(lines)
