"""The two config formats, JSONC and TOML: a text parsed into its data and the line of each key,
both from the parser (json-five's model, tree-sitter-toml's tree); a syntax error as a short
message with its line and column."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import json5
import tree_sitter_toml
from json5.loader import DefaultLoader
from json5.model import Identifier, JSONArray, JSONObject, Node, String
from json5.parser import parse_tokens
from json5.tokenizer import JSON5Token, JSONLexer
from tree_sitter import Language, Parser
from tree_sitter import Node as TomlNode

FieldPath = tuple[str | int, ...]
Lines = dict[FieldPath, int]  # the line of each key (objects) and element (arrays)


class SyntaxProblem(Exception):
    """A text that does not parse: 1-based line and column (None: not known), and why."""

    def __init__(self, line: int | None, column: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def field_text(path: FieldPath) -> str:
    """("containers", 0, "instance_type") -> "containers[0].instance_type"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


# ---------------------------------------------------------------------------------------------
# JSONC, with json-five: its model knows the line of every node.


if TYPE_CHECKING:  # sly's lexer class bodies get `_`, the token-pattern decorator, by magic

    def _(pattern: str) -> Callable[[_F], _F]: ...


_F = TypeVar("_F", bound=Callable[..., Any])


class _Lexer(JSONLexer):
    r"""json-five's lexer with a linear BLOCK_COMMENT pattern. Its own, /\*((.|\n))*?\*/ under
    DOTALL, backtracks exponentially in the lines after a /* that is never closed: 2 s at 20
    lines, forever at 40, so a half-typed comment would hang emu."""

    tokens = JSONLexer.tokens

    @_(r"/\*.*?\*/")
    def BLOCK_COMMENT(self, tok: JSON5Token) -> JSON5Token:  # named as sly's token
        self.lineno += tok.value.count("\n")
        return tok


def _tokenize(text: str) -> Iterator[JSON5Token]:
    tokens: Iterator[JSON5Token] = _Lexer().tokenize(text)
    return tokens


def parse_jsonc(text: str) -> tuple[object, Lines]:
    """Raises SyntaxProblem."""
    try:
        model = parse_tokens(_tokenize(text))
    except json5.JSON5DecodeError as exc:
        raise _jsonc_problem(text, exc.token) from None
    except RecursionError:
        raise SyntaxProblem(None, None, "nested too deeply") from None
    lines: Lines = {}
    _jsonc_lines(model.value, (), lines)
    # Unquoted keys load as json-five's str subclass JsonIdentifier; plain str downstream.
    return DefaultLoader(parse_json5_identifiers=str).load(model), lines


def _jsonc_lines(node: Node, path: FieldPath, lines: Lines) -> None:
    if isinstance(node, JSONObject):
        for key, value in node.key_value_pairs:
            name = key.name if isinstance(key, Identifier) else _characters(key)
            # A repeated key: its last value wins when loaded, so its last line is recorded.
            _record(lines, (*path, name), key, value)
    elif isinstance(node, JSONArray):
        for index, value in enumerate(node.values):
            _record(lines, (*path, index), value, value)


def _record(lines: Lines, path: FieldPath, at: Node, value: Node) -> None:
    if at.lineno is not None:
        lines[path] = at.lineno
    _jsonc_lines(value, path, lines)


def _characters(key: Node) -> str:
    assert isinstance(key, String), key  # json-five's keys are identifiers or strings
    return key.characters


# What json-five calls its tokens, by role, for messages that say what is wrong.
_LAYOUT = {"WHITESPACE", "LINE_COMMENT", "BLOCK_COMMENT"}
_VALUE_ENDS = {
    "DOUBLE_QUOTE_STRING",
    "SINGLE_QUOTE_STRING",
    "INTEGER",
    "FLOAT",
    "HEXADECIMAL",
    "EXPONENT",
    "NAME",
    "TRUE",
    "FALSE",
    "NULL",
    "INFINITY",
    "NAN",
    "RBRACE",
    "RBRACKET",
}
_VALUE_STARTS = (_VALUE_ENDS - {"RBRACE", "RBRACKET", "EXPONENT"}) | {
    "LBRACE",
    "LBRACKET",
    "MINUS",
    "PLUS",
    "OCTAL",
}
_STRINGS = {"DOUBLE_QUOTE_STRING", "SINGLE_QUOTE_STRING"}
_LINE_BREAKS = ("\n", "\r", "\u2028", "\u2029")


