"""Which source field paths a JSONata transform reads, found statically (no evaluation).

jsonatapy does not expose its syntax tree, so this is a small, conservative scan of the
expression's tokens that follows JSONata's context rules far enough for paths:

* a name in operand position starts a path relative to the current context (the record at
  the top; ``payload.parts[mimeType = "x"]`` makes ``mimeType`` relative to
  ``payload.parts``; ``a.{...}``, ``a.(...)`` and ``a[...]`` evaluate their inside on ``a``);
* ``$`` is the current context and ``$$`` the record; a path that starts at any other
  variable (``$body.text``) or at a function result is not a read of the record, and names
  inside predicates or blocks applied to such values are ignored;
* a function body (``function($v) { ... }``) sees the context it was defined in.

What it cannot know is reported as ``dynamic``: names built at run time (``$lookup``,
``$sift``, ``$each``, ``$keys``, ``$spread``, wildcards ``*`` and ``**``). Paths bound to
variables are followed when the variable is bound once to a plain path (``$p := payload.x;
$p.y`` reads ``payload.x.y``); otherwise paths from it are not counted. The result errs on
the side of fewer paths: a reported path is really read; a path it misses is not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.vault.paths import segment

_TOKEN = re.compile(r"""
    (?P<ws>\s+|/\*.*?\*/)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<tick>`[^`]*`)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<var>\$\$|\$[A-Za-z0-9_]*)
  | (?P<op>:=|!=|<=|>=|~>|\.\.|\?\?|\?:|\*\*|[.\[\]{}()=<>!+\-*/%&|^~?:;,@\#])
  | (?P<name>[^\s.\[\]{}()=<>!+\-*/%&|^~?:;,"'`$@\#]+)
