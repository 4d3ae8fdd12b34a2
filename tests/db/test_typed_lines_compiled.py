"""The compiled row loop of the sanitizing path gives the Python loop's values and bytes.

``_RowTransformer.batch`` on a batch (tsv-1 lines, each ending with a newline) runs
``transform_batch`` of clonekit/_speedups.c when it was built: split, decode of the columns the
rules read, the transform, re-encoding of the values it changed, the join and the rows after which
a chunk may end. Checked against the pure-Python loop (``lines_python``) on every column kind, with escapes, NULLs, invalid UTF-8, surrogates, integers
the C code does not parse itself, values of every type a transform may return, unread columns,
rows with the wrong field count; the values each transform receives are compared too.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clonekit.db import capture
from clonekit.db.capture import _RowTransformer
from clonekit.db.codec import python_cut
from clonekit.schema import Column, TablePolicy

compiled = capture.speedups
needs_compiled = pytest.mark.skipif(compiled is None, reason="the compiled module did not build "
                                    "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")

COLUMNS = (
    Column("id", "int", "int(11)"), Column("big", "bigint", "bigint(20) unsigned"), Column("y", "year", "year(4)"),
    Column("price", "decimal", "decimal(10,2)"), Column("ratio", "double", "double"), Column("f", "float", "float"),
    Column("at", "datetime", "datetime"), Column("day", "date", "date"), Column("span", "time", "time"),
    Column("flags", "bit", "bit(3)", binary=True), Column("name", "varchar", "varchar(64)", max_chars=64),
    Column("body", "longtext", "longtext"), Column("data", "longblob", "longblob", binary=True),
    Column("code", "varbinary", "varbinary(16)", binary=True), Column("kind", "enum", "enum('a','b')"),
    Column("doc", "json", "json"),
)
FIELDS = {
    "int": [b"0", b"-0", b"007", b"42", b"-42", b"99999999999999999999999", b"+5", b" 7", b"1_000"],
    "bigint": [b"18446744073709551615", b"123456789012345678", b"1234567890123456789"],
    "year": [b"2026", b"0"],
    "decimal": [b"12.50", b"-0.01"],
    "double": [b"0.5", b"-1e+25", b"inf"],
    "float": [b"1.25"],
    "datetime": [b"2026-11-30 10:00:00", b"2026-11-30 10:00:00.123456"],
    "date": [b"2026-11-30"],
    "time": [b"-838:59:59", b"10:00:00.5"],
    "bit": [b"5", b"0"],
}
TEXTS = [b"", b"jane@example.org", b"Aim\xc3\xa9", b"\xff\xfe invalid", b"tab\\there", b"line\\nbreak", b"back\\\\slash",
         b"\\0\\r\\Z\\b\\x", b"ends with \\", b"\\", b"\xe6\x97\xa5\xe6\x9c\xac", b"\\N\\N", b"N"]
NEW_VALUES = [None, "", "plain", "tab\there\nnew\\line", "Aimé", "\udcff\udcfe surrogates", b"raw\tbytes\\", b"",
              bytearray(b"ba\n"), True, False, 0, -7, 2**70, -(2**63), 2**63 - 1, 1.5, decimal.Decimal("3.10"),
              dt.datetime(2026, 11, 30, 10, 0, 1), dt.date(2026, 11, 30), dt.timedelta(hours=-1, seconds=3),
              {"b", "a"}, ("x",)]


def _fields(column: Column) -> list[bytes]:
    return [b"\\N", *FIELDS.get(column.data_type, TEXTS)]


def _line(choices: list[int]) -> bytes:
    return b"\t".join(_fields(c)[i % len(_fields(c))] for c, i in zip(COLUMNS, choices, strict=True))


class _Recorder:
    """A transform that records what it receives and changes some columns to the given values."""

    def __init__(self, changes: dict[int, object], same: bool, as_list: bool) -> None:
        self.changes, self.same, self.as_list = changes, same, as_list
        self.seen: list[str] = []

    def __call__(self, row: tuple) -> object:
        self.seen.append(repr(row))
        if self.same:
            return row
        out = list(row)
        for i, value in self.changes.items():
            out[i] = value
        return out if self.as_list else tuple(out)


def _both(lines: list[bytes], reads: frozenset[str] | None, changes: dict[int, object], same: bool,
          as_list: bool) -> None:
    outcomes = []
    for run in ("compiled", "python"):
        recorder = _Recorder(changes, same, as_list)
        rows = _RowTransformer(TablePolicy(transform=recorder, reads=reads), COLUMNS)
        data = b"".join(line + b"\n" for line in lines)
        try:
            if run == "compiled":
                out = rows.batch(data)
            else:
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(capture, "compiled", None)
                    out = rows.batch(data)
            outcome: tuple = ("ok", out, recorder.seen)
        except (ValueError, TypeError, OverflowError) as exc:
            outcome = ("error", type(exc).__name__, str(exc) if "fields" in str(exc) else "", recorder.seen[-1:])
        outcomes.append(outcome)
    assert outcomes[0] == outcomes[1]


@needs_compiled
def test_the_batched_path_uses_the_compiled_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(*args: object) -> object:
        calls.append(len(args))
        return compiled.transform_batch(*args)

    monkeypatch.setattr(capture, "compiled", type("Compiled", (), {"transform_batch": staticmethod(counted)}))
    rows = _RowTransformer(TablePolicy(transform=lambda row: row), COLUMNS)
    line = _line([1] * len(COLUMNS)) + b"\n"
    assert rows.batch(line) == (line, [len(line)] if python_cut(line) else [], 1)
    assert calls == [7]  # with spans (None here: the transform is not the planner's)


@pytest.mark.parametrize("run", ["compiled", "python"])
def test_a_batch_that_ends_inside_a_row_is_refused(monkeypatch: pytest.MonkeyPatch, run: str) -> None:
    if run == "python":
        monkeypatch.setattr(capture, "compiled", None)
    rows = _RowTransformer(TablePolicy(transform=lambda row: row), COLUMNS)
    line = _line([1] * len(COLUMNS))
    with pytest.raises(ValueError, match="ends inside a row"):
        rows.batch(line + b"\n" + line)
    assert rows.batch(b"") == (b"", [], 0)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(choices=st.lists(st.lists(st.integers(0, 20), min_size=len(COLUMNS), max_size=len(COLUMNS)), min_size=1,
                        max_size=6),
       reads=st.one_of(st.none(), st.sets(st.sampled_from([c.name for c in COLUMNS])).map(frozenset)),
       changes=st.dictionaries(st.integers(0, len(COLUMNS) - 1), st.sampled_from(NEW_VALUES), max_size=5),
       same=st.booleans(), as_list=st.booleans())
def test_compiled_loop_matches_the_python_loop(choices: list[list[int]], reads: frozenset[str] | None,
                                               changes: dict[int, object], same: bool, as_list: bool) -> None:
    _both([_line(c) for c in choices], reads, changes, same, as_list)


@needs_compiled
def test_every_field_of_every_column_kind_decodes_alike() -> None:
    for i, column in enumerate(COLUMNS):
        for choice in range(len(_fields(column))):
            _both([_line([choice if j == i else 0 for j in range(len(COLUMNS))])], None, {}, False, False)
            _both([_line([choice if j == i else 0 for j in range(len(COLUMNS))])], None, {i: "new\tvalue"}, False, False)


@needs_compiled
def test_wrong_field_counts_fail_alike() -> None:
    good = _line([1] * len(COLUMNS))
    for bad in (good + b"\textra", good.rsplit(b"\t", 1)[0], b""):
        _both([good, bad], None, {}, False, False)
        with pytest.raises(ValueError, match=r"a row has \d+ fields, not 16"):
            _RowTransformer(TablePolicy(transform=lambda row: row), COLUMNS).batch(bad + b"\n")


@needs_compiled
def test_compiled_loop_keeps_reference_counts() -> None:
    marker = "a changed value"
    lines = [_line([i] * len(COLUMNS)) for i in range(5)]

    def transform(row: tuple) -> tuple:
        return (*row[:10], marker, *row[11:])

    rows = _RowTransformer(TablePolicy(transform=transform, reads=frozenset({"name", "id", "data"})), COLUMNS)
    data = b"".join(line + b"\n" for line in lines)
    rows.batch(data)
    before = (sys.getrefcount(marker), sys.getrefcount(transform), sys.getrefcount(data))
    for _ in range(300):
        out = rows.batch(data)
    del out
    assert (sys.getrefcount(marker), sys.getrefcount(transform), sys.getrefcount(data)) == before
