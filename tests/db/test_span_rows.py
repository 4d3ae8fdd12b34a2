"""Rows transformed field by field (clonekit/_speedups.c, span_row) give the whole-row loop's bytes.

When a table's transform only calls one value function per column (no `when`, no staff accounts:
``capture.value_functions``), the compiled loop applies those functions field by field, with no
tuple, runs scrub's gate on a text's UTF-8 bytes before making a Python object of it, and the
compiled pseudonyms (email, username, ip) on an ASCII text's bytes. Checked
here against the same batch through the whole-row transform (``spans`` off) and through the pure
Python loop, with the planner's real actions on escapes, NULLs, invalid UTF-8, addresses, IPs,
long values over a column's limit, serialized PHP, and an action that fails.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clonekit.config import SanitizeConfig
from clonekit.db import capture
from clonekit.db.capture import SPAN_CALL, SPAN_SCRUB, _RowTransformer, value_functions
from clonekit.errors import ClonekitError
from clonekit.sanitize import build_planner
from clonekit.schema import Column, Table

compiled = capture.speedups
pytestmark = pytest.mark.skipif(compiled is None, reason="the compiled module did not build "
                                "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")

SECRET_ENV = "CK_TEST_SPAN_SECRET"
TABLE = Table("t", (
    Column("id", "int", "int(11)"), Column("mail", "varchar", "varchar(60)", max_chars=60),
    Column("note", "varchar", "varchar(12)", max_chars=12), Column("body", "longtext", "longtext"),
    Column("data", "longblob", "longblob", binary=True), Column("host", "varchar", "varchar(45)", max_chars=45),
    Column("who", "varchar", "varchar(40)", max_chars=40), Column("kept", "text", "text"),
), primary_key=("id",))
RULES = {"t": {"columns": {"mail": "email", "note": "scrub", "body": "scrub", "host": "ip", "who": "username",
                           "data": {"php": {"keys": {"*mail*": "email", "name": "username"}, "values": "scrub"}},
                           "kept": "keep"}}}
TEXTS = [b"\\N", b"", b"plain words", b"jane@example.org", b"call 0612345678 now", b"from 10.1.2.3 today",
         b"Aim\xc3\xa9e v. 1.2.3.4", b"\xff\xfe invalid", b"tab\\there", b"line\\nbreak\\n", b"back\\\\slash",
         b"\\0\\r\\Z\\b\\x", b"ends with \\", b"\xe6\x97\xa5\xe6\x9c\xac", b"twelve chars", b"thirteen char",
         b"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", b"dead:beef::1", b"\xd9\xa1\xd9\xa2\xd9\xa3 digits",
         b" Jane.Doe@Example.ORG ", b"admin", b"x" * 70]
PHP = [b'a:2:{s:4:"mail";s:16:"jane@example.org";s:4:"name";s:4:"jane";}', b'a:1:{s:4:"note";s:10:"tel 061234";}',
       b'a:1:{s:1:"x";s:20:"line\\\\nwith\\\\tescapes";}', b"not serialized 10.0.0.1", b'C:3:"Foo":0:{}', b"\\N", b""]


def _policy(monkeypatch: pytest.MonkeyPatch, rules: dict = RULES) -> Any:
    monkeypatch.setenv(SECRET_ENV, "span-rows-test-secret")
    config = SanitizeConfig(tables=rules, secret_env=SECRET_ENV, strict=False, keep_accounts=("admin",))
    return build_planner(config).plan([TABLE])["t"]


def _line(choices: list[int]) -> bytes:
    fields = [str(choices[0]).encode()]
    for column, choice in zip(TABLE.data_columns[1:], choices[1:], strict=True):
        pool = PHP if column.name == "data" else TEXTS
        fields.append(pool[choice % len(pool)])
    return b"\t".join(fields) + b"\n"


def _three_ways(monkeypatch: pytest.MonkeyPatch, data: bytes, rules: dict = RULES) -> list[Any]:
    """The batch with spans, without (the whole-row compiled loop) and in pure Python."""
    outcomes = []
    for run in ("spans", "rows", "python"):
        rows = _RowTransformer(_policy(monkeypatch, rules), TABLE.data_columns)
        if run == "spans":
            assert rows.spans is not None
        if run == "rows":
            rows.spans = None
        try:
            if run == "python":
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(capture, "compiled", None)
                    outcomes.append(("ok", rows.batch(data)))
            else:
                outcomes.append(("ok", rows.batch(data)))
        except ClonekitError as exc:
            outcomes.append(("error", str(exc)))
    return outcomes


def test_a_table_of_plain_actions_gets_spans_and_a_when_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    spans = _RowTransformer(_policy(monkeypatch), TABLE.data_columns).spans
    assert spans is not None
    by_name = dict(zip((c.name for c in TABLE.data_columns), spans, strict=True))
    assert by_name["id"] is None and by_name["kept"] is None  # no function reads them: never decoded
    assert by_name["note"][0] == SPAN_SCRUB and by_name["note"][2] == 12  # the gate on bytes, within 12 characters
    assert by_name["body"][0] == SPAN_SCRUB and by_name["body"][2] == -1
    assert by_name["mail"][0] == by_name["data"][0] == by_name["host"][0] == SPAN_CALL
    conditional = {"t": {"columns": {**RULES["t"]["columns"], "note": [{"when": "host = '1.2.3.4'", "use": "scrub"}, "keep"]}}}
    assert _RowTransformer(_policy(monkeypatch, conditional), TABLE.data_columns).spans is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choices=st.lists(st.lists(st.integers(0, 40), min_size=len(TABLE.data_columns), max_size=len(TABLE.data_columns)),
                        min_size=1, max_size=8))
def test_span_rows_match_the_whole_row_loop_and_python(monkeypatch: pytest.MonkeyPatch, choices: list[list[int]]) -> None:
    outcomes = _three_ways(monkeypatch, b"".join(_line(c) for c in choices))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_every_text_in_every_column_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    width = len(TABLE.data_columns)
    for column in range(1, width):
        data = b"".join(_line([7] + [choice if j == column else 0 for j in range(1, width)]) for choice in range(40))
        outcomes = _three_ways(monkeypatch, data)
        assert outcomes[0] == outcomes[1] == outcomes[2]


def test_a_wrapped_transform_is_never_bypassed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A planner that wraps the planner's transform (more masking of its own, ``dataclasses.replace``)
    gets its wrapper run on every row, not the spans of the transform inside."""
    policy = _policy(monkeypatch)
    inner = policy.transform

    def masked(row: tuple) -> tuple:
        out = list(inner(row))
        out[7] = "masked"  # `kept`: a column the planner's rules keep
        return tuple(out)

    wrapped = replace(policy, transform=masked)
    assert value_functions(inner) is not None
    rows = _RowTransformer(wrapped, TABLE.data_columns)
    assert rows.spans is None
    out, _, count = rows.batch(b"".join(_line([i] * len(TABLE.data_columns)) for i in range(1, 6)))
    assert count == 5 and all(line.endswith(b"\tmasked") for line in out.split(b"\n")[:-1])
    # another compiled row function (other rules): the spans are its own functions
    other = {"t": {"columns": {**RULES["t"]["columns"], "body": "keep"}}}
    swapped = replace(policy, transform=_policy(monkeypatch, other).transform)
    spans = _RowTransformer(swapped, TABLE.data_columns).spans
    assert spans is not None and spans[3] is None  # `body`: kept by the other rules


