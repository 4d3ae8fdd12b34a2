"""``when:`` conditions: a small SQL-like expression language on the columns of the same row.

Parsed (never evaluated by Python's eval) into closures over column indexes, resolved once per
table. Grammar::

    expr    := or
    or      := and ("OR" and)*
    and     := not ("AND" not)*
    not     := "NOT" not | primary
    primary := "(" expr ")" | operand [ cmp operand | [NOT] IN "(" lit ("," lit)* ")"
                                      | [NOT] LIKE string | IS [NOT] NULL ]
    cmp     := = | != | <> | < | <= | > | >=
    operand := column | 'string' | number | NULL

Comparisons follow MySQL's default collations: strings compare case-insensitively, NULL makes
a comparison unknown, and an unknown condition does not match.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

Predicate = Callable[[tuple], bool | None]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.|'')*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|<>|!=|=|<|>|\(|\)|,)
      | (?P<qid>`[^`]+`)
      | (?P<id>[A-Za-z_][A-Za-z0-9_$]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL"}


class WhenSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Token:
    kind: str  # str num op id kw
    text: str
    value: object = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise WhenSyntaxError(f"unexpected character {text[pos:pos + 1]!r} at position {pos}")
        pos = match.end()
        if match.group("str") is not None:
            raw = match.group("str")[1:-1]
            # like MySQL, keep the backslash of \% and \_ so LIKE can still escape them
            value = re.sub(r"\\([^%_])", r"\1", raw.replace("''", "'"))
            tokens.append(Token("str", raw, value))
        elif match.group("num") is not None:
            tokens.append(Token("num", match.group("num"), Decimal(match.group("num"))))
        elif match.group("op") is not None:
            tokens.append(Token("op", match.group("op")))
        elif match.group("qid") is not None:
            tokens.append(Token("id", match.group("qid")[1:-1]))
        else:
            word = match.group("id")
            if word.upper() in _KEYWORDS:
                tokens.append(Token("kw", word.upper()))
            else:
                tokens.append(Token("id", word))
    return tokens


# --- syntax tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    name: str


@dataclass(frozen=True)
class Lit:
    value: object  # str, Decimal or None


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Col | Lit
    right: Col | Lit


@dataclass(frozen=True)
class In:
    operand: Col | Lit
    values: tuple[object, ...]
    negated: bool


@dataclass(frozen=True)
class Like:
    operand: Col | Lit
    pattern: str
    negated: bool


@dataclass(frozen=True)
class IsNull:
    operand: Col | Lit
    negated: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND OR
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


@dataclass(frozen=True)
class _AnyLike:
    """Compiled form only (never parsed): ``col LIKE p1 OR col LIKE p2 ...``."""

    operand: Col
    patterns: tuple[str, ...]


Node = Cmp | In | Like | IsNull | BoolOp | Not | _AnyLike


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise WhenSyntaxError("unexpected end of the condition")
        self.i += 1
        return tok

    def accept(self, kind: str, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == kind and tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str) -> None:
        if not self.accept(kind, text):
            tok = self.peek()
            raise WhenSyntaxError(f"expected {text!r}, got {tok.text if tok else 'the end'!r}")

    def parse(self) -> Node:
        node = self.or_()
        if self.peek() is not None:
            raise WhenSyntaxError(f"unexpected {self.peek().text!r}")  # type: ignore[union-attr]
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.accept("kw", "OR"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else BoolOp("OR", tuple(parts))

    def and_(self) -> Node:
        parts = [self.not_()]
        while self.accept("kw", "AND"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else BoolOp("AND", tuple(parts))

    def not_(self) -> Node:
        if self.accept("kw", "NOT"):
            return Not(self.not_())
        return self.primary()

    def operand(self) -> Col | Lit:
        tok = self.take()
        if tok.kind == "id":
            return Col(tok.text)
        if tok.kind in ("str", "num"):
            return Lit(tok.value)
        if tok.kind == "kw" and tok.text == "NULL":
            return Lit(None)
        raise WhenSyntaxError(f"expected a column or a value, got {tok.text!r}")

    def literal(self) -> object:
        tok = self.take()
        if tok.kind in ("str", "num"):
            return tok.value
        if tok.kind == "kw" and tok.text == "NULL":
            return None
        raise WhenSyntaxError(f"expected a quoted value or a number, got {tok.text!r}")

    def primary(self) -> Node:
        if self.accept("op", "("):
            node = self.or_()
            self.expect("op", ")")
            return node
        left = self.operand()
        tok = self.peek()
        if tok is None:
            raise WhenSyntaxError("a column alone is not a condition: compare it (=, IN, LIKE, IS NULL)")
        if tok.kind == "op" and tok.text in ("=", "!=", "<>", "<", "<=", ">", ">="):
            self.i += 1
            return Cmp("!=" if tok.text == "<>" else tok.text, left, self.operand())
        negated = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.expect("op", "(")
            values = [self.literal()]
            while self.accept("op", ","):
                values.append(self.literal())
            self.expect("op", ")")
            return In(left, tuple(values), negated)
        if self.accept("kw", "LIKE"):
            pat = self.take()
            if pat.kind != "str":
                raise WhenSyntaxError("LIKE needs a quoted pattern")
            return Like(left, str(pat.value), negated)
        if not negated and self.accept("kw", "IS"):
            neg = self.accept("kw", "NOT")
            self.expect("kw", "NULL")
            return IsNull(left, neg)
        raise WhenSyntaxError(f"expected a comparison after {getattr(left, 'name', 'the value')!r}, got {tok.text!r}")


def parse(text: str) -> Node:
    """Parse a condition; raises WhenSyntaxError with a message naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise WhenSyntaxError("an empty condition")
    return _Parser(tokenize(text)).parse()


