"""The compiled pseudonyms and scrub's gate (clonekit/_speedups.c) give the Python path's values.

``email``, ``username``, ``ip`` (IPv4 form) and ``url`` of an ASCII value are built in C; ``scrub`` on a
text that opens none of its gates (an '@', an IPv6 or IPv4 shape, eight digits) returns without
entering Python. Each value function is built twice, with the compiled module and without it,
and both must give the same value for every input: hypothesis text over an alphabet chosen to hit
the edges (whitespace str.strip removes, upper case, colons, dots, ASCII and Unicode digits,
'@', non-ASCII letters, lone surrogates), bytes, and other types, with and without a column limit,
staff values, and inside PHP-serialized values. For ``scrub`` the gate itself is also checked
against the Python ``scrub``: a text the gate keeps must be one scrub returns unchanged (a hole
there would leave personal data raw; two such holes were found in an earlier pre-check:
digit-free IPv6 and Unicode-digit IPv4).

These tests import the compiled module directly, so they also run (and compare) under
``CLONEKIT_PURE_PYTHON=1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clonekit.sanitize import actions, phpserialize
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action, scrub_builder

from .test_phpserialize_compiled import speedups

pytestmark = pytest.mark.skipif(speedups is None, reason="the compiled module did not build "
                                "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")

SECRET = b"pseudonym-compiled-test-secret"
STAFF = frozenset({"admin@example.org", "webmaster", "editor.one", "strasse", "zoë@exämple.de"})
# the edges: whitespace str.strip removes (\x1c-\x1f too), case, separators, digits of other
# scripts (re's \d), '@', accents, a lone surrogate (invalid UTF-8 decoded with surrogateescape)
ALPHABET = (" \t\n\x0b\x0c\r\x1c\x1f\xa0AZaz.-_+@:%[]<>\"'/0123456789"
            "\u0661\u0662\u0663\u0664\uff11\u00e9\u00c9\u0130\u00df\udc80")


def _fn(monkeypatch: pytest.MonkeyPatch, module: Any, action: str, options: dict, target: Target,
        keep: frozenset[str] = STAFF) -> Callable[[Any], Any]:
    monkeypatch.setattr(actions, "compiled", module)
    monkeypatch.setattr(phpserialize, "compiled", module)
    env = ActionEnv(keyed=Keyed(SECRET), keep_values=keep)
    return build_action(ActionSpec(action, options), target, env)


def _pair(monkeypatch: pytest.MonkeyPatch, action: str, options: dict, target: Target,
          keep: frozenset[str] = STAFF) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    fast = _fn(monkeypatch, speedups, action, options, target, keep)
    python = _fn(monkeypatch, None, action, options, target, keep)
    return fast, python


ACTIONS = [
    ("email", {}),
    ("email", {"domain": "mail.example.net"}),
    ("email", {"domain": "keep"}),
    ("username", {}),
    ("ip", {}),
    ("url", {}),
    ("url", {"host": "preview.example.net:8080"}),
    ("scrub", {}),
]
TARGETS = [
    Target(kind="text"),
    Target(kind="text", max_chars=12),
    Target(kind="text", max_chars=64, unique=True),
    Target(kind="text", max_chars=255),
    Target(kind="binary", max_chars=40),
]
VALUES = [
    "", " ", "jane@example.org", "  Jane.Doe@Example.ORG\n", "ADMIN@example.org", " webmaster\x1c", "Editor.One",
    "10.0.0.1", " 192.168.1.20 ", "2001:db8::1", "dead:beef::cafe", "fe80::abcd%eth0", "\u0661.\u0662.\u0663.\u0664",
    "user name", "x" * 600, "Zoë@exämple.de", "Straße", " STRASSE ", "\u00a0İstanbul\u2003", "ǅemal", "\udc80", "\udc80abc", "a" * 300 + "@example.org",
    "call +33 6 12 34 56 78 now", "from 1.2.3.4.", "v1.2.3.4.5", "ids 1234 5678", "12:30:45",
    "1:2:3:4:5:6:7:8", "a:b:c:d:e:f", "Jane Doe <jane@example.org>", "https://www.example.net/node/4405",
    "HTTP://Example.ORG/x", " http://example.org", "http:/x", "http://", "https://a", "ftp://x", "http\u0130://x",
    "https://www.exämple.de/", "x" * 300 + ".example.org",
]


@pytest.mark.parametrize("action,options", ACTIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_compiled_value_functions_match_python_on_listed_values(monkeypatch: pytest.MonkeyPatch, action: str,
                                                                options: dict, target: Target) -> None:
    fast, python = _pair(monkeypatch, action, options, target)
    for value in [*VALUES, *(v.encode("utf-8", "surrogateescape") for v in VALUES), 42, None]:
        if value is None:
            continue
        assert fast(value) == python(value), value
        assert type(fast(value)) is type(python(value))


def test_the_compiled_path_is_taken_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a silent fallback everywhere: the plain text columns get the C functions."""
    text = Target(kind="text", max_chars=255)
    for action, options in [("email", {}), ("username", {}), ("ip", {}), ("url", {}), ("scrub", {})]:
        fn = _fn(monkeypatch, speedups, action, options, text)
        assert getattr(fn, "func", None) in (speedups.pseudonym, speedups.scrub_gate), action
    for action, options, target in [("email", {"domain": "keep"}, text), ("ip", {}, Target(kind="text", unique=True)),
                                    ("email", {}, Target(kind="binary"))]:
        fn = _fn(monkeypatch, speedups, action, options, target)
        assert getattr(fn, "func", None) is not speedups.pseudonym, (action, options, target)


