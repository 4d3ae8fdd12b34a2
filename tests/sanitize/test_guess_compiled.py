"""The compiled ``guess`` action and `when` choice (clonekit/_speedups.c) give the Python path's values.

``guess`` on a str value is decided in C where it can be sure (and the word builders it ends in,
``name``, ``first_name``, ``last_name``, ``address`` and ``text``, are also actions of their own,
compiled with the same code): blank values and small numbers
(kept), e-mail addresses (EMAIL_RE's full match, the staff check, the email pseudonym), and text
with no decimal digit, no ':', not exactly three dots and no "www." start (the hint's pseudonym or
lorem); anything else goes to the Python function. The row loop of a table whose columns a
`when` chooses an action for (Webform's values, by element key) reads the chooser's memo in C.
Each function is built twice, with the compiled module and without it, and both must give the
same value: listed edge values (non-ASCII, full-width and Arabic-Indic digits, phone spellings,
e-mail addresses in odd cases, values over the column's limit, bytes), hypothesis text, and
rows with NULLs through the drupal preset's webform rules.

These tests import the compiled module directly, so they also run (and compare) under
``CLONEKIT_PURE_PYTHON=1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clonekit.sanitize import actions, phpserialize, planner
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action

from .test_phpserialize_compiled import speedups

pytestmark = pytest.mark.skipif(speedups is None, reason="the compiled module did not build "
                                "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")

SECRET = b"guess-compiled-test-secret"
STAFF = frozenset({"admin@example.org", "webmaster", "zoë@exämple.de"})
ALPHABET = (" \t\n\x0b\x0c\r\x1c\x1f\xa0\u2003AZazwW.-_+@:%()/,'0123456789"
            "\u0661\u0662\u0663\uff11\uff10\u00e9\u00c9\u0130\u00df\u017f\u212a\udc80")

GUESSES = [({}, "text"), ({"hint": "name"}, "name"), ({"hint": "first_name"}, "first"), ({"hint": "last_name"}, "last"),
           ({"hint": "address"}, "address"), ({"text": "scrub"}, "scrub"), ({"text": "redact"}, "redact")]
TARGETS = [Target(kind="text"), Target(kind="text", max_chars=1), Target(kind="text", max_chars=12),
           Target(kind="text", max_chars=40), Target(kind="text", max_chars=255), Target(kind="text", max_chars=64, unique=True),
           Target(kind="binary", max_chars=40)]
VALUES = [
    "", " ", "\t\n", "\xa0", "\u2003 \u2003", "1", "-3", "+250", "1000", "+-1", "٣", "\uff11\uff12", "\u0661\u0662\u0663\u0664",
    " 42 ", "42x", "jane@example.org", "  Jane.Doe@Example.ORG\n", "ADMIN@example.org", " admin@EXAMPLE.org ",
    "a@b.co", "a@b.c", "a@b..com", "a@.com", "-a@b.com", "a@-b.com", "a@b.com1", "a@b.c0m", "a@@b.com", "a b@c.com",
    "x" * 64 + "@example.org", "x" * 65 + "@example.org", "a@" + "b" * 62 + "c.org", "a@" + "b" * 63 + "c.org",
    "a@" + "b" * 63 + ".org", "a@b." + "c" * 24, "a@b." + "c" * 25, "a@b.co\u00e9", "\u00a0jane@example.org",
    "zoë@exämple.de", "jane@exämple.de", "jane.doe+news@mail.example.co.uk", "jane@example.org.",
    "+33 6 12 34 56 78", "(07352) 350270", "030 12345678", "0171/1234567", "+49 30 12345678", "555.123.4567",
    "\uff10\uff13\uff10 \uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "\u0660\u0661\u0662 \u0663\u0664\u0665 \u0666\u0667\u0668\u0669",
    "10.0.0.1", "1.2.3", "a.b.c.d", "Mr. J. R. Smith", "Mrs. Jane Doe", "www.example.org", "WWW.example.org", "wwW.x",
    "ww.example", "http://example.org/x", "Https://example.org", "12:30", "2024-01-31", "2024-01-31 12:30",
    "Jane Doe", "  Jane   Doe  ", "JANE", "İstanbul", "Straße", "ǅemal", "\u017fam", "\u212aelvin", "\udc80abc",
    "Fröhlich tranquille cesser long", "Autrement production school mentir fait", "x" * 600, "Zoë " * 200,
    "A sentence, with commas; and (brackets) - dashes / slashes", "a" * 511, "a" * 512, "a" * 513,
    "lorem " * 2200,  # longer than twice the lorem corpus (6,350 characters): it wraps round more than once
]


def _fn(monkeypatch: pytest.MonkeyPatch, module: Any, options: dict, target: Target,
        keep: frozenset[str] = STAFF, action: str = "guess") -> Callable[[Any], Any]:
    monkeypatch.setattr(actions, "compiled", module)
    monkeypatch.setattr(phpserialize, "compiled", module)
    env = ActionEnv(keyed=Keyed(SECRET), keep_values=keep)
    return build_action(ActionSpec(action, options), target, env)


def _pair(monkeypatch: pytest.MonkeyPatch, options: dict, target: Target, keep: frozenset[str] = STAFF,
          action: str = "guess") -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return _fn(monkeypatch, speedups, options, target, keep, action), _fn(monkeypatch, None, options, target, keep, action)


# the word builders guess ends in, as actions of their own: the same C code without guess's tests
WORD_ACTIONS = [("name", {}), ("first_name", {}), ("last_name", {}), ("address", {}), ("text", {}), ("text", {"mode": "scrub"})]


@pytest.mark.parametrize("action,options", WORD_ACTIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_word_actions_match_python_on_listed_values(monkeypatch: pytest.MonkeyPatch, action: str, options: dict,
                                                             target: Target) -> None:
    fast, python = _pair(monkeypatch, options, target, action=action)
    for value in [*VALUES, *(v.encode("utf-8", "surrogateescape") for v in VALUES), 42, 3.5]:
        assert fast(value) == python(value), value
        assert type(fast(value)) is type(python(value))


@pytest.mark.parametrize("action,options", WORD_ACTIONS[:5])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=ALPHABET, max_size=40), limit=st.sampled_from([None, 0, 1, 8, 20, 255]))
def test_compiled_word_actions_match_python_on_generated_text(monkeypatch: pytest.MonkeyPatch, action: str, options: dict,
                                                              value: str, limit: int | None) -> None:
    fast, python = _pair(monkeypatch, options, Target(kind="text", max_chars=limit), action=action)
    assert fast(value) == python(value)


@pytest.mark.parametrize("options", [g[0] for g in GUESSES], ids=[g[1] for g in GUESSES])
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_guess_matches_python_on_listed_values(monkeypatch: pytest.MonkeyPatch, options: dict,
                                                        target: Target) -> None:
    fast, python = _pair(monkeypatch, options, target)
    for value in [*VALUES, *(v.encode("utf-8", "surrogateescape") for v in VALUES), 42, 3.5]:
        assert fast(value) == python(value), value
        assert type(fast(value)) is type(python(value))


@pytest.mark.parametrize("options", [g[0] for g in GUESSES[:5]], ids=[g[1] for g in GUESSES[:5]])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=ALPHABET, max_size=40), limit=st.sampled_from([None, 0, 1, 8, 20, 31, 40, 255]),
       staff=st.booleans())
@example(value="admin@example.org", limit=None, staff=True)
@example(value="\u0661\u0662\u0663", limit=None, staff=False)
def test_compiled_guess_matches_python_on_generated_text(monkeypatch: pytest.MonkeyPatch, options: dict, value: str,
                                                         limit: int | None, staff: bool) -> None:
    keep = STAFF if staff else frozenset()
    fast, python = _pair(monkeypatch, options, Target(kind="text", max_chars=limit), keep)
    assert fast(value) == python(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=st.text(alphabet="aZ09._%+-@é", min_size=0, max_size=6), parts=st.lists(
    st.text(alphabet="aZ09-_.é", min_size=0, max_size=5), min_size=1, max_size=4), padding=st.sampled_from(["", " ", "\n"]))
def test_compiled_guess_reads_email_addresses_as_the_regex_does(monkeypatch: pytest.MonkeyPatch, local: str,
                                                               parts: list[str], padding: str) -> None:
    fast, python = _pair(monkeypatch, {}, Target(kind="text", max_chars=255))
    value = f"{padding}{local}@{'.'.join(parts)}{padding}"
    assert fast(value) == python(value)


def test_the_compiled_guess_is_taken_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a silent fallback: the preset's guesses on text columns are the C function, and the
    common values are decided there (a value that went to Python fills its cache)."""
    for options in ({}, {"hint": "name"}, {"hint": "address"}):
        fn = _fn(monkeypatch, speedups, options, Target(kind="text"))
        assert getattr(fn, "func", None) is speedups.guess_value, options
        python = fn.args[1]  # type: ignore[attr-defined]
        on_text = python.__closure__[[c.cell_contents.__class__.__name__ for c in python.__closure__].index(
            "_lru_cache_wrapper")].cell_contents
        for value in ("jane@example.org", "Jane Doe", "Some words here", " ", "12"):
            fn(value)
        assert on_text.cache_info().currsize == 0, options
        fn("+33 6 12 34 56 78")
        assert on_text.cache_info().currsize == 1
    for options, target in [({"text": "scrub"}, Target(kind="text")), ({}, Target(kind="binary")),
                            ({}, Target(kind="text", unique=True))]:
        fn = _fn(monkeypatch, speedups, options, target)
        assert getattr(fn, "func", None) is not speedups.guess_value, (options, target)
    for action, options in WORD_ACTIONS[:5]:
        fn = _fn(monkeypatch, speedups, options, Target(kind="text", max_chars=255), action=action)
        assert getattr(fn, "func", None) is speedups.guess_value, action
        fn = _fn(monkeypatch, speedups, options, Target(kind="text", max_chars=255, unique=True), action=action)
        assert getattr(fn, "func", None) is not speedups.guess_value, action