""", re.VERBOSE | re.DOTALL)
_REGEX_BODY = re.compile(r"(?:[^/\\]|\\.)*/[a-z]*", re.DOTALL)
DYNAMIC_FUNCTIONS = {"$lookup", "$sift", "$each", "$keys", "$spread"}
_OPERAND_END = {"name", "var", "str", "num", "regex", "tick"}
_WORD_OPS = {"and", "or", "in"}
_LITERALS = {"true", "false", "null"}
_CLOSE = {"(": ")", "[": "]", "{": "}"}


@dataclass
class Reads:
    """The paths a transform reads and whether it also reads names built at run time."""

    paths: set[str] = field(default_factory=set)
    dynamic: bool = False
    problem: str | None = None


def tokenize(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens; comments and blanks dropped, regex literals kept whole."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected character at offset {pos}")
        kind = m.lastgroup or ""
        value = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "op" and value == "/" and not _after_operand(out):
            body = _REGEX_BODY.match(text, pos)
            if body is None:
                raise ValueError(f"unterminated regex at offset {pos}")
            pos = body.end()
            out.append(("regex", "/" + body.group()))
            continue
        if kind == "name" and value in _WORD_OPS and _after_operand(out):
            kind = "op"
        elif kind == "name" and value in _LITERALS:
            kind = "num"
        elif kind == "name" and value in ("function", "λ"):
            kind = "function"
        elif kind == "tick":
            kind, value = "name", value[1:-1]
        out.append((kind, value))
    return out


def _after_operand(tokens: list[tuple[str, str]]) -> bool:
    if not tokens:
        return False
    kind, value = tokens[-1]
    return kind in _OPERAND_END or (kind == "op" and value in (")", "]", "}"))


class _Scanner:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0
        self.reads = Reads()
        self.bound: dict[str, list[str] | None] = {}
        """Variables bound to a path of the record (``$p := payload``); None once ambiguous."""

    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.t[j] if j < len(self.t) else ("end", "")

    def record(self, base: list[str] | None, segs: list[str]) -> None:
        if base is not None and (base or segs):
            self.reads.paths.add(".".join(segment(s) for s in base + segs))

    def block(self, base: list[str] | None, close: str | None) -> None:
        """Scan until ``close`` (consumed) or the end."""
        while self.i < len(self.t):
            kind, value = self.peek()
            if kind == "op" and value == close:
                self.i += 1
                return
            self.operand_or_token(base)

    def operand_or_token(self, base: list[str] | None) -> None:
        kind, value = self.peek()
        before = self.t[self.i - 1] if self.i else None
        operand_pos = before is None or not (before[0] in _OPERAND_END
                                             or (before[0] == "op" and before[1] in (")", "]", "}")))
        if kind == "name" and operand_pos:
            self.i += 1
            self.chain(base, [value])
        elif kind == "var":
            self.i += 1
            if value in DYNAMIC_FUNCTIONS:
                self.reads.dynamic = True
            if value == "$":
                self.chain(base, [])
            elif value == "$$":
                self.chain([], [])
            elif self.peek() == ("op", "("):
                self.i += 1
                self.block(base, ")")  # a call: arguments see the caller's context
            elif self.peek() == ("op", ":="):
                self.i += 1
                self.bind(value, base)
            else:
                self.chain(self.bound.get(value), [])
        elif kind == "function":
            self.i += 1
            if self.peek() == ("op", "("):
                self.i += 1
                j = self.i
                while j < len(self.t) and self.t[j] != ("op", ")"):
                    if self.t[j][0] == "var":
                        self.bound[self.t[j][1]] = None  # a parameter shadows any binding
                    j += 1
                self.block(None, ")")  # parameters
            if self.peek() == ("op", "<"):  # a signature such as <s-:s>
                while self.i < len(self.t) and self.peek() != ("op", ">"):
                    self.i += 1
                self.i += 1
            if self.peek() == ("op", "{"):
                self.i += 1
                self.block(base, "}")  # the body sees the defining context
        elif kind == "op" and value in _CLOSE:
            self.i += 1
            inner = base if operand_pos else None  # a predicate/group on an unknown value
            if value == "{" and before == ("op", ")"):
                inner = base
            if value == "(" and not operand_pos:
                inner = base  # calling a function value
            self.block(inner, _CLOSE[value])
        elif kind == "op" and value == "." and self.peek(1)[0] == "op" and self.peek(1)[1] in _CLOSE:
            self.i += 2
            self.block(None, _CLOSE[self.peek(-1)[1]])  # mapping over an unknown value
        elif kind == "op" and value == "." and self.peek(1)[0] in ("name", "var"):
            self.i += 2  # a step on an unknown value
        elif kind == "op" and value in ("*", "**") and operand_pos:
            self.reads.dynamic = True
            self.i += 1
        else:
            self.i += 1

    def bind(self, var: str, base: list[str] | None) -> None:
        """``$var := ...``: remember a plain path (``$p := payload.x``), else forget the name."""
        start = self.i
        path: list[str] = []
        while self.peek()[0] == "name" and (not path or self.t[self.i - 1] == ("op", ".")):
            path.append(self.peek()[1])
            self.i += 1
            if self.peek() == ("op", ".") and self.peek(1)[0] == "name":
                self.i += 1
        plain = bool(path) and self.peek() in (("op", ";"), ("op", ")"), ("end", ""))
        if plain and base is not None and var not in self.bound:
            self.bound[var] = base + path
            self.record(base, path)
            return
        self.bound[var] = None
        self.i = start  # not a plain path: scan the value as any expression

    def chain(self, base: list[str] | None, segs: list[str]) -> None:
        """A path continuing from ``base + segs``: steps, predicates, blocks."""
        full = None if base is None else base + segs
        while True:
            kind, value = self.peek()
            if kind == "op" and value == "[":
                self.i += 1
                self.block(full, "]")
            elif kind == "op" and value == "{" and segs:
                self.i += 1
                self.record(base, segs)
                self.block(full, "}")  # group-by on the path
                return
            elif kind == "op" and value == "." and self.peek(1)[0] == "name":
                segs = [*segs, self.peek(1)[1]]
                full = None if base is None else base + segs
                self.i += 2
            elif kind == "op" and value == "." and self.peek(1)[0] == "op" and self.peek(1)[1] in ("*", "**"):
                self.record(base, segs)
                self.reads.dynamic = True
                self.i += 2
                return
            elif kind == "op" and value == "." and self.peek(1)[0] == "op" and self.peek(1)[1] in _CLOSE:
                self.record(base, segs)
                opener = self.peek(1)[1]
                self.i += 2
                self.block(full, _CLOSE[opener])
                return
            elif kind == "op" and value == "." and self.peek(1)[0] == "var":
                self.record(base, segs)
                self.i += 1
                self.operand_or_token(full)  # `a.$f(b)`: b is relative to a
                return
            else:
                self.record(base, segs)
                return


def transform_reads(expression: str) -> Reads:
    """The source paths ``expression`` reads (see the module docstring for the rules)."""
    try:
        tokens = tokenize(expression)
    except ValueError as exc:
        return Reads(dynamic=True, problem=str(exc))
    scanner = _Scanner(tokens)
    scanner.block([], None)
    return scanner.reads
