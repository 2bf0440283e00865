"""Read the Container settings a Worker's TypeScript/JavaScript source writes as literals.

emu does not run the Worker; it reads, from each `class X extends Container { ... }`, the class
fields the library uses (`defaultPort = 8000`, `sleepAfter = '15m'`, ...) and, from each
`getRandom(env.BINDING, N)`, how many instance names the Worker spreads requests over. Only
literals are read; anything computed is skipped with a warning. This is a scanner, not a parser:
comments, strings, template literals and regex literals are recognised so that braces and
commented-out code inside them do not mislead it, and that is all.

A setting can also be written as `this.defaultPort = 8000;` in the class's constructor, and that
wins over a field initializer (fields are set before the constructor body runs). Only the
constructor's top-level statements are read: an assignment inside a block, a condition (also a
braceless `if (c) this.x = 1`), a callback or an expression is skipped with a warning, and one in
any other method is not a setting at all. A class extending another class (`class Executor
extends Base`) is a Container class when its chain of bases, through all the files scanned, ends
at Container; it inherits each setting it does not write itself. Bases are matched by the name
written after `extends` (the last part of `a.B`), not through import renames. A setting written
as `null` or `undefined` is cleared, as in JavaScript: the library's default applies, whatever a
field or a base class says. A value emu cannot read (not a literal, or the wrong type) counts as
not written, so a field or an inherited value stands. Each setting keeps the file and line where
its value is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

import json5

from emulator.jsvalue import is_whole, js_string, kind

T = TypeVar("T")

# getRandom(binding, instances = 3) in @cloudflare/containers.
DEFAULT_RANDOM_INSTANCES = 3

PROPERTIES = (
    "defaultPort",
    "requiredPorts",
    "sleepAfter",
    "envVars",
    "entrypoint",
    "enableInternet",
    "pingEndpoint",
)

_MAX_FILES = 500  # a bound on following imports, far above any real Worker


@dataclass(frozen=True)
class Located(Generic[T]):
    """A value read from source, with the 1-based line it was written on."""

    value: T
    line: int
    path: Path | None = None  # the file; None when scanned from text without a path


@dataclass(frozen=True)
class ScanWarning:
    path: Path | None
    line: int
    message: str

    def __str__(self) -> str:
        where = str(self.path) if self.path is not None else "<source>"
        return f"{where}:{self.line}: {self.message}"


@dataclass(frozen=True)
class ClassSettings:
    """The literal settings of one `class X extends Container`; None where not found."""

    name: str
    line: int
    path: Path | None = None
    default_port: Located[int] | None = None
    required_ports: Located[tuple[int, ...]] | None = None
    sleep_after: Located[str | float] | None = None  # raw: "15m" or a number of seconds
    env_vars: Located[Mapping[str, str]] | None = None
    entrypoint: Located[tuple[str, ...]] | None = None
    enable_internet: Located[bool] | None = None
    ping_endpoint: Located[str] | None = None
    # Settings written as `null` or `undefined`: unset here, and not inherited either.
    cleared: frozenset[str] = frozenset()


_SETTINGS = (
    "default_port",
    "required_ports",
    "sleep_after",
    "env_vars",
    "entrypoint",
    "enable_internet",
    "ping_endpoint",
)


def _overlay(over: ClassSettings, under: ClassSettings) -> ClassSettings:
    """`over`, with each setting it neither writes nor clears taken from `under`."""
    unset = [n for n in _SETTINGS if getattr(over, n) is None and n not in over.cleared]
    return replace(
        over,
        **{name: getattr(under, name) for name in unset},
        cleared=over.cleared | (under.cleared & frozenset(unset)),
    )


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


# ---------------------------------------------------------------------------------------------
# Lexing: blank out comments, and mask string/template/regex contents for structural scanning.


@dataclass(frozen=True)
class _Lexed:
    code: str  # the source with comments replaced by spaces (newlines kept)
    masked: str  # `code` with the insides of strings, templates and regexes replaced too
    strings: Mapping[int, int]  # start offset of each string/template literal -> end (exclusive)


_REGEX_PRECEDERS = set("(,=:[!&|?{};+-*%<>~^")
_REGEX_KEYWORDS = {
    "return",
    "typeof",
    "case",
    "do",
    "else",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "instanceof",
    "yield",
    "await",
}


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.code = list(text)
        self.masked = list(text)
        self.strings: dict[int, int] = {}

    def blank(self, start: int, end: int, *, code_too: bool) -> None:
        for k in range(start, end):
            if self.text[k] != "\n":
                self.masked[k] = " "
                if code_too:
                    self.code[k] = " "

    def run(self) -> _Lexed:
        self.scan_code(0, in_template=False)
        return _Lexed("".join(self.code), "".join(self.masked), self.strings)

    def previous_significant(self, i: int) -> str:
        """The last non-blank token before offset i in code so far: a char, or a word."""
        k = i - 1
        while k >= 0 and self.code[k].isspace():
            k -= 1
        if k < 0:
            return ""
        if self.code[k].isalnum() or self.code[k] in "_$":
            end = k + 1
            while k >= 0 and (self.code[k].isalnum() or self.code[k] in "_$"):
                k -= 1
            return "".join(self.code[k + 1 : end])
        return self.code[k]

    def scan_code(self, i: int, *, in_template: bool) -> int:
        """Scan code from i; inside `${...}` stop after the closing brace. Returns the offset."""
        text, n = self.text, len(self.text)
        depth = 0
        while i < n:
            c = text[i]
            nxt = text[i + 1] if i + 1 < n else ""
            if c == "/" and nxt == "/":
                end = text.find("\n", i)
                end = n if end < 0 else end
                self.blank(i, end, code_too=True)
                i = end
            elif c == "/" and nxt == "*":
                end = text.find("*/", i + 2)
                end = n if end < 0 else end + 2
                self.blank(i, end, code_too=True)
                i = end
            elif c in "'\"":
                i = self.scan_string(i)
            elif c == "`":
                i = self.scan_template(i)
            elif c == "/" and self.regex_can_start(i):
                i = self.scan_regex(i)
            elif c == "{":
                depth += 1
                i += 1
            elif c == "}":
                if in_template and depth == 0:
                    return i + 1
                depth -= 1
                i += 1
            else:
                i += 1
        return n

    def regex_can_start(self, i: int) -> bool:
        prev = self.previous_significant(i)
        return prev == "" or prev in _REGEX_PRECEDERS or prev in _REGEX_KEYWORDS

    def scan_string(self, i: int) -> int:
        text, n = self.text, len(self.text)
        quote = text[i]
        k = i + 1
        while k < n and text[k] != quote and text[k] != "\n":
            k += 2 if text[k] == "\\" else 1
        end = min(k + 1, n)
        self.strings[i] = end
        self.blank(i + 1, max(i + 1, end - 1), code_too=False)
        return end

    def scan_template(self, i: int) -> int:
        text, n = self.text, len(self.text)
        k = i + 1
        while k < n and text[k] != "`":
            if text[k] == "\\":
                k += 2
            elif text[k] == "$" and k + 1 < n and text[k + 1] == "{":
                k = self.scan_code(k + 2, in_template=True)
            else:
                k += 1
        end = min(k + 1, n)
        self.strings[i] = end
        self.blank(i + 1, max(i + 1, end - 1), code_too=False)
        return end

    def scan_regex(self, i: int) -> int:
        text, n = self.text, len(self.text)
        k = i + 1
        in_class = False
        while k < n and text[k] != "\n":
            c = text[k]
            if c == "\\":
                k += 2
                continue
            if c == "[":
                in_class = True
            elif c == "]":
                in_class = False
            elif c == "/" and not in_class:
                break
            k += 1
        if k >= n or text[k] != "/":  # not a regex after all (e.g. a division we misread)
            return i + 1
        self.blank(i + 1, k, code_too=False)
        k += 1
        while k < n and text[k].isalpha():
            k += 1
        return k


def _lex(text: str) -> _Lexed:
    return _Lexer(text).run()


# ---------------------------------------------------------------------------------------------
# Literals


class _NotLiteral(Exception):
    pass


_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?)(?![\w$])"
)
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_AS_CONST = re.compile(r"[ \t]*(?:as[ \t]+const|satisfies[ \t]+[\w$.<>\[\], \t]+?)(?=[;\s}]|$)")
_CONTINUATION = set(".+-*/%?&|,=<>([")
_LINE_CONTINUES = set(".+-*/%?&|,=([:")  # a line ending so is not the end of a member


class _Missing:
    """`null` or `undefined` written as a value: the same as not setting the field."""


_MISSING = _Missing()


def _unescape_js(body: str) -> str:
    out: list[str] = []
    k = 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    while k < len(body):
        c = body[k]
        if c == "\\" and k + 1 < len(body):
            e = body[k + 1]
            if e == "u" and body[k + 2 : k + 3] == "{":
                close = body.find("}", k + 3)
                out.append(chr(int(body[k + 3 : close], 16)))
                k = close + 1
                continue
            if e == "u":
                out.append(chr(int(body[k + 2 : k + 6], 16)))
                k += 6
                continue
            if e == "x":
                out.append(chr(int(body[k + 2 : k + 4], 16)))
                k += 4
                continue
            if e == "\n":  # line continuation
                k += 2
                continue
            out.append(simple.get(e, e))
            k += 2
            continue
        out.append(c)
        k += 1
    return "".join(out)


def _string_value(token: str) -> str:
    """The value of a complete string or template literal token (no `${}` in a template)."""
    body = token[1:-1]
    if token[0] == "`" and "${" in body.replace("\\$", ""):
        raise _NotLiteral
    try:
        return _unescape_js(body)
    except (ValueError, IndexError) as exc:
        raise _NotLiteral from exc


def _matching(masked: str, i: int) -> int:
    """Offset just after the bracket matching the one at i, in masked text; -1 if none."""
    pairs = {"{": "}", "[": "]", "(": ")"}
    stack: list[str] = []
    for k in range(i, len(masked)):
        c = masked[k]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if not stack or stack.pop() != c:
                return -1
            if not stack:
                return k + 1
    return -1


def _composite_value(lexed: _Lexed, start: int, end: int) -> object:
    """json5-parse an array/object literal, with template literals turned into JSON strings."""
    pieces: list[str] = []
    k = start
    while k < end:
        string_end = lexed.strings.get(k)
        if string_end is not None and lexed.code[k] == "`":
            pieces.append(json.dumps(_string_value(lexed.code[k:string_end])))
            k = string_end
        elif string_end is not None:
            pieces.append(lexed.code[k:string_end])
            k = string_end
        else:
            pieces.append(lexed.code[k])
            k += 1
    try:
        return json5.loads("".join(pieces))
    except (ValueError, RecursionError) as exc:
        raise _NotLiteral from exc


def _read_literal(lexed: _Lexed, i: int) -> tuple[object, int]:
    """The literal value starting at offset i, and the offset after it. Raises _NotLiteral."""
    code, masked = lexed.code, lexed.masked
    if i >= len(code):
        raise _NotLiteral
    c = code[i]
    if c in "'\"`":
        end = lexed.strings.get(i, -1)
        if end < 0 or end - i < 2 or code[end - 1] != c:
            raise _NotLiteral
        return _string_value(code[i:end]), end
    if c in "[{":
        end = _matching(masked, i)
        if end < 0:
            raise _NotLiteral
        return _composite_value(lexed, i, end), end
    number = _NUMBER.match(code, i)
    if number is not None and number.group():
        text = number.group().replace("_", "")
        sign = -1 if text.startswith("-") else 1
        digits = text.lstrip("+-")
        try:
            if digits[:2].lower() in ("0x", "0o", "0b"):
                return sign * int(digits, 0), number.end()
            if re.fullmatch(r"\d+", digits):
                return sign * int(digits), number.end()
            return sign * float(digits), number.end()
        except ValueError as exc:
            raise _NotLiteral from exc
    word = _WORD.match(code, i)
    if word is not None:
        literal = {"true": True, "false": False, "null": _MISSING, "undefined": _MISSING}
        if word.group() in literal:
            return literal[word.group()], word.end()
    raise _NotLiteral


def _ends_expression(code: str, i: int) -> bool:
    """Whether the expression ends at offset i (nothing like `+ 1` or `.trim()` follows)."""
    m = _AS_CONST.match(code, i)
    if m is not None:
        i = m.end()
    n = len(code)
    while i < n and code[i] in " \t\r":
        i += 1
    if i >= n or code[i] in ";}":
        return True
    if code[i] != "\n":
        return False
    while i < n and code[i].isspace():
        i += 1
    return i >= n or code[i] not in _CONTINUATION


def _expression_text(code: str, i: int) -> str:
    """The source of the expression at i, up to `;` or the end of the line, for warnings."""
    end = i
    while end < len(code) and code[end] not in ";\n":
        end += 1
    text = " ".join(code[i:end].split())
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# Classes

_CLASS = re.compile(r"(?<![\w$.])class\s+([A-Za-z_$][\w$]*)\s*")
_EXTENDS = re.compile(r"extends\s+(?:[A-Za-z_$][\w$]*\s*\.\s*)*([A-Za-z_$][\w$]*)\s*")
_MODIFIERS = (
    r"(?<![\w$.])((?:(?:public|private|protected|readonly|override|declare|static|accessor)\s+)*)"
)
_MEMBER = re.compile(_MODIFIERS + r"(" + "|".join(PROPERTIES) + r")\s*[?!]?\s*([:=])(?!=)")
_CONSTRUCTOR = re.compile(_MODIFIERS + r"constructor\s*\(")
_THIS_ASSIGNMENT = re.compile(r"(?<![\w$.])this\s*\.\s*(" + "|".join(PROPERTIES) + r")\s*=(?!=)")
_BLOCK_HEAD = re.compile(r"(?<![\w$.])(if|while|with|for(?:\s+await)?)\s*$")
_KEYWORD_WINDOW = 64  # how far back from `(` or a statement a keyword is looked for
_BRACELESS_BODY_AFTER = re.compile(r"(?<![\w$.])(?:else|do)$")
_MEMBER_BOUNDARY = set(";{})")


def _skip_angles(masked: str, i: int) -> int:
    """Offset after a balanced `<...>` starting at i (type arguments)."""
    depth = 0
    for k in range(i, len(masked)):
        if masked[k] == "<":
            depth += 1
        elif masked[k] == ">" and masked[k - 1] != "=":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(masked)


def _depths(masked: str, start: int, end: int) -> list[int]:
    """The bracket depth, relative to `start`, before each offset of masked[start:end]."""
    depths: list[int] = []
    depth = 0
    for k in range(start, end):
        depths.append(depth)
        if masked[k] in "{[(":
            depth += 1
        elif masked[k] in "}])":
            depth -= 1
    return depths


def _top_statement(masked: str, depths: list[int], start: int, i: int) -> bool:
    """Whether offset i begins a top-level statement of the block body starting at `start`
    (`depths` from _depths): not nested in brackets, not inside an expression, and not the body
    of a braceless if/for/while/else."""
    if depths[i - start] != 0:
        return False
    k = i - 1
    while k >= start and masked[k].isspace():
        k -= 1
    if k < start or masked[k] in ";{}":
        return True
    new_line = "\n" in masked[k:i]
    if masked[k] == ")":  # `super(ctx, env)` + a new line begins one; `if (c)` does not
        j = k - 1
        while j >= start and (masked[j] != "(" or depths[j - start] != 0):
            j -= 1
        head = _BLOCK_HEAD.search(masked, max(start, j - _KEYWORD_WINDOW), max(j, start))
        if head is not None and head.group(1) == "while":
            b = head.start() - 1
            while b >= start and masked[b].isspace():
                b -= 1
            if b >= start and masked[b] == "}":  # `do { ... } while (c)` ends a statement
                head = None
        return new_line and head is None
    if _BRACELESS_BODY_AFTER.search(masked, max(start, k + 1 - _KEYWORD_WINDOW), k + 1):
        return False
    if masked[k - 1 : k + 1] in ("++", "--"):  # `i++` ends a statement
        return new_line
    return new_line and masked[k] not in _LINE_CONTINUES


def _skip_type(masked: str, i: int) -> int:
    """From just after `name:`, the offset of the `=` that starts the initializer, or -1."""
    depth = 0
    n = len(masked)
    k = i
    while k < n:
        c = masked[k]
        if c in "<([{":
            depth += 1
        elif c in ")]}" or (c == ">" and masked[k - 1] != "="):
            if depth == 0:
                return -1  # the end of the class body: no initializer
            depth -= 1
        elif depth == 0 and c == "=" and masked[k + 1 : k + 2] != ">":
            return k
        elif depth == 0 and c == ";":
            return -1
        elif depth == 0 and c == "\n":
            j = k
            while j < n and masked[j].isspace():
                j += 1
            if j >= n or masked[j] not in "=|&":
                return -1
        k += 1
    return -1


class _Scanner:
    def __init__(self, text: str, path: Path | None) -> None:
        self.text = text
        self.path = path
        self.lexed = _lex(text)
        self.warnings: list[ScanWarning] = []
        starts = [0]
        starts.extend(m.end() for m in re.finditer("\n", text))
        self.line_starts = starts

    def line(self, offset: int) -> int:
        lo, hi = 0, len(self.line_starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def warn(self, offset: int, message: str) -> None:
        self.warnings.append(ScanWarning(self.path, self.line(offset), message))

    def declarations(self) -> dict[str, ClassDeclaration]:
        """Every `class X extends Y { ... }`, Container or not: which is a Container class
        is known only once all the files are scanned."""
        masked = self.lexed.masked
        found: dict[str, ClassDeclaration] = {}
        for m in _CLASS.finditer(masked):
            i = m.end()
            if masked.startswith("<", i):
                i = _skip_angles(masked, i)
                while i < len(masked) and masked[i].isspace():
                    i += 1
            ext = _EXTENDS.match(masked, i)
            if ext is None:
                continue
            i = ext.end()
            if masked.startswith("<", i):  # Container<Env>, Container<{ A: string }>
                i = _skip_angles(masked, i)
            body_start = masked.find("{", i)
            if body_start < 0:
                continue
            body_end = _matching(masked, body_start)
            if body_end < 0:
                self.warn(m.start(), f"class {m.group(1)}: no closing brace; not read")
                continue
            name = m.group(1)
            first = found.get(name)
            if first is not None:
                twice = ScanWarning(
                    self.path,
                    self.line(m.start()),
                    f"class {name} is defined twice; the first one is used",
                )
                found[name] = replace(first, warnings=(*first.warnings, twice))
                continue
            # The warnings about the class are held back with it (see ClassDeclaration).
            mark = len(self.warnings)
            settings = self.class_settings(name, m.start(), body_start + 1, body_end - 1)
            found[name] = ClassDeclaration(settings, ext.group(1), tuple(self.warnings[mark:]))
            del self.warnings[mark:]
        return found

    def member_starts(self, pattern: re.Pattern[str], start: int, end: int) -> list[re.Match[str]]:
        """Matches of `pattern` beginning a member at the top level of a class body [start, end)."""
        masked = self.lexed.masked
        depths = _depths(masked, start, end)
        members = []
        for m in pattern.finditer(masked, start, end):
            if depths[m.start() - start] != 0:
                continue
            k = m.start() - 1
            while k >= start and masked[k] in " \t\r":
                k -= 1
            if k < start or masked[k] in _MEMBER_BOUNDARY:
                members.append(m)
            elif masked[k] == "\n":
                while k >= start and masked[k].isspace():
                    k -= 1
                if k < start or masked[k] not in _LINE_CONTINUES:
                    members.append(m)
        return members

    def class_settings(self, name: str, class_offset: int, start: int, end: int) -> ClassSettings:
        """The settings a class body [start, end) writes, in fields or in its constructor."""
        fields: dict[str, Located[object]] = {}
        masked = self.lexed.masked
        for m in self.member_starts(_MEMBER, start, end):
            modifiers, prop, sep = m.group(1).split(), m.group(2), m.group(3)
            eq = m.end() - 1 if sep == "=" else _skip_type(masked, m.end())
            if eq < 0:
                continue  # a declaration without a value, e.g. `declare defaultPort: number`
            if "static" in modifiers:
                self.warn(m.start(), f"{name}.{prop} is static; the library reads instance fields")
                continue
            self.read_setting(name, prop, m.start(), eq + 1, end, fields)
        settings = self.typed(name, class_offset, fields)
        body = self.constructor_body(start, end)
        if body is None:
            return settings
        assigned = self.constructor_assignments(name, *body)
        # Field initializers run before the constructor body, so its assignments win.
        return _overlay(self.typed(name, class_offset, assigned), settings)

    def read_setting(
        self, name: str, prop: str, at: int, v: int, end: int, values: dict[str, Located[object]]
    ) -> None:
        """Read the literal at v (spaces before it allowed) into values[prop]; if there is no
        literal, warn at offset `at`."""
        code = self.lexed.code
        while v < end and code[v].isspace():
            v += 1
        try:
            value, after = _read_literal(self.lexed, v)
            if not _ends_expression(code, after):
                raise _NotLiteral
        except _NotLiteral:
            self.warn(
                at, f"{name}.{prop} = {_expression_text(code, v)} is not a literal; emu ignores it"
            )
            return
        if prop in values:
            self.warn(at, f"{name}.{prop} is set twice; the last one is used")
        values[prop] = Located(value, self.line(at), self.path)

    def constructor_body(self, start: int, end: int) -> tuple[int, int] | None:
        """The span inside the braces of the constructor of the class body [start, end)."""
        masked = self.lexed.masked
        for m in self.member_starts(_CONSTRUCTOR, start, end):
            k = _matching(masked, m.end() - 1)
            if k < 0:
                continue
            while k < end and masked[k].isspace():
                k += 1
            if k < end and masked[k] == "{":  # not an overload signature `constructor(...);`
                return k + 1, _matching(masked, k) - 1
        return None

    def constructor_assignments(
        self, name: str, start: int, end: int
    ) -> dict[str, Located[object]]:
        """The `this.<setting> = <literal>` top-level statements of a constructor body."""
        masked = self.lexed.masked
        depths = _depths(masked, start, end)
        values: dict[str, Located[object]] = {}
        for m in _THIS_ASSIGNMENT.finditer(masked, start, end):
            prop = m.group(1)
            if _top_statement(masked, depths, start, m.start()):
                self.read_setting(name, prop, m.start(), m.end(), end, values)
            else:
                self.warn(
                    m.start(),
                    f"{name}.{prop} is assigned inside a block, condition or expression in the "
                    "constructor; emu reads only its top-level statements and ignores this one",
                )
        return values

    def typed(self, name: str, offset: int, raw: dict[str, Located[object]]) -> ClassSettings:
        """Check each literal's JS type; a wrong one is skipped with a warning."""

        def wrong(prop: str, expected: str) -> None:
            got = raw[prop]
            self.warnings.append(
                ScanWarning(
                    self.path,
                    got.line,
                    f"{name}.{prop} should be {expected}, not {kind(got.value)}; emu ignores it",
                )
            )

        cleared = frozenset(
            setting
            for prop, setting in zip(PROPERTIES, _SETTINGS, strict=True)
            if prop in raw and raw[prop].value is _MISSING
        )
        raw = {prop: found for prop, found in raw.items() if found.value is not _MISSING}

        def get(prop: str) -> object:
            return raw[prop].value if prop in raw else None

        def at(prop: str, value: T) -> Located[T]:
            return Located(value, raw[prop].line, self.path)

        default_port: Located[int] | None = None
        port = get("defaultPort")
        if "defaultPort" in raw:
            if isinstance(port, float) and port.is_integer():
                port = int(port)
            if isinstance(port, int) and not isinstance(port, bool):
                default_port = at("defaultPort", port)
            else:
                wrong("defaultPort", "a whole number")

        required_ports: Located[tuple[int, ...]] | None = None
        ports = get("requiredPorts")
        if "requiredPorts" in raw:
            if isinstance(ports, list) and all(is_whole(p) for p in ports):
                required_ports = at("requiredPorts", tuple(int(p) for p in ports))
            else:
                wrong("requiredPorts", "an array of whole numbers")

        sleep_after: Located[str | float] | None = None
        sleep = get("sleepAfter")
        if "sleepAfter" in raw:
            if isinstance(sleep, str | int | float) and not isinstance(sleep, bool):
                sleep_after = at("sleepAfter", sleep)
            else:
                # Still passed on, so that the config reports it as the library would.
                sleep_after = at("sleepAfter", js_string(sleep) or kind(sleep))

        env_vars: Located[Mapping[str, str]] | None = None
        env = get("envVars")
        if "envVars" in raw:
            if isinstance(env, dict):
                converted: dict[str, str] = {}
                for key, item in env.items():
                    text = js_string(item)
                    if text is None:
                        self.warnings.append(
                            ScanWarning(
                                self.path,
                                raw["envVars"].line,
                                f"{name}.envVars.{key} is {kind(item)}, not a string; "
                                "emu leaves it out",
                            )
                        )
                    else:
                        converted[str(key)] = text
                env_vars = at("envVars", converted)
            else:
                wrong("envVars", "an object of strings")

        entrypoint: Located[tuple[str, ...]] | None = None
        entry = get("entrypoint")
        if "entrypoint" in raw:
            if isinstance(entry, list) and all(isinstance(e, str) for e in entry):
                entrypoint = at("entrypoint", tuple(str(e) for e in entry))
            else:
                wrong("entrypoint", "an array of strings")

        enable_internet: Located[bool] | None = None
        internet = get("enableInternet")
        if "enableInternet" in raw:
            if isinstance(internet, bool):
                enable_internet = at("enableInternet", internet)
            else:
                wrong("enableInternet", "true or false")

        ping_endpoint: Located[str] | None = None
        ping = get("pingEndpoint")
        if "pingEndpoint" in raw:
            if isinstance(ping, str):
                ping_endpoint = at("pingEndpoint", ping)
            else:
                wrong("pingEndpoint", "a string")

        return ClassSettings(
            name=name,
            line=self.line(offset),
            path=self.path,
            default_port=default_port,
            required_ports=required_ports,
            sleep_after=sleep_after,
            env_vars=env_vars,
            entrypoint=entrypoint,
            enable_internet=enable_internet,
            ping_endpoint=ping_endpoint,
            cleared=cleared,
        )

    def random_counts(self) -> dict[str, Located[int]]:
        code, masked = self.lexed.code, self.lexed.masked
        counts: dict[str, Located[int]] = {}
        for m in _GET_RANDOM.finditer(masked):
            if re.search(r"\bfunction\s*\*?\s*$", masked[max(0, m.start() - 40) : m.start()]):
                continue  # the definition itself, e.g. in a bundled library
            open_paren = m.end() - 1
            close = _matching(masked, open_paren)
            if close < 0:
                continue
            args = _split_args(masked, open_paren + 1, close - 1)
            if not args:
                continue
            first = " ".join(code[args[0][0] : args[0][1]].split())
            binding = _binding_name(first)
            if binding is None:
                self.warn(m.start(), f"getRandom({_short(first)}, ...): no binding name; ignored")
                continue
            if len(args) == 1:
                n: object = DEFAULT_RANDOM_INSTANCES
            else:
                start, end = args[1]
                text = code[start:end].strip()
                n = text
                if re.fullmatch(r"\d[\d_]*", text):
                    n = int(text.replace("_", ""))
            if not isinstance(n, int) or n < 1:
                self.warn(
                    m.start(),
                    f"getRandom({first}, {_short(str(n))}): the count is not a "
                    "literal whole number of at least 1; emu ignores this call",
                )
                continue
            found = Located(n, self.line(m.start()), self.path)
            _add_count(counts, self.warnings, binding, found)
        return counts


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


