"""What the config says of Durable Object classes: their bindings, the migrations that create
them, and their `exports` (wrangler 4.124 and later)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from emulator.config.jsvalue import literal

from .document import Document
from .fields import string
from .formats import FieldPath


@dataclass(frozen=True)
class Binding:
    name: str  # "PYTHON_EXECUTOR"
    path: FieldPath  # of the binding's name, for its origin


def bindings(doc: Document) -> dict[str, list[Binding]]:
    """class_name -> its bindings, in file order."""
    found: dict[str, list[Binding]] = {}
    durable_objects = doc.data.get("durable_objects")
    if durable_objects is None:
        return found
    if not isinstance(durable_objects, dict):
        raise doc.error(("durable_objects",), "must be an object with a bindings array")
    entries = durable_objects.get("bindings", [])
    if not isinstance(entries, list):
        raise doc.error(("durable_objects", "bindings"), "must be an array of {name, class_name}")
    for j, entry in enumerate(entries):
        path: FieldPath = ("durable_objects", "bindings", j)
        if not isinstance(entry, dict):
            raise doc.error(path, f"must be an object {{name, class_name}}, not {literal(entry)}")
        name = string(doc, (*path, "name"), entry.get("name"), required=True)
        class_name = string(doc, (*path, "class_name"), entry.get("class_name"), required=True)
        found.setdefault(class_name, []).append(Binding(name, (*path, "name")))
    return found


@dataclass(frozen=True)
class Migrations:
    """Classes created or renamed to by the migrations."""

    sqlite: frozenset[str]
    key_value: frozenset[str]


def migrations(doc: Document) -> Migrations:
    sqlite: set[str] = set()
    key_value: set[str] = set()
    found = doc.data.get("migrations")
    for migration in found if isinstance(found, list) else []:
        if not isinstance(migration, dict):
            continue
        sqlite.update(_str_items(migration.get("new_sqlite_classes")))
        key_value.update(_str_items(migration.get("new_classes")))
        renamed = migration.get("renamed_classes")
        if isinstance(renamed, list):
            for item in renamed:
                if isinstance(item, dict) and isinstance(item.get("to"), str):
                    sqlite.add(item["to"])  # the kind follows the old class; accept it
    return Migrations(frozenset(sqlite), frozenset(key_value))


@dataclass(frozen=True)
class Link:
    """An export's `container`: the class it gives a containers[] entry to."""

    class_name: str
    path: FieldPath  # of `container`


@dataclass(frozen=True)
class Exports:
    """What `exports` says of Durable Object classes."""

    sqlite: frozenset[str]  # {"type": "durable-object", "storage": "sqlite"}
    key_value: frozenset[str]  # storage "legacy-kv"
    links: dict[str, Link]  # container name -> the class it belongs to


_LIVE_EXPORT_STATES = ("created", "expecting-transfer")


def exports(doc: Document) -> Exports:
    sqlite: set[str] = set()
    key_value: set[str] = set()
    links: dict[str, Link] = {}
    found = doc.data.get("exports")
    if found is not None and not isinstance(found, dict):
        raise doc.error(("exports",), f"must be an object, not {literal(found)}")
    for class_name, entry in (found or {}).items():
        if not isinstance(entry, dict) or entry.get("type") != "durable-object":
            continue
        if entry.get("state", "created") not in _LIVE_EXPORT_STATES:
            continue  # a tombstone ("deleted", "transferred", ...): the class is gone
        if entry.get("storage") == "sqlite":
            sqlite.add(class_name)
        elif entry.get("storage") == "legacy-kv":
            key_value.add(class_name)
        if "container" in entry:
            path: FieldPath = ("exports", class_name, "container")
            container = string(doc, path, entry["container"], required=True)
            if container in links:
                other = links[container].class_name
                raise doc.error(path, f"container {json.dumps(container)} is already {other}'s")
            links[container] = Link(class_name, path)
    return Exports(frozenset(sqlite), frozenset(key_value), links)


def migration_warning(
    doc: Document, class_name: str, found: Migrations, exported: Exports
) -> str | None:
    """A warning when `wrangler deploy` would want a SQLite migration or export for the class."""
    if class_name in found.sqlite or class_name in exported.sqlite:
        return None
    if class_name in exported.key_value:
        path: FieldPath = ("exports", class_name)
        kind = 'is exported with storage "legacy-kv", but containers need "sqlite"'
    elif class_name in found.key_value:
        path, kind = ("migrations",), "is in new_classes, but containers need new_sqlite_classes"
    else:
        path, kind = (
            ("migrations",),
            "has no migration with new_sqlite_classes and no sqlite export",
        )
    return doc.warning(path, f"class {class_name} {kind}; wrangler deploy needs it, emu does not")


def _str_items(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]
