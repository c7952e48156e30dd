"""Pachyderm's glob and ``joinOn``/``groupBy`` templates, as ohmyglob implements them.

Pachyderm matches a pfs input's glob with github.com/pachyderm/ohmyglob (pinned at
d5b47775fc36), compiled with the separator ``/`` (pachyderm ``src/server/pfs/server/
paths.go:11-24`` globMatchFunction), after ``pfsfile.CleanPath`` (``path.Clean``, one
leading ``/``, no trailing one). ohmyglob lexes (``syntax/lexer/lexer.go``), parses
(``syntax/ast/parser.go``) and compiles the tree into an anchored regex
(``compiler/compiler.go``), which it runs with regexp2 (.NET syntax). This module is a
line-by-line port of those three steps, quirks included, so a glob selects here exactly
the paths it selects on a cluster:

- ``*`` -> ``[^/]*``, ``**`` -> ``.*``, ``?`` -> ``[^/]``, a backslash escapes a character;
- ``[...]`` is a class whose characters are regex-quoted; the first unescaped ``!`` or ``^``
  anywhere inside it negates it (``[a!b]`` is ``[^ab]``); an unclosed ``[`` is an error;
- ``{a,b}`` is a non-capturing ``(?:a|b)`` whose alternatives are globs themselves;
- ``(a|b)`` and ``@(a|b)`` capture; ``*(x)``, ``+(x)``, ``?(x)`` capture zero-or-more,
  one-or-more, zero-or-one repeats; ``!(x)`` captures anything but ``x`` (a lookahead,
  hence regexp2); ``^(x)`` is refused ("unimplemented quatifier");
- ``,`` is literal outside braces, ``|`` literal outside parentheses; unclosed ``{``/``(``
  are accepted.

Known ohmyglob bug, ported as is: inside braces the lexer does not break text at ``)``
or ``|``, so a capture inside braces (``{(a|b),c}``) does not mean what it reads as; it
compiles to something odd but never crashes.
"""

from __future__ import annotations

import posixpath
import re
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache


class GlobError(ValueError):
    """A glob or template Pachyderm cannot use; callers add the file and key."""


# Markers ohmyglob's compiler inserts and removes again (compiler.go closeNegDummy,
# boundaryDummy): they bound the scope of a !(...) negation.
_CLOSE_NEG = "\uffff"
_BOUNDARY = "\ufffe"
_DOT = "[^/]"  # compiler.go dot(sep) with sep '/'

# lexer.go's breaker sets: the characters that end a run of text in each context.
_BASIC = "?*[{("
_EXTENDED = _BASIC + "@!^+"
_IN_CAPTURE = _EXTENDED + ")|"
_IN_TERMS = _EXTENDED + "},"

# parser.go posix: class names replaced inside [...] (then regex-quoted, as ohmyglob does).
_POSIX = {":alnum:": "0-9A-Za-z", ":alpha:": "A-Za-z", ":ascii:": "\x00-\x7F",
          ":blank:": "\t ", ":cntrl:": "\x00-\x1F\x7F", ":digit:": "0-9", ":graph:": "!-~]",
          ":lower:": "a-z", ":print:": " -~", ":punct:": "!-/:-@[-`{-~",
          ":space:": "\t\n\v\f\r ", ":upper:": "A-Z", ":word:": "0-9A-Za-z_",
          ":xdigit:": "0-9A-Fa-f"}

_META = set("\\.+*?()|[]{}^$")  # Go regexp.QuoteMeta's special characters


def _quote_meta(text: str) -> str:
    return "".join("\\" + c if c in _META else c for c in text)