_GET_RANDOM = re.compile(r"(?<![\w$.])getRandom\s*(?:<[^()]*?>\s*)?\(")
_MEMBER_CHAIN = re.compile(r"(?:[A-Za-z_$][\w$]*\s*\??\.\s*)*([A-Za-z_$][\w$]*)")
_INDEXED = re.compile(
    r"(?:[A-Za-z_$][\w$]*\s*\??\.\s*)*[A-Za-z_$][\w$]*\s*\[\s*(['\"])([\w$]+)\1\s*\]"
)


def _binding_name(arg: str) -> str | None:
    """The X of `env.X`, `this.env.X`, `c.env.X`, `env["X"]` or a bare `X`."""
    m = _MEMBER_CHAIN.fullmatch(arg)
    if m is not None:
        return m.group(1)
    m = _INDEXED.fullmatch(arg)
    return m.group(2) if m is not None else None


def _split_args(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """Top-level comma-separated argument spans in masked[start:end]; a trailing comma is fine."""
    args: list[tuple[int, int]] = []
    depth = 0
    arg_start = start
    for k in range(start, end):
        c = masked[k]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            args.append((arg_start, k))
            arg_start = k + 1
    args.append((arg_start, end))
    return [(s, e) for s, e in args if masked[s:e].strip()]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _place(found: Located[int]) -> str:
    return f"{found.path}:{found.line}" if found.path is not None else f"line {found.line}"


# ---------------------------------------------------------------------------------------------
# Entry points


def scan_source(text: str, path: Path | None = None) -> WorkerScan:
    """Scan one file's text. `path` is only recorded in the results."""
    scanner = _Scanner(text, path)
    declarations = scanner.declarations()
    classes, class_warnings = _container_classes(declarations)
    scanner.warnings.extend(class_warnings)
    counts = scanner.random_counts()
    return WorkerScan(
        classes=classes,
        random_counts=counts,
        warnings=tuple(scanner.warnings),
        files=(path,) if path is not None else (),
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
                settings = _overlay(settings, ancestor.settings)
            classes[name] = settings
            warnings.extend(declaration.warnings)
    return classes, warnings


_IMPORT = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])(\.{1,2}/[^'"\n]*)\1"""
)
_EXTENSIONS = (".ts", ".tsx", ".mts", ".cts", ".js", ".mjs", ".cjs", ".jsx")


def relative_imports(text: str) -> list[str]:
    """The relative module specifiers ("./container", "../lib/x.js") a source file imports."""
    code = _lex(text).code  # commented-out imports do not count
    return [m.group(2) for m in _IMPORT.finditer(code)]


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
    text = path.read_text(encoding="utf-8-sig")
    scans = [scan_source(text, path)]
    if not follow_imports:
        return scans[0]
    seen = {path}
    queue = [(path, text)]
    while queue and len(seen) < _MAX_FILES:
        current, current_text = queue.pop(0)
        for spec in relative_imports(current_text):
            target = _resolve(current, spec)
            if target is None or target in seen:
                continue
            seen.add(target)
            try:
                target_text = target.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                scans.append(WorkerScan(warnings=(ScanWarning(target, 1, f"not read: {exc}"),)))
                continue
            scans.append(scan_source(target_text, target))
            queue.append((target, target_text))
    return merge(scans)