def test_kept_values_come_back_as_the_same_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """So the row loop writes the server's line as it came."""
    fast = _fn(monkeypatch, speedups, {}, Target(kind="text", max_chars=255))
    for value in (" ", "7", "-12", "\u0663", "admin@example.org"):
        assert fast(value) is value


# --- the row function of a table with `when` columns ----------------------------------------


def _webform_plan(monkeypatch: pytest.MonkeyPatch, module: Any, extra: dict | None = None) -> Any:
    from clonekit.config import SanitizeConfig
    from clonekit.sanitize import build_planner
    from clonekit.schema import Column, Table

    monkeypatch.setattr(actions, "compiled", module)
    monkeypatch.setattr(phpserialize, "compiled", module)
    monkeypatch.setenv("CK_TEST_GUESS_SECRET", SECRET.decode())
    table = Table("webform_submission_data", (
        Column("webform_id", "varchar", "varchar(32)", nullable=False, max_chars=32),
        Column("sid", "int", "int(10) unsigned", nullable=False),
        Column("name", "varchar", "varchar(128)", nullable=False, max_chars=128),
        Column("property", "varchar", "varchar(128)", nullable=True, max_chars=128),
        Column("delta", "int", "int(10) unsigned", nullable=False),
        Column("value", "longtext", "longtext", nullable=True),
        Column("note", "varchar", "varchar(20)", max_chars=20),
        Column("blob", "blob", "blob", binary=True),
    ), primary_key=("sid", "name", "property", "delta"))
    config = SanitizeConfig(preset="drupal", tables=extra or {}, secret_env="CK_TEST_GUESS_SECRET", strict=False)
    return build_planner(config).plan([table])["webform_submission_data"].transform