class _Lexer:
    """ohmyglob ``syntax/lexer/lexer.go``: tokens as (kind, raw) pairs."""

    def __init__(self, source: str) -> None:
        self.data, self.pos, self.last = source, 0, 0
        self.tokens: deque[tuple[str, str]] = deque()
        self.terms = self.captures = 0
        self.error: str | None = None

    def next(self) -> tuple[str, str]:
        while True:
            if self.error is not None:  # lexer.Next checks the error before queued tokens
                return "error", self.error
            if self.tokens:
                return self.tokens.popleft()
            self._fetch()

    def _peek(self) -> str:
        return self.data[self.pos] if self.pos < len(self.data) else ""

    def _read(self) -> str:
        c = self._peek()
        self.last = len(c)
        self.pos += self.last
        return c

    def _unread(self) -> None:
        self.pos -= self.last

    def _open_capture(self, quantifier: str) -> None:
        self.tokens.append(("capture_open", quantifier + "("))
        self.captures += 1

    def _fetch(self) -> None:
        r = self._read()
        push = self.tokens.append
        if r == "":
            push(("eof", ""))
        elif r == "{":
            self.terms += 1
            push(("terms_open", r))
        elif r == "," and self.terms:
            push(("separator", r))
        elif r == "}" and self.terms:
            push(("terms_close", r))
            self.terms -= 1
        elif r == "|" and self.captures:
            push(("separator", r))
        elif r == "[":
            push(("range_open", r))
            self._fetch_range()
        elif r == "(":
            self._open_capture("@")
        elif r in "@!^+":
            if self._peek() == "(":
                self._read()
                self._open_capture(r)
            else:
                self._unread()
                self._fetch_text(_BASIC)
        elif r == ")" and self.captures:
            push(("capture_close", r))
            self.captures -= 1
        elif r == "?":
            if self._read() == "(":
                self._open_capture("?")
            else:
                self._unread()
                push(("single", r))
        elif r == "*":
            after = self._read()
            if after == "*":
                if self._peek() == "(":  # "**(" is "*" then the capture "*("
                    self._unread()
                    push(("any", r))
                else:
                    push(("super", "**"))
            elif after == "(":
                self._open_capture("*")
            else:
                self._unread()
                push(("any", r))
        else:
            self._unread()
            self._fetch_text(_IN_TERMS if self.terms else _IN_CAPTURE if self.captures
                             else _EXTENDED)

    def _fetch_range(self) -> None:
        seen_not = in_posix = escaped = False
        data: list[str] = []
        while True:
            r = self._read()
            if r == "":
                self.error = "unexpected end of input"
                return
            if not escaped:
                if r == "\\":
                    escaped = True
                    continue
                if r == "[":
                    in_posix = True
                if r == "]":
                    if not in_posix:
                        break
                    in_posix = False
                if not seen_not and r in "!^":  # the first one anywhere negates the class
                    self.tokens.append(("not", r))
                    seen_not = True
                    continue
            escaped = False
            data.append(r)
        if data:
            self.tokens.append(("text", "".join(data)))
        self.tokens.append(("range_close", "]"))

    def _fetch_text(self, breakers: str) -> None:
        data: list[str] = []
        escaped = False
        while True:
            r = self._read()
            if r == "":
                break
            if not escaped:
                if r == "\\":
                    escaped = True
                    continue
                if r in breakers:
                    self._unread()
                    break
            escaped = False
            data.append(r)
        if data:
            self.tokens.append(("text", "".join(data)))


@dataclass(eq=False)
class _Node:
    kind: str  # pattern, anyof, capture, list, text, any, super, single
    value: str = ""  # text, list characters or capture quantifier
    negated: bool = False
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def add(self, child: _Node) -> _Node:
        child.parent = self
        self.children.append(child)
        return child


def _parse(pattern: str) -> _Node:
    """ohmyglob ``syntax/ast/parser.go`` parserMain and parserRange."""
    lexer = _Lexer(pattern)
    root = tree = _Node("pattern")
    while True:
        kind, raw = lexer.next()
        if kind == "eof":
            return root
        if kind == "error":
            raise GlobError(raw)
        if kind == "text":
            tree.add(_Node("text", raw))
        elif kind in ("any", "super", "single"):
            tree.add(_Node(kind))
        elif kind == "range_open":
            tree.add(_parse_range(lexer))
        elif kind in ("terms_open", "capture_open"):
            group = tree.add(_Node("anyof" if kind == "terms_open" else "capture", raw[:1]))
            tree = group.add(_Node("pattern"))
        elif kind in ("separator", "terms_close", "capture_close"):
            # The lexer only emits these inside an open group, so the parents exist.
            enclosing = tree.parent
            outer = enclosing.parent if enclosing is not None else None
            if enclosing is None or outer is None:
                raise GlobError(f"unexpected token: {kind}")
            tree = enclosing.add(_Node("pattern")) if kind == "separator" else outer
        else:
            raise GlobError(f"unexpected token: {kind}")


def _parse_range(lexer: _Lexer) -> _Node:
    node = _Node("list")
    while True:
        kind, raw = lexer.next()
        if kind == "eof":
            raise GlobError("unexpected end")
        if kind == "error":
            raise GlobError(raw)
        if kind == "not":
            node.negated = True
        elif kind == "text":
            for name, chars in _POSIX.items():
                raw = raw.replace(name, chars)
            node.value = raw
        elif kind == "range_close":
            return node