def _jsonc_problem(text: str, token: JSON5Token | None) -> SyntaxProblem:
    """json-five's error token (None at the end of the text or at a character no token starts
    with), with the tokens before it, as a position and a message."""
    before, stop = _tokens_before(text, token.index if token is not None else len(text))
    if _bare_word_value(before):
        # `"main": src/index.ts`: json-five stops at the `/` or on the word; the word is the fault.
        word = before[-1]
        return _problem_at(text, word.index, f"unexpected {word.value[:20]!r}: {_NO_QUOTES}")
    if token is None and stop is not None:
        if text.startswith("/*", stop):
            return _problem_at(text, stop, "this /* comment is not closed with */")
        return _problem_at(text, stop, f"unexpected {text[stop]!r}")
    if token is None:
        if not before:
            return SyntaxProblem(1, 1, "the file is empty; it needs an object { ... }")
        unclosed = _unclosed(before)
        message = "unexpected end of file"
        if unclosed is not None:
            line = text.count("\n", 0, unclosed.index) + 1
            message += f": the {unclosed.value!r} on line {line} is not closed"
        return _problem_at(text, before[-1].end, message)
    previous = before[-1] if before else None
    if previous is not None and _runs_past_line(previous):
        # The string before swallowed the line break and what followed: the fault is there.
        return _problem_at(text, previous.index, _RUNS_PAST_LINE)
    return _problem_at(text, token.index, _token_message(token, before))


_RUNS_PAST_LINE = "this string runs past the end of its line; is its closing quote missing?"


def _runs_past_line(token: JSON5Token) -> bool:
    return token.type in _STRINGS and any(mark in token.value for mark in _LINE_BREAKS)


def _token_message(token: JSON5Token, before: list[JSON5Token]) -> str:
    kind = token.type or ""
    shown = token.value[0] if kind in _STRINGS else token.value[:20]
    if kind == "WHITESPACE":
        shown = "end of line" if "\n" in token.value else "space"
    previous = before[-1].type if before else None
    if kind.startswith("UNTERMINATED"):
        return "this string has no closing quote"
    if before and _unclosed(before) is None:
        return f"unexpected {shown!r} after the end of the top-level value"
    if _after_key(before):
        return f"unexpected {shown!r}: is a colon missing before it?"
    if previous in _VALUE_ENDS and kind in _VALUE_STARTS:
        return f"unexpected {shown!r}: is a comma missing before it?"
    if _runs_past_line(token):
        return _RUNS_PAST_LINE
    if kind in _STRINGS:
        return "invalid escape sequence in this string"
    if kind == "OCTAL":
        return f"unexpected {shown!r}: a number cannot start with 0"
    if kind == "COMMA" and previous == "COMMA":
        return "unexpected ',': two commas in a row"
    if kind == "NAME" and previous == "COLON":
        return f"unexpected {shown!r}: {_NO_QUOTES}"
    if kind in ("COMMA", "RBRACE", "RBRACKET") and previous == "COLON":
        return f"unexpected {shown!r}: the value before it is missing"
    return f"unexpected {shown!r}"


_NO_QUOTES = "is it a string without quotes?"


def _bare_word_value(before: list[JSON5Token]) -> bool:
    """The last token is a word (not true, false, null, ...) where a value goes."""
    return len(before) >= 2 and before[-1].type == "NAME" and before[-2].type == "COLON"


def _after_key(before: list[JSON5Token]) -> bool:
    """The last token is an object's key: a string or name after `{` or after a `,` in an
    object."""
    if len(before) < 2 or before[-1].type not in (*_STRINGS, "NAME"):
        return False
    opener = before[-2].type
    if opener == "LBRACE":
        return True
    innermost = _unclosed(before[:-1])
    return opener == "COMMA" and innermost is not None and innermost.type == "LBRACE"


def _tokens_before(text: str, end: int) -> tuple[list[JSON5Token], int | None]:
    """The tokens other than whitespace and comments that start before `end`, and the offset
    of a character that starts no token, when there is one before `end`."""
    found: list[JSON5Token] = []
    reached = 0
    try:
        for token in _tokenize(text):
            if token.index >= end:
                break
            reached = token.end
            if token.type not in _LAYOUT:
                found.append(token)
    except json5.JSON5DecodeError:
        return found, reached  # the lexer stops at the first character it has no token for
    return found, None


