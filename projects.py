"""The project the tests and the benchmarks run emu on: the seed's shape (wrangler.jsonc,
src/index.ts) around the reference executor's Dockerfile. Here, at the top of the repository,
because both tests/ and bench/ use it and neither imports the other."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXECUTOR = Path(__file__).resolve().parent / "executor"


@dataclass
class Project:
    """A Cloudflare project like the seed's: wrangler.jsonc, src/index.ts, a Dockerfile."""

    max_instances: int = 10
    instance_type: str | dict[str, Any] = "standard-2"
    instances: int = 10
    sleep_after: str = "15m"
    env: Mapping[str, str] = field(
        default_factory=lambda: {
            "WORKERS": "1",
            "EXECUTOR_DIAGNOSTICS": "1",
            "GREETING": "hello from envVars",
        }
    )
    extra_class_body: str = ""

    def write(self, root: Path) -> Path:
        (root / "src").mkdir(parents=True, exist_ok=True)
        dockerfile = os.path.relpath(EXECUTOR / "Dockerfile", root)
        itype = json.dumps(self.instance_type)
        (root / "wrangler.jsonc").write_text(
            f"""// The seed's research API, trimmed to its container
{{
  "name": "research-api",
  "main": "src/index.ts",
  /* one container class, as in the seed */
  "containers": [
    {{
      "name": "python-executor",
      "class_name": "PythonExecutorContainer",
      "image": "{dockerfile}",
      "max_instances": {self.max_instances},      // Maximum concurrent containers
      "instance_type": {itype},  // 1 vCPU, 6 GiB memory, 12 GB disk
    }},
  ],
  "durable_objects": {{
    "bindings": [
      {{ "name": "PYTHON_EXECUTOR", "class_name": "PythonExecutorContainer" }},
    ],
  }},
  "migrations": [{{ "tag": "v1", "new_sqlite_classes": ["PythonExecutorContainer"] }}],
}}
"""
        )
        env = ", ".join(f"{k}: {json.dumps(v)}" for k, v in self.env.items())
        (root / "src" / "index.ts").write_text(
            f"""import {{ Container, getRandom }} from "@cloudflare/containers";

export class PythonExecutorContainer extends Container {{
  defaultPort = 8000; // the executor's port
  sleepAfter = '{self.sleep_after}';
  envVars = {{ {env} }};
{self.extra_class_body}
}}

export default {{
  async fetch(request: Request, env: Env): Promise<Response> {{
    // Load balance across {self.instances} instances
    const container = await getRandom(env.PYTHON_EXECUTOR, {self.instances});
    return container.fetch(request);
  }},
}};
"""
        )
        return root / "wrangler.jsonc"