@pytest.mark.parametrize("action,options", ACTIONS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(alphabet=ALPHABET, max_size=40), limit=st.sampled_from([None, 1, 8, 20, 31, 40, 255]))
def test_compiled_value_functions_match_python_on_generated_text(monkeypatch: pytest.MonkeyPatch, action: str,
                                                                 options: dict, value: str, limit: int | None) -> None:
    fast, python = _pair(monkeypatch, action, options, Target(kind="text", max_chars=limit))
    assert fast(value) == python(value)
    raw = value.encode("utf-8", "surrogateescape")
    assert fast(raw) == python(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.text(alphabet=ALPHABET, max_size=30), min_size=1, max_size=4))
def test_compiled_pseudonyms_match_python_inside_php_values(monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    options = {"keys": {"*mail*": ActionSpec("email"), "name": ActionSpec("username"), "ip": ActionSpec("ip"),
                        "*host*": ActionSpec("ip")}, "values": "scrub"}
    fast, python = _pair(monkeypatch, "php", options, Target(kind="binary"))
    keys = [b"mail", b"name", b"ip", b"hostname", b"note"]
    items = b"".join(b's:%d:"%s";s:%d:"%s";' % (len(keys[i % 5]), keys[i % 5], len(raw), raw)
                     for i, raw in enumerate(n.encode("utf-8", "surrogateescape") for n in names))
    data = b"a:%d:{%s}" % (len(names), items)
    assert fast(data) == python(data)


# --- scrub's gate against scrub itself -------------------------------------------------------

ADVERSARIAL = [
    "dead:beef::cafe", "fe80::abcd", "::1", "::", "1:2:3:4:5:6:7:8", "a:b:c:d:e:f:a:b", "::ffff:192.0.2.1",
    "\u0661.\u0662.\u0663.\u0664", "\u0661\u0660.\u0660.\u0660.\u0661", "10.0.0.1", "x1.2.3.4y", "1.22.333.4",
    "9.9999.9.9", "a@b.co", "@", "12345678", "1234-5678", "+1 555 123 4567", "(0)1 23 45 67 89", "0590529992",
    "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "1.2.3", "v1.2.3.4.5", "1..2.3.4", "3.14.15.92.65",
    "Jane Doe <jane@example.org>", "see http://[2001:db8::1]:443/", "time 12:30:45 and 1.5.2024",
]


_SCRUB = scrub_builder(ActionEnv(keyed=Keyed(SECRET)))


def test_the_gate_never_keeps_what_scrub_changes_on_adversarial_text() -> None:
    scrub = _SCRUB
    changed = 0
    for text in ADVERSARIAL:
        for variant in (text, f"before {text} after", f"{text}.", f"\u00e9{text}"):
            out = scrub(variant, None)
            changed += out != variant
            if speedups.scrub_keeps_text(variant):
                assert out == variant, variant
            raw = variant.encode()
            if speedups.scrub_keeps_text(raw):
                assert out == variant, raw
    assert changed > 40  # the list does reach scrub's replacements


@settings(max_examples=2000, deadline=None)
@given(text=st.text(alphabet=ALPHABET + "fedcbaABCDEF:::...", max_size=60))
@example(text="dead:beef::cafe")
@example(text="\u0661.\u0662.\u0663.\u0664")
def test_the_gate_never_keeps_what_scrub_changes_on_generated_text(text: str) -> None:
    scrub = _SCRUB
    out = scrub(text, None)
    if speedups.scrub_keeps_text(text):
        assert out == text
    if speedups.scrub_keeps_text(text.encode("utf-8", "surrogateescape")):
        assert out == text


def test_the_gate_keeps_the_common_plain_text() -> None:
    """What the gate is for: URLs, sentences and short numbers skip Python."""
    for text in ["https://www.example.net/node/4405", "Session opened for %name.", "/node/1706",
                 "Fröhlich tranquille cesser long", "Ends. With. Dots. 42", "page 12 of 345"]:
        assert speedups.scrub_keeps_text(text) and speedups.scrub_keeps_text(text.encode()), text


# --- the row function and the php action's entry, compiled ----------------------------------


def _plan(monkeypatch: pytest.MonkeyPatch, module: Any, tables: dict) -> Any:
    from clonekit.config import SanitizeConfig
    from clonekit.sanitize import build_planner
    from clonekit.schema import Column, Table

    monkeypatch.setattr(actions, "compiled", module)
    monkeypatch.setattr(phpserialize, "compiled", module)
    monkeypatch.setenv("CK_TEST_PSEUDONYM_SECRET", "pseudonym-compiled-test-secret")
    table = Table("t", (Column("id", "int", "int(11)", unique=True), Column("mail", "varchar", "varchar(100)"),
                        Column("note", "text", "text"), Column("data", "blob", "blob", binary=True),
                        Column("host", "varchar", "varchar(45)")), primary_key=("id",))
    config = SanitizeConfig(tables=tables, secret_env="CK_TEST_PSEUDONYM_SECRET", strict=False)
    return build_planner(config).plan([table])["t"].transform


PLAIN_RULES = {"t": {"columns": {"mail": "email", "note": "scrub", "host": "ip",
                                 "data": {"php": {"keys": {"*mail*": "email"}, "values": "scrub"}}}}}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mail=st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=30)),
       note=st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=50)),
       host=st.one_of(st.none(), st.sampled_from(["10.0.0.1", " 2001:DB8::1 ", "", "x", "1.2.3.4 "])),
       data=st.one_of(st.none(), st.sampled_from([b"", b"not serialized 10.0.0.1", b'a:1:{s:4:"mail";s:5:"a@b.c";}',
                                                   b'a:1:{s:4:"note";s:3:"1:2";}', b'C:3:"Foo":0:{}', b"a:1:{s:4:\"mail\""])))