def columns_of(node: Node) -> set[str]:
    out: set[str] = set()

    def visit(n: object) -> None:
        if isinstance(n, Col):
            out.add(n.name)
        elif isinstance(n, Cmp):
            visit(n.left)
            visit(n.right)
        elif isinstance(n, (In, Like, IsNull)):
            visit(n.operand)
        elif isinstance(n, BoolOp):
            for p in n.parts:
                visit(p)
        elif isinstance(n, Not):
            visit(n.part)

    visit(node)
    return out


# --- compilation to closures ---------------------------------------------------------------


def _norm(value: object) -> object:
    """Row values to comparable ones: text case-folded, numbers as Decimal."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, float, Decimal)):
        return Decimal(value)
    return str(value).casefold()


def _coerce_pair(a: object, b: object) -> tuple[object, object]:
    """MySQL compares a string with a number as numbers."""
    if isinstance(a, Decimal) and isinstance(b, str):
        try:
            return a, Decimal(b)
        except InvalidOperation:
            return str(a), b
    if isinstance(a, str) and isinstance(b, Decimal):
        try:
            return Decimal(a), b
        except InvalidOperation:
            return a, str(b)
    return a, b


def _like_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(_like_source(pattern), re.DOTALL | re.IGNORECASE)


def _like_source(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "".join(out)


def _merged_likes(node: BoolOp) -> BoolOp:
    """``a LIKE 'x' OR a LIKE 'y' OR ...`` as one LIKE-like test per column: one regex scan
    instead of dozens (presets list a key's spellings in many languages)."""
    by_column: dict[str, tuple[Col, list[Like]]] = {}
    others: list[Node] = []
    for part in node.parts:
        if isinstance(part, Like) and not part.negated and isinstance(part.operand, Col):
            by_column.setdefault(part.operand.name.lower(), (part.operand, []))[1].append(part)
        else:
            others.append(part)
    merged: list[Node] = []
    for column, likes in by_column.values():
        merged.append(likes[0] if len(likes) == 1 else _AnyLike(column, tuple(like.pattern for like in likes)))
    return BoolOp("OR", tuple(merged + others))


def compile_predicate(node: Node, index: Mapping[str, int]) -> Predicate:
    """Closure over row tuples. ``index`` maps lower-cased column names to positions."""

    def getter(operand: Col | Lit) -> Callable[[tuple], object]:
        if isinstance(operand, Col):
            pos = index[operand.name.lower()]
            return lambda row: _norm(row[pos])
        const = _norm(operand.value)
        return lambda row: const

    if isinstance(node, Cmp):
        left, right = getter(node.left), getter(node.right)
        op = node.op
        compare: Callable[[object, object], bool] = {
            "=": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,  # type: ignore[operator]
            "<=": lambda a, b: a <= b,  # type: ignore[operator]
            ">": lambda a, b: a > b,  # type: ignore[operator]
            ">=": lambda a, b: a >= b,  # type: ignore[operator]
        }[op]

        def cmp(row: tuple) -> bool | None:
            a, b = left(row), right(row)
            if a is None or b is None:
                return None
            if type(a) is not type(b):
                a, b = _coerce_pair(a, b)
                if type(a) is not type(b):
                    a, b = str(a), str(b)
            return compare(a, b)

        return cmp
    if isinstance(node, In):
        get = getter(node.operand)
        members = {_norm(v) for v in node.values if v is not None}
        has_null = any(v is None for v in node.values)
        text_members = {str(m) for m in members}
        negated = node.negated

        def within(row: tuple) -> bool | None:
            value = get(row)
            if value is None:
                return None
            found = value in members or (isinstance(value, Decimal) and str(value) in text_members)
            if not found and isinstance(value, str):
                try:
                    found = Decimal(value) in members
                except InvalidOperation:
                    found = False
            if found:
                return not negated
            return None if has_null else negated

        return within
    if isinstance(node, _AnyLike):
        get = getter(node.operand)
        regex = re.compile("|".join(f"(?:{_like_source(p)})" for p in node.patterns), re.DOTALL | re.IGNORECASE)

        def any_like(row: tuple) -> bool | None:
            value = get(row)
            return None if value is None else regex.fullmatch(str(value)) is not None

        return any_like
    if isinstance(node, Like):
        get = getter(node.operand)
        regex = _like_regex(node.pattern)
        negated = node.negated

        def like(row: tuple) -> bool | None:
            value = get(row)
            if value is None:
                return None
            return (regex.fullmatch(str(value)) is not None) != negated

        return like
    if isinstance(node, IsNull):
        get = getter(node.operand)
        negated = node.negated
        return lambda row: (get(row) is None) != negated
    if isinstance(node, Not):
        inner = compile_predicate(node.part, index)

        def negate(row: tuple) -> bool | None:
            value = inner(row)
            return None if value is None else not value

        return negate
    if isinstance(node, BoolOp):
        if node.op == "OR":
            node = _merged_likes(node)
        parts = [compile_predicate(p, index) for p in node.parts]
        if node.op == "AND":

            def conj(row: tuple) -> bool | None:
                result: bool | None = True
                for p in parts:
                    value = p(row)
                    if value is False:
                        return False
                    if value is None:
                        result = None
                return result

            return conj

        def disj(row: tuple) -> bool | None:
            result: bool | None = False
            for p in parts:
                value = p(row)
                if value is True:
                    return True
                if value is None:
                    result = None
            return result

        return disj
    raise TypeError(f"unknown condition node {type(node).__name__}")


def equality_dispatch(node: Node) -> tuple[str, frozenset[str]] | None:
    """When a condition is ``col = 'x'`` or ``col IN ('x', 'y')`` (strings), return (col, values):
    the planner turns a list of such branches on one column into a single dict lookup."""
    if isinstance(node, Cmp) and node.op == "=":
        col, lit = node.left, node.right
        if isinstance(lit, Col):
            col, lit = lit, col
        if isinstance(col, Col) and isinstance(lit, Lit) and isinstance(lit.value, str):
            return col.name.lower(), frozenset({lit.value.casefold()})
    if isinstance(node, In) and not node.negated and isinstance(node.operand, Col):
        if all(isinstance(v, str) for v in node.values):
            return node.operand.name.lower(), frozenset(str(v).casefold() for v in node.values)
    return None
