"""Command line: `python -m executor.app`. Settings come from the environment (see README)."""

from __future__ import annotations

import logging
import os
import sys
import time

from . import supervisor
from .config import Settings, SettingsError


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s executor[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as e:
        print(f"executor: {e}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        sock = supervisor.bind(settings)
    except OSError as e:  # e.g. the port is taken
        print(f"executor: cannot listen on {settings.host}:{settings.port}: {e}", file=sys.stderr)
        return 1
    host, port = sock.getsockname()[:2]
    logging.getLogger("executor").info(
        "listening on http://%s:%d with %d workers", host, port, settings.workers
    )
    return supervisor.Supervisor(settings, sock, started).run()
