"""JavaScript and TypeScript source as a tree-sitter tree, and the values of its literals.

Nothing here knows about Containers: this is the syntax the Worker scan asks questions of (what
is this class called, what does it extend, what literal value does this expression have).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import tree_sitter_typescript
from tree_sitter import Language, Node, Parser, Query, QueryCursor

from emulator.config.jsvalue import js_string

# JSX needs tsx. Plain JS parses alike with both grammars (456 files of a Worker project's
# node_modules, 15 MB: the same one failure), and tsx also takes JSX written in a .js file.
_TSX_SUFFIXES = (".tsx", ".jsx", ".js", ".mjs", ".cjs")
CLASS_NODES = ("class_declaration", "abstract_class_declaration", "class")
# Expressions whose value is their first part's: type assertions, `x!` and parentheses.
_TRANSPARENT = (
    "parenthesized_expression",
    "as_expression",
    "satisfies_expression",
    "non_null_expression",
    "type_assertion",
)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}


@functools.cache
def _language(tsx: bool) -> Language:
    ts = tree_sitter_typescript
    return Language(ts.language_tsx() if tsx else ts.language_typescript())


@functools.cache
def _query(language: Language, pattern: str) -> Query:
    return Query(language, pattern)


@dataclass(frozen=True)
class ParsedSource:
    root: Node
    language: Language

    def find(self, pattern: str, capture: str, within: Node | None = None) -> list[Node]:
        """The nodes a tree-sitter query captures as `capture`, in source order."""
        cursor = QueryCursor(_query(self.language, pattern))
        found = cursor.captures(within if within is not None else self.root).get(capture, [])
        return sorted(found, key=lambda node: node.start_byte)


def parse(text: str, path: Path | None = None) -> ParsedSource:
    """Parse as TypeScript, or as TSX for the suffixes above. Never fails: what does not parse
    becomes ERROR nodes (see first_error)."""
    language = _language(path is not None and path.suffix in _TSX_SUFFIXES)
    tree = Parser(language).parse(text.encode("utf-8", "surrogatepass"))
    return ParsedSource(tree.root_node, language)


def text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "surrogatepass")


def line(node: Node) -> int:
    """The 1-based line a node starts on."""
    return node.start_point.row + 1


def parts(node: Node) -> list[Node]:
    """The named children, without comments."""
    return [child for child in node.named_children if not child.is_extra]


def unwrap(node: Node) -> Node:
    """The expression inside `(x)`, `x as T`, `x satisfies T`, `<T>x` and `x!`."""
    while node.type in _TRANSPARENT and parts(node):
        node = parts(node)[-1 if node.type == "type_assertion" else 0]
    return node


def first_error(node: Node) -> Node:
    """The first ERROR or MISSING node under a node that has_error."""
    while not (node.is_error or node.is_missing):
        node = next(c for c in node.children if c.has_error or c.is_error or c.is_missing)
    return node


# ---------------------------------------------------------------------------------------------
# Literals


class NotLiteral(Exception):
    """The expression is not a literal emu can read."""


class Missing:
    """`null` or `undefined` written as a whole value."""


MISSING = Missing()


def literal_value(node: Node, *, nested: bool = False) -> object:
    """The value of a literal expression, as JSON would hold it; raises NotLiteral. `null`
    and `undefined` are MISSING as a whole value; inside an array or object, null is None
    and undefined is not a literal."""
    node = unwrap(node)
    node_type = node.type
    if node_type in ("string", "template_string"):
        return string_value(node)
    if node_type == "number":
        return _number(text(node))
    argument = node.child_by_field_name("argument")
    if node_type == "unary_expression" and argument is not None and argument.type == "number":
        sign = {"-": -1, "+": 1}.get(node.children[0].type)
        if sign is not None:
            return sign * _number(text(argument))
    if node_type in ("true", "false"):
        return node_type == "true"
    if node_type == "null" or (node_type == "undefined" and not nested):
        return None if nested else MISSING
    if node_type == "array":
        return _array(node)
    if node_type == "object":
        return _object(node)
    raise NotLiteral


def string_value(node: Node) -> str:
    """A string, or a template literal without `${}`, with its escapes read from the tree."""
    pieces: list[str] = []
    for part in node.named_children:
        if part.type == "string_fragment":
            pieces.append(text(part))
        elif part.type == "escape_sequence":
            pieces.append(_escape(text(part)))
        else:  # a ${} substitution, or a part that did not parse
            raise NotLiteral
    joined = "".join(pieces)
    try:  # "\uD83D\uDE00" is one character, as in JS
        return joined.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return joined


def _escape(sequence: str) -> str:
    body = sequence[1:]
    try:
        if body[0] in "\r\n\u2028\u2029":  # a line continuation
            return ""
        if body[0] == "u":
            return chr(int(body[2:-1] if body[1] == "{" else body[1:], 16))
        if body[0] == "x":
            return chr(int(body[1:], 16))
        if body[0] in "01234567":  # \0, and legacy octal
            return chr(int(body, 8))
    except (ValueError, OverflowError) as exc:
        raise NotLiteral from exc
    return _SIMPLE_ESCAPES.get(body[0], body[0])


def _number(digits: str) -> int | float:
    digits = digits.replace("_", "")
    try:
        if digits[:2].lower() in ("0x", "0o", "0b"):
            return int(digits, 0)
        if digits.isascii() and digits.isdigit():
            return int(digits)
        return float(digits)  # a BigInt, `10n`, fails here
    except ValueError as exc:
        raise NotLiteral from exc


def _array(node: Node) -> list[object]:
    items: list[object] = []
    after_item = False
    for child in node.children:
        if child.is_extra or child.type in ("[", "]"):
            continue
        if child.type == ",":
            if not after_item:  # a hole, as in [1, , 2]
                raise NotLiteral
            after_item = False
        else:
            items.append(literal_value(child, nested=True))
            after_item = True
    return items


def _object(node: Node) -> dict[str, object]:
    values: dict[str, object] = {}
    for part in parts(node):
        key, value = part.child_by_field_name("key"), part.child_by_field_name("value")
        if part.type != "pair" or key is None or value is None:
            raise NotLiteral  # {a}, {...b}, {m() {}}
        values[property_name(key)] = literal_value(value, nested=True)
    return values


def property_name(node: Node) -> str:
    """The name a property key or class member name node stands for; NotLiteral if computed."""
    if node.type == "property_identifier":
        return text(node)
    if node.type == "string":
        return string_value(node)
    if node.type == "number":
        return js_string(_number(text(node))) or ""
    raise NotLiteral


# ---------------------------------------------------------------------------------------------
# Names


def class_name(node: Node) -> tuple[str, Node] | None:
    """A class's name and its `class` keyword. A class expression assigned to a variable is
    named by the variable: that is the name the module exports."""
    keyword = next((c for c in node.children if c.type == "class"), node)
    parent = node.parent
    if node.type == "class" and parent is not None and parent.type == "variable_declarator":
        variable = parent.child_by_field_name("name")
        if variable is not None and variable.type == "identifier":
            return text(variable), keyword
    name = node.child_by_field_name("name")
    return (text(name), keyword) if name is not None else None


def base_name(node: Node) -> str | None:
    """The Y of `class X extends Y`, `extends a.Y` or `extends Y<T>`; None for none or a call."""
    for heritage in node.children:
        if heritage.type != "class_heritage":
            continue
        for clause in heritage.children:
            value = clause.child_by_field_name("value")
            if clause.type != "extends_clause" or value is None:
                continue
            if value.type == "identifier":
                return text(value)
            prop = value.child_by_field_name("property")
            if value.type == "member_expression" and prop is not None:
                return text(prop)
    return None


def in_nested_class(node: Node, outer: Node) -> bool:
    """Whether `node` is inside a class declared within `outer`: its `this` is another one."""
    parent = node.parent
    while parent is not None and parent != outer:
        if parent.type in CLASS_NODES:
            return True
        parent = parent.parent
    return False


def is_statement_of(node: Node, block: Node) -> bool:
    """Whether the expression `node` is a whole statement of `block`, not nested in anything."""
    statement = node.parent
    if statement is None or statement.type != "expression_statement":
        return False
    return statement.parent == block


def member_name(node: Node) -> str | None:
    """The X of `env.X`, `this.env.X`, `c.env.X`, `env["X"]` or a bare `X`; None otherwise."""
    node = unwrap(node)
    if node.type == "identifier":
        return text(node)
    target = node.child_by_field_name("object")
    if target is None or not _is_chain(target):
        return None
    prop = node.child_by_field_name("property")
    if node.type == "member_expression" and prop is not None:
        return text(prop) if prop.type == "property_identifier" else None
    index = node.child_by_field_name("index")
    if node.type == "subscript_expression" and index is not None and index.type == "string":
        try:
            name = string_value(index)
        except NotLiteral:
            return None
        return name if re.fullmatch(r"[\w$]+", name) else None
    return None


def _is_chain(node: Node) -> bool:
    """`a`, `this` or `a.b.c`: names only, no calls or indexing."""
    while node.type == "member_expression":
        prop = node.child_by_field_name("property")
        target = node.child_by_field_name("object")
        if prop is None or target is None or prop.type != "property_identifier":
            return False
        node = target
    return node.type in ("identifier", "this")
