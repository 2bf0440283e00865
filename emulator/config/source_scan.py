"""Read the Container settings a Worker's TypeScript/JavaScript source writes as literals.

emu does not run the Worker; it parses it (jstree.py beside it: tree-sitter) and reads, from each
`class X extends Container { ... }`, the class fields the library uses (`defaultPort = 8000`,
`sleepAfter = '15m'`, ...) and, from each `getRandom(env.BINDING, N)`, how many instance names
the Worker spreads requests over. Only literals are read (also under `as const`, `satisfies T`
or parentheses); anything computed is skipped with a warning.

A setting can also be written as `this.defaultPort = 8000;` in the class's constructor, and that
wins over a field initializer (fields are set before the constructor body runs). Only the
statements of the constructor body itself are read: an assignment nested in a block, a condition,
a callback or an expression is skipped with a warning, and one in any other method is not a
setting at all. A class extending another class (`class Executor extends Base`) is a Container
class when its chain of bases, through all the files scanned, ends at Container; it inherits each
setting it does not write itself. Bases are matched by the name written after `extends` (the last
part of `a.B`), not through import renames; a class expression takes the name of the variable it
is assigned to. A setting written as `null` or `undefined` is cleared, as in JavaScript: the
library's default applies, whatever a field or a base class says. A value emu cannot read (not a
literal, or the wrong type) counts as not written, so a field or an inherited value stands. Each
setting keeps the file and line where its value is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tree_sitter import Node

from emulator.config import jstree
from emulator.config.jstree import NotLiteral
from emulator.config.jsvalue import is_whole
from emulator.config.source_settings import (
    PROPERTIES,
    ClassSettings,
    Located,
    ScanWarning,
    checked,
    overlay,
)

__all__ = [
    "DEFAULT_RANDOM_INSTANCES",
    "PROPERTIES",
    "ClassDeclaration",
    "ClassSettings",
    "Located",
    "ScanWarning",
    "WorkerScan",
    "merge",
    "relative_imports",
    "scan_file",
    "scan_source",
]

# getRandom(binding, instances = 3) in @cloudflare/containers.
DEFAULT_RANDOM_INSTANCES = 3

_MAX_FILES = 500  # a bound on following imports, far above any real Worker


@dataclass(frozen=True)
class ClassDeclaration:
    """One `class X extends Y { ... }` as written, whatever Y is: the settings its own body
    writes (none inherited), Y's name, and the warnings about it, which are reported only if X
    turns out to be a Container class."""

    settings: ClassSettings
    base: str
    warnings: tuple[ScanWarning, ...] = ()


@dataclass(frozen=True)
class WorkerScan:
    classes: Mapping[str, ClassSettings] = field(default_factory=dict)  # with inherited settings
    # binding name -> the N of getRandom(env.BINDING, N); the largest when calls disagree
    random_counts: Mapping[str, Located[int]] = field(default_factory=dict)
    warnings: tuple[ScanWarning, ...] = ()
    files: tuple[Path, ...] = ()  # what scan_file read
    # every class that extends something, so that merge can resolve bases across files
    declarations: Mapping[str, ClassDeclaration] = field(default_factory=dict)


_CLASSES = "[" + " ".join(f"({node})" for node in jstree.CLASS_NODES) + "] @class"
# `await getRandom<T>(...)` parses as a call of `await getRandom` (a quirk of the grammar).
_GET_RANDOM = """
(call_expression function: [(identifier) @fn (await_expression (identifier) @fn)]
  (#eq? @fn "getRandom")) @call
"""
_THIS_ASSIGNMENT = (
    "(assignment_expression left: (member_expression object: (this)"
    " property: (property_identifier))) @assign"
)
_IMPORTS = """
(import_statement source: (string) @source)
(export_statement source: (string) @source)
(import_require_clause source: (string) @source)
(call_expression function: (import) arguments: (arguments . (string) @source))
(call_expression function: (identifier) @fn (#eq? @fn "require")
  arguments: (arguments . (string) @source))
"""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


class _FileScan:
    """One file's tree, read for class declarations, getRandom calls and imports."""

    def __init__(self, text: str, path: Path | None) -> None:
        self.path = path
        self.source = jstree.parse(text, path)
        self.warnings: list[ScanWarning] = []

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(ScanWarning(self.path, jstree.line(node), message))

    def declarations(self) -> dict[str, ClassDeclaration]:
        """Every `class X extends Y { ... }`, Container or not: which is a Container class
        is known only once all the files are scanned."""
        found: dict[str, ClassDeclaration] = {}
        for node in self.source.find(_CLASSES, "class"):
            named, base = jstree.class_name(node), jstree.base_name(node)
            body = node.child_by_field_name("body")
            if named is None or base is None or body is None:
                continue
            name, keyword = named
            if body.child_count == 0 or body.children[-1].is_missing:
                self.warn(keyword, f"class {name}: no closing brace; not read")
                continue
            first = found.get(name)
            if first is not None:
                again = f"class {name} is defined twice; the first one is used"
                twice = ScanWarning(self.path, jstree.line(keyword), again)
                found[name] = replace(first, warnings=(*first.warnings, twice))
                continue
            # The warnings about the class are held back with it (see ClassDeclaration).
            mark = len(self.warnings)
            if node.has_error:
                broken = jstree.line(jstree.first_error(node))
                self.warn(
                    keyword,
                    f"class {name}: line {broken} does not parse; "
                    "emu may miss a setting written near it",
                )
            settings = self.class_settings(name, jstree.line(keyword), body)
            found[name] = ClassDeclaration(settings, base, tuple(self.warnings[mark:]))
            del self.warnings[mark:]
        return found

    def class_settings(self, name: str, line: int, body: Node) -> ClassSettings:
        """The settings a class body writes, in fields or in its constructor."""
        fields: dict[str, Located[object]] = {}
        constructor: Node | None = None
        for member in jstree.parts(body):
            member_name = member.child_by_field_name("name")
            if member_name is None:
                continue
            if member.type == "public_field_definition":
                self.read_field(name, member, member_name, fields)
            elif member.type == "method_definition" and jstree.text(member_name) == "constructor":
                constructor = constructor or member.child_by_field_name("body")
        settings = checked(name, line, self.path, fields, self.warnings)
        if constructor is None:
            return settings
        assigned = self.constructor_assignments(name, constructor)
        # Field initializers run before the constructor body, so its assignments win.
        return overlay(checked(name, line, self.path, assigned, self.warnings), settings)

    def read_field(
        self, name: str, member: Node, name_node: Node, fields: dict[str, Located[object]]
    ) -> None:
        try:
            prop = jstree.property_name(name_node)
        except NotLiteral:
            return
        value = member.child_by_field_name("value")
        if prop not in PROPERTIES or value is None:  # `declare defaultPort: number` has none
            return
        if any(child.type == "static" for child in member.children):
            self.warn(name_node, f"{name}.{prop} is static; the library reads instance fields")
            return
        self.read_setting(name, prop, name_node, value, fields)

    def read_setting(
        self, name: str, prop: str, at: Node, value: Node, values: dict[str, Located[object]]
    ) -> None:
        """Read the literal `value` into values[prop], on the line of `at`; warn if it is not
        a literal."""
        try:
            found = jstree.literal_value(value)
        except NotLiteral:
            text = _short(jstree.text(value))
            self.warn(at, f"{name}.{prop} = {text} is not a literal; emu ignores it")
            return
        if prop in values:
            self.warn(at, f"{name}.{prop} is set twice; the last one is used")
        values[prop] = Located(found, jstree.line(at), self.path)

    def constructor_assignments(self, name: str, body: Node) -> dict[str, Located[object]]:
        """The `this.<setting> = <literal>` statements of a constructor body; one nested in
        anything (a block, a condition, a callback, an expression) is skipped with a warning."""
        values: dict[str, Located[object]] = {}
        for assign in self.source.find(_THIS_ASSIGNMENT, "assign", within=body):
            left, value = assign.child_by_field_name("left"), assign.child_by_field_name("right")
            prop_node = left.child_by_field_name("property") if left is not None else None
            prop = jstree.text(prop_node) if prop_node is not None else ""
            if prop not in PROPERTIES or value is None or jstree.in_nested_class(assign, body):
                continue
            if jstree.is_statement_of(assign, body):
                self.read_setting(name, prop, assign, value, values)
            else:
                self.warn(
                    assign,
                    f"{name}.{prop} is assigned inside a block, condition or expression in the "
                    "constructor; emu reads only its top-level statements and ignores this one",
                )
        return values

    def random_counts(self) -> dict[str, Located[int]]:
        counts: dict[str, Located[int]] = {}
        for call in self.source.find(_GET_RANDOM, "call"):
            arguments = call.child_by_field_name("arguments")
            args = jstree.parts(arguments) if arguments is not None else []
            if not args:
                continue
            first = " ".join(jstree.text(args[0]).split())
            binding = jstree.member_name(args[0])
            if binding is None:
                self.warn(call, f"getRandom({_short(first)}, ...): no binding name; ignored")
                continue
            count = self.count(args[1]) if len(args) > 1 else DEFAULT_RANDOM_INSTANCES
            if count is None:
                self.warn(
                    call,
                    f"getRandom({first}, {_short(jstree.text(args[1]))}): the count is not a "
                    "literal whole number of at least 1; emu ignores this call",
                )
                continue
            _add_count(counts, self.warnings, binding, Located(count, jstree.line(call), self.path))
        return counts

    @staticmethod
    def count(node: Node) -> int | None:
        """getRandom's N when written as a literal whole number of at least 1."""
        try:
            value = jstree.literal_value(node)
        except NotLiteral:
            return None
        if isinstance(value, int | float) and is_whole(value) and value >= 1:
            return int(value)
        return None

    def relative_imports(self) -> list[str]:
        specs = []
        for node in self.source.find(_IMPORTS, "source"):
            try:
                spec = jstree.string_value(node)
            except NotLiteral:
                continue
            if spec.startswith(("./", "../")):
                specs.append(spec)
        return specs


def _add_count(
    counts: dict[str, Located[int]], warnings: list[ScanWarning], binding: str, new: Located[int]
) -> None:
    """Record getRandom's N for a binding; when calls disagree, keep the largest and warn (the
    Worker then uses instance names up to the largest N - 1)."""
    old = counts.get(binding)
    if old is None:
        counts[binding] = new
        return
    if old.value != new.value:
        warnings.append(
            ScanWarning(
                new.path,
                new.line,
                f"getRandom on {binding} with {new.value} instances here but {old.value} at "
                f"{_place(old)}; emu uses the larger, {max(old.value, new.value)}",
            )
        )
    if new.value > old.value:
        counts[binding] = new


def _place(found: Located[int]) -> str:
    return f"{found.path}:{found.line}" if found.path is not None else f"line {found.line}"


# ---------------------------------------------------------------------------------------------
# Entry points


def scan_source(text: str, path: Path | None = None) -> WorkerScan:
    """Scan one file's text. `path` is recorded in the results, and its suffix picks the
    grammar (TypeScript, or TSX for .tsx, .jsx and .js)."""
    return _scan(_FileScan(text, path))


def _scan(scanner: _FileScan) -> WorkerScan:
    declarations = scanner.declarations()
    classes, class_warnings = _container_classes(declarations)
    scanner.warnings.extend(class_warnings)
    counts = scanner.random_counts()
    return WorkerScan(
        classes=classes,
        random_counts=counts,
        warnings=tuple(scanner.warnings),
        files=(scanner.path,) if scanner.path is not None else (),
        declarations=declarations,
    )


def _container_classes(
    declarations: Mapping[str, ClassDeclaration],
) -> tuple[dict[str, ClassSettings], list[ScanWarning]]:
    """The declared classes whose chain of bases ends at Container, each with the settings it
    inherits; and the warnings about them. A base that is not declared, or a cycle, ends a
    chain elsewhere."""
    classes: dict[str, ClassSettings] = {}
    warnings: list[ScanWarning] = []
    for name, declaration in declarations.items():
        chain = [declaration]
        seen = {name}
        while chain[-1].base != "Container":
            base = chain[-1].base
            if base in seen or base not in declarations:
                break
            seen.add(base)
            chain.append(declarations[base])
        else:
            settings = declaration.settings
            for ancestor in chain[1:]:
                settings = overlay(settings, ancestor.settings)
            classes[name] = settings
            warnings.extend(declaration.warnings)
    return classes, warnings


_EXTENSIONS = (".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".jsx")


def relative_imports(text: str, path: Path | None = None) -> list[str]:
    """The relative module specifiers ("./container", "../lib/x.js") a source file imports."""
    return _FileScan(text, path).relative_imports()


def _resolve(base: Path, spec: str) -> Path | None:
    target = (base.parent / spec).resolve()
    candidates = [target]
    candidates += [target.with_name(target.name + ext) for ext in _EXTENSIONS]
    if target.suffix in (".js", ".mjs", ".cjs", ".jsx"):  # TS sources imported as "./x.js"
        stem = target.with_suffix("")
        candidates += [stem.with_name(stem.name + ext) for ext in (".ts", ".tsx", ".mts", ".cts")]
    candidates += [target / ("index" + ext) for ext in _EXTENSIONS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def merge(scans: list[WorkerScan]) -> WorkerScan:
    """One WorkerScan from several files' scans; the first definition of a class wins. The
    Container classes are resolved again from all the declarations, so a base can be in another
    file than its subclass."""
    declarations: dict[str, ClassDeclaration] = {}
    counts: dict[str, Located[int]] = {}
    warnings: list[ScanWarning] = []
    files: list[Path] = []
    for scan in scans:
        warnings.extend(scan.warnings)
        files.extend(scan.files)
        for name, declaration in scan.declarations.items():
            first = declarations.get(name)
            if first is None:
                declarations[name] = declaration
            else:
                where, again = first.settings, declaration.settings
                also = ScanWarning(
                    again.path,
                    again.line,
                    f"class {name} is also defined at {where.path}:{where.line}; emu uses that one",
                )
                declarations[name] = replace(first, warnings=(*first.warnings, also))
        for binding, count in scan.random_counts.items():
            _add_count(counts, warnings, binding, count)
    classes, class_warnings = _container_classes(declarations)
    # A class resolved within its own file has its warnings in that file's scan already.
    unique = tuple(dict.fromkeys([*warnings, *class_warnings]))
    return WorkerScan(classes, counts, unique, tuple(files), declarations)


def scan_file(path: Path, *, follow_imports: bool = True) -> WorkerScan:
    """Scan the Worker's main file and, by default, the files it imports by relative path
    (getRandom is often called in another module than the one naming the class).

    Raises OSError/UnicodeDecodeError when `path` itself cannot be read; an imported file that
    cannot be read only adds a warning.
    """
    path = path.resolve()
    main = _FileScan(path.read_text(encoding="utf-8-sig"), path)
    scans = [_scan(main)]
    if not follow_imports:
        return scans[0]
    seen = {path}
    queue = [main]
    while queue and len(seen) < _MAX_FILES:
        current = queue.pop(0)
        for spec in current.relative_imports():
            target = _resolve(current.path or path, spec)
            if target is None or target in seen:
                continue
            seen.add(target)
            try:
                imported = _FileScan(target.read_text(encoding="utf-8-sig"), target)
            except (OSError, UnicodeDecodeError) as exc:
                scans.append(WorkerScan(warnings=(ScanWarning(target, 1, f"not read: {exc}"),)))
                continue
            scans.append(_scan(imported))
            queue.append(imported)
    return merge(scans)
