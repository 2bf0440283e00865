"""What a running emu can take over from an edited config or Worker source (`--watch`), and
what needs `emu up` again."""

from __future__ import annotations

from .config import Config
from .config.model import GLOBAL_FLAGS

# Settings a running emu cannot take over: they need `emu up` again.
RESTART_FIELDS = GLOBAL_FLAGS
CLASS_RESTART_FIELDS = ("binding", "dockerfile", "build_context", "enable_internet")
# In worker mode the library passes these itself (or runs them: sleepAfter, readiness): a change
# read from the source replaces no running container.
LIBRARY_FIELDS = frozenset(
    [
        "default_port",
        "required_ports",
        "sleep_after",
        "env_vars",
        "entrypoint",
        "ping_endpoint",
        "instances",
        "get_random",
    ]
)


def restart_needed(old: Config, new: Config) -> list[str]:
    """What changed between two configs that a running emu cannot take over."""
    found = [k for k in RESTART_FIELDS if getattr(new, k) != getattr(old, k)]
    old_classes = {c.class_name: c for c in old.classes}
    new_classes = {c.class_name: c for c in new.classes}
    if old_classes.keys() != new_classes.keys():
        return [*found, "the set of classes"]
    for name, cfg in new_classes.items():
        before = old_classes[name]
        if any(getattr(cfg, k) != getattr(before, k) for k in CLASS_RESTART_FIELDS):
            found.append(f"{name}'s binding or build context")
    return found
