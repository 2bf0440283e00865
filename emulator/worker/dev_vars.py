"""Which secrets files `wrangler dev` reads, and the lines of them it would skip without a word.

wrangler loads `.dev.vars.<env>` (else `.dev.vars`) beside the config; where neither exists, the
`.env` files (`.env`, `.env.<env>`, `.env.local`, `.env.<env>.local`). Its dotenv parser drops a
line that is not `KEY=VALUE`; emu names such a line instead, so a secret is never silently
undefined. The values themselves come from wrangler's translation (js/runner.mjs).
"""

from __future__ import annotations

import re
from pathlib import Path

# dotenv's shape of a line: optional `export `, a key, `=` or `:`, anything.
_LINE = re.compile(r"^\s*(?:export\s+)?[\w.-]+\s*[=:]")


def secrets_files(folder: Path, env: str | None) -> list[Path]:
    """The files wrangler reads secrets from, in the order it reads them."""
    dev_vars = [folder / f".dev.vars.{env}"] if env else []
    dev_vars.append(folder / ".dev.vars")
    for path in dev_vars:
        if path.is_file():
            return [path]
    names = [".env", *([f".env.{env}"] if env else []), ".env.local"]
    if env:
        names.append(f".env.{env}.local")
    return [folder / name for name in names if (folder / name).is_file()]


def check_dev_vars(folder: Path, env: str | None) -> list[str]:
    """One warning per line that wrangler's parser would skip, naming the file and line."""
    warnings = []
    for path in secrets_files(folder, env):
        in_quote: str | None = None
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if in_quote is not None:  # a quoted value over several lines
                if line.rstrip().endswith(in_quote):
                    in_quote = None
                continue
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not _LINE.match(line):
                warnings.append(f"{path}:{number}: not KEY=VALUE, so wrangler skips it: {stripped}")
                continue
            value = line.split("=", 1)[1].strip() if "=" in line else ""
            if value[:1] in {'"', "'", "`"} and not (len(value) > 1 and value.endswith(value[0])):
                in_quote = value[0]
    return warnings