def test_the_compiled_row_function_matches_python(monkeypatch: pytest.MonkeyPatch, mail: str | None, note: str | None,
                                                  host: str | None, data: bytes | None) -> None:
    fast = _plan(monkeypatch, speedups, PLAIN_RULES)
    python = _plan(monkeypatch, None, PLAIN_RULES)
    assert getattr(fast, "func", None) is speedups.transform_plain
    row = (7, mail, note, data, host)
    assert fast(row) == python(row)
    if mail is note is host is data is None:  # nothing to change: the same tuple (the capture writes the server's line)
        assert fast(row) is row


def test_a_failing_action_raises_the_planners_message_without_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled row loop keeps the Python loop's error: the action's own exception (which may
    quote the value) is neither shown nor chained."""
    from dataclasses import replace

    from clonekit.errors import ClonekitError

    def failing(value: Any) -> Any:
        raise ValueError(f"cannot read {value}")

    monkeypatch.setitem(actions.ACTIONS, "url", replace(actions.ACTIONS["url"], build=lambda spec, target, env: failing))
    for module in (speedups, None):
        transform = _plan(monkeypatch, module, {"t": {"columns": {"mail": "email", "host": "url"}}})
        with pytest.raises(ClonekitError) as raised:
            transform((1, "jane@example.org", None, None, "secret-host"))
        assert "sanitizing a row of t failed (ValueError)" in str(raised.value), module
        assert "secret" not in str(raised.value)
        assert raised.value.__cause__ is None and raised.value.__suppress_context__ | (raised.value.__context__ is None)


def test_the_compiled_row_function_serves_tables_without_staff_or_null_writing_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """`when` columns are compiled too (tests/sanitize/test_guess_compiled.py); an action that
    writes over NULL outside a `when` (set) keeps the Python loop."""
    conditional = {"t": {"columns": {"mail": [{"when": "id = 1", "use": "email"}], "note": "scrub"}}}
    assert getattr(_plan(monkeypatch, speedups, conditional), "func", None) is speedups.transform_plain
    assert getattr(_plan(monkeypatch, speedups, {"t": {"columns": {"mail": {"set": "x"}}}}), "func", None) \
        is not speedups.transform_plain