KEYS = ["email", "E-Mail", "phone", "first_name", "Last_Name", "nom", "Prénom", "contact", "address", "city", "Ville",
        "message", "", "name"]
EXTRA_RULES = {"webform_submission_data": {"columns": {
    "note": [{"when": "name = 'email'", "use": "email"}, {"when": "name IN ('phone', 'tel')", "use": "phone"},
             {"use": "guess"}],
    "blob": [{"when": "property LIKE '%secret%'", "use": "null"}, {"when": "delta > 2", "use": {"set": "x"}}]}}}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(KEYS), prop=st.one_of(st.none(), st.sampled_from(["", "first", "secret_x", "address"])),
       delta=st.integers(0, 4), value=st.one_of(st.none(), st.sampled_from(VALUES), st.text(alphabet=ALPHABET, max_size=30)),
       note=st.one_of(st.none(), st.sampled_from(VALUES[:40])), blob=st.one_of(st.none(), st.just(b"\x00\xffraw")),
       extra=st.booleans())
def test_the_compiled_when_rows_match_python(monkeypatch: pytest.MonkeyPatch, name: str, prop: str | None, delta: int,
                                             value: str | None, note: str | None, blob: bytes | None, extra: bool) -> None:
    rules = EXTRA_RULES if extra else None
    fast = _webform_plan(monkeypatch, speedups, rules)
    python = _webform_plan(monkeypatch, None, rules)
    assert getattr(fast, "func", None) is speedups.transform_plain
    row = ("contact", 7, name, prop, delta, value, note, blob)
    assert fast(row) == python(row)
    again = fast(row)  # the second time from the chooser's memo
    assert again == python(row)


def test_the_compiled_when_rows_match_python_past_the_memo_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chooser's memo is emptied when full (Python's side); the C side only reads it."""
    monkeypatch.setattr(planner, "CHOICE_CACHE_ENTRIES", 3)
    fast = _webform_plan(monkeypatch, speedups)
    python = _webform_plan(monkeypatch, None)
    rows = [("c", i, KEYS[i % len(KEYS)] + ("x" * (i % 5)), "", 0, VALUES[i % len(VALUES)], None, None) for i in range(400)]
    for row in rows + rows[::-1]:
        assert fast(row) == python(row), row


def test_an_unchanged_row_is_the_same_tuple_and_errors_keep_the_planners_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from clonekit.errors import ClonekitError

    fast = _webform_plan(monkeypatch, speedups)
    for row in (("c", 1, "message", "", 0, "  ", None, None), ("c", 1, "message", "", 0, None, None, None),
                ("c", 1, "rating", "", 0, "5", None, None)):
        assert fast(row) is row

    def failing(value: Any) -> Any:
        raise ValueError(f"cannot read {value}")

    monkeypatch.setitem(actions.ACTIONS, "guess", replace(actions.ACTIONS["guess"], build=lambda spec, target, env: failing))
    for module in (speedups, None):
        transform = _webform_plan(monkeypatch, module)
        with pytest.raises(ClonekitError) as raised:
            transform(("c", 1, "message", "", 0, "secret-value", None, None))
        assert "sanitizing a row of webform_submission_data failed (ValueError)" in str(raised.value), module
        assert "secret" not in str(raised.value)
        assert raised.value.__cause__ is None