def test_a_failing_span_hands_its_row_to_the_whole_row_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _RowTransformer(_policy(monkeypatch), TABLE.data_columns)
    assert rows.spans is not None

    def failing(value: Any) -> Any:
        raise ValueError(f"cannot read {value}")

    # the span of `mail` fails on every value: each row goes to the whole-row transform instead (the
    # planner's functions, which raise the planner's message when they fail; here they do not)
    rows.spans = tuple(s if s is None or i != 1 else (SPAN_CALL, failing, -1) for i, s in enumerate(rows.spans))
    data = b"".join(_line([i] * len(TABLE.data_columns)) for i in range(1, 6))
    assert rows.batch(data) == _RowTransformer(_policy(monkeypatch), TABLE.data_columns).batch(data)


def test_wrong_field_counts_fail_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _RowTransformer(_policy(monkeypatch), TABLE.data_columns)
    good = _line([3] * len(TABLE.data_columns))
    for bad in (good[:-1] + b"\textra\n", good.rsplit(b"\t", 1)[0] + b"\n", b"\n"):
        with pytest.raises(ValueError, match=r"a row has \d+ fields, not 8"):
            rows.batch(good + bad)


def test_bad_spans_are_refused() -> None:
    columns = (Column("id", "int", "int(11)"), Column("v", "text", "text"))
    decoders = ((0, None, True), (2, None, True))
    line = b"1\tx\n"
    for spans, message in [(((SPAN_CALL, str, -1), None), "a span is None"), ((None,), "a tuple of the width"),
                           ((None, (SPAN_SCRUB, str)), "a span is None"), ((None, (9, str, -1)), "a span is None")]:
        with pytest.raises((ValueError, TypeError), match=message):
            compiled.transform_batch(line, lambda row: row, decoders, None, columns, 1, spans)


def test_span_rows_keep_reference_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _RowTransformer(_policy(monkeypatch), TABLE.data_columns)
    data = b"".join(_line([i] * len(TABLE.data_columns)) for i in range(40))
    marker = rows.spans[3][1]
    rows.batch(data)
    before = (sys.getrefcount(marker), sys.getrefcount(data))
    for _ in range(200):
        out = rows.batch(data)
    del out
    assert (sys.getrefcount(marker), sys.getrefcount(data)) == before