def _unclosed(tokens: list[JSON5Token]) -> JSON5Token | None:
    """The innermost `{` or `[` the tokens leave open."""
    stack: list[JSON5Token] = []
    for token in tokens:
        if token.type in ("LBRACE", "LBRACKET"):
            stack.append(token)
        elif token.type in ("RBRACE", "RBRACKET") and stack:
            stack.pop()
    return stack[-1] if stack else None


def _problem_at(text: str, offset: int, message: str) -> SyntaxProblem:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return SyntaxProblem(line, column, message)


# ---------------------------------------------------------------------------------------------
# TOML: the values from tomllib (TOML 1.0 exactly), the lines from tree-sitter-toml.

_TOML = Language(tree_sitter_toml.language())


def parse_toml(text: str) -> tuple[object, Lines]:
    """Raises SyntaxProblem."""
    try:
        data: object = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_problem(text, exc) from None
    return data, _toml_lines(text)


def _toml_problem(text: str, exc: tomllib.TOMLDecodeError) -> SyntaxProblem:
    # tomllib says where in its message, "... (at line 2, column 8)", until Python 3.14 gives
    # lineno and colno; its position is the one thing read from a message here.
    message = str(exc)
    head, _, tail = message.rpartition(" (at line ")
    if head and tail.endswith(")"):
        line_text, _, column_text = tail[:-1].partition(", column ")
        if line_text.isdigit() and column_text.isdigit():
            return SyntaxProblem(int(line_text), int(column_text), head)
    if message.endswith(" (at end of document)"):
        last_line = max(1, len(text.splitlines()))
        return SyntaxProblem(
            last_line, None, message.removesuffix(" (at end of document)") + " at the end"
        )
    return SyntaxProblem(None, None, message)


def _toml_lines(text: str) -> Lines:
    """The line of each table header, key and array element of a valid TOML document."""
    root = Parser(_TOML).parse(text.encode()).root_node
    lines: Lines = {}
    array_counts: dict[tuple[str, ...], int] = {}
    for node in root.named_children:
        if node.type == "pair":
            _toml_pair(node, (), lines)
        elif node.type in ("table", "table_array_element"):
            header = node.named_children[0]
            keys = _toml_key(header)
            if node.type == "table_array_element":
                array_counts[tuple(keys)] = array_counts.get(tuple(keys), 0) + 1
            prefix = _with_indices(keys, array_counts)
            lines.setdefault(prefix, node.start_point.row + 1)
            for child in node.named_children[1:]:
                if child.type == "pair":
                    _toml_pair(child, prefix, lines)
    return lines


def _with_indices(keys: list[str], array_counts: dict[tuple[str, ...], int]) -> FieldPath:
    """The current index after each array-of-tables prefix: containers -> containers[0]."""
    path: list[str | int] = []
    for end in range(1, len(keys) + 1):
        path.append(keys[end - 1])
        count = array_counts.get(tuple(keys[:end]))
        if count is not None:
            path.append(count - 1)
    return tuple(path)


def _toml_pair(node: TomlNode, prefix: FieldPath, lines: Lines) -> None:
    key, value = node.named_children[0], node.named_children[-1]
    keys = _toml_key(key)
    for end in range(1, len(keys) + 1):  # a.b.c = 1 writes a and a.b on this line too
        lines.setdefault((*prefix, *keys[:end]), node.start_point.row + 1)
    path = (*prefix, *keys)
    _toml_value(value, path, lines)


def _toml_value(node: TomlNode, path: FieldPath, lines: Lines) -> None:
    if node.type == "inline_table":
        for child in node.named_children:
            if child.type == "pair":
                _toml_pair(child, path, lines)
    elif node.type == "array":
        elements = [child for child in node.named_children if child.type != "comment"]
        for index, element in enumerate(elements):
            lines.setdefault((*path, index), element.start_point.row + 1)
            _toml_value(element, (*path, index), lines)


def _toml_key(node: TomlNode) -> list[str]:
    if node.type == "dotted_key":
        return [part for child in node.named_children for part in _toml_key(child)]
    raw = (node.text or b"").decode()
    if node.type == "quoted_key" and raw.startswith('"'):
        return [_basic_string(raw)]
    if node.type == "quoted_key":
        return [raw[1:-1]]  # a literal string: no escapes
    return [raw]


def _basic_string(raw: str) -> str:
    """A TOML basic string; its escapes are JSON's, but for \\UXXXXXXXX."""
    try:
        value: Any = json.loads(raw)
    except ValueError:
        return raw[1:-1]
    return value if isinstance(value, str) else raw[1:-1]