def _compile(node: _Node) -> str:
    """ohmyglob ``compiler/compiler.go`` compile, with ``sep`` = '/'."""
    if node.kind in ("anyof", "pattern", "capture") and not node.children:
        return ""
    if node.kind == "anyof":
        return "(?:" + "|".join(_compile(c) for c in node.children) + ")"
    if node.kind == "pattern":
        return "".join(_compile(c) for c in node.children)
    if node.kind == "capture":
        quantifier = node.value
        body = (_CLOSE_NEG + "|" if quantifier == "!" else "|").join(
            _compile(c) for c in node.children)
        if quantifier in ("*", "?", "+"):
            return f"((?:{body}){quantifier})"
        if quantifier == "@":
            return f"({body})"
        if quantifier == "!":
            return f"((?:(?!(?:{body}{_CLOSE_NEG})){_DOT}*))"
        raise GlobError(f"unimplemented quatifier {quantifier}")  # sic, ohmyglob's message
    if node.kind == "any":
        return _DOT + "*" + _BOUNDARY
    if node.kind == "super":
        return ".*" + _BOUNDARY
    if node.kind == "single":
        return _DOT
    if node.kind == "list":
        return "[" + ("^" if node.negated else "") + _quote_meta(node.value) + "]"
    return _quote_meta(node.value) + _BOUNDARY  # text


def glob_to_regex(glob: str) -> str:
    """The regex ohmyglob's Compile makes of ``glob``: ``\\A...\\z``, with Python's ``\\Z``
    for Go's ``\\z`` (the very end of the text)."""
    regex = _compile(_parse(glob))
    index = regex.find(_CLOSE_NEG + ")")
    if index > 0:  # compiler.go Compile: a negation runs to a boundary, else to the end
        regex = regex.replace(_CLOSE_NEG, "" if _BOUNDARY in regex[index:] else "$")
    return "\\A" + regex.replace(_BOUNDARY, "") + "\\Z"


def clean_path(path: str) -> str:
    """pachyderm ``src/internal/pfsfile/pfsfile.go`` CleanPath: one leading '/', none trailing."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" if cleaned == "." else "/" + cleaned.strip("/")


@lru_cache(maxsize=256)
def compile_glob(glob: str) -> re.Pattern[str]:
    """``glob`` (cleaned as Pachyderm cleans it) as a compiled, anchored regex; GlobError if bad."""
    regex = glob_to_regex(clean_path(glob))
    try:
        with warnings.catch_warnings():  # "possible set difference" etc.: literal here, as in .NET
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(regex)
    except re.error as exc:
        raise GlobError(str(exc)) from None


def captures(match: re.Match[str] | None) -> list[str]:
    """ohmyglob Glob.Capture: the whole match, then each group ("" if it took no part)."""
    if match is None:
        return []
    return [match.group(0), *(g or "" for g in match.groups())]


def expand(template: str, groups: Sequence[str]) -> str:
    """ohmyglob ``glob.go`` Replace: ``$n``/``${n}`` is group n, ``$$`` a '$', the rest literal.

    ``$1x`` is group 1 then "x"; ``$a`` and ``${1`` stay as written; a group past the last
    is empty. A number with a leading zero (``$01``) or over 99999999 makes ohmyglob index
    ``match[-1]``, a panic in Pachyderm's worker; it is refused here (GlobError) instead.
    """
    out: list[str] = []
    while template:
        i = template.find("$")
        if i < 0:
            break
        out.append(template[:i])
        template = template[i:]
        if template.startswith("$$"):
            out.append("$")
            template = template[2:]
            continue
        parsed = _extract(template)
        if parsed is None:  # malformed: the '$' is text
            out.append("$")
            template = template[1:]
            continue
        num, template = parsed
        if num < 0:
            raise GlobError("a group number with a leading zero (like $01) or over 99999999 "
                            "makes Pachyderm's worker panic; write $1 or ${1}")
        if num < len(groups):
            out.append(groups[num])
    out.append(template)
    return "".join(out)


def _extract(text: str) -> tuple[int, str] | None:
    """ohmyglob ``glob.go`` extract: (group number or -1, the rest), None if not a reference."""
    if len(text) < 2 or text[0] != "$":
        return None
    brace = text[1] == "{"
    text = text[2:] if brace else text[1:]
    i = 0
    while i < len(text) and text[i].isdecimal():  # Go unicode.IsDigit: category Nd
        i += 1
    if i == 0:
        return None
    name = text[:i]
    if brace:
        if i >= len(text) or text[i] != "}":
            return None
        i += 1
    num = 0
    for c in name:
        if not "0" <= c <= "9" or num >= 100_000_000:
            num = -1
            break
        num = num * 10 + ord(c) - ord("0")
    if name[0] == "0" and len(name) > 1:
        num = -1
    return num, text[i:]
