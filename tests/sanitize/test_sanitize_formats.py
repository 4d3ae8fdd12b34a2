"""PHP serialization, password hashes against known vectors, the when-language, rule shapes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clonekit.sanitize import phpserialize, rules_digest
from clonekit.sanitize import when as when_lang
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action
from clonekit.sanitize.passwords import check_password, drupal_hash, phpass_hash
from clonekit.sanitize.rules import check_table_rules

from .conftest import sanitize_config

# --- PHP serialize --------------------------------------------------------------------------

WORDPRESS_VALUE = (
    b'a:4:{s:5:"email";s:16:"jane@example.org";s:4:"name";s:11:"Zo\xc3\xab Dupont";'
    b'i:7;a:2:{s:5:"phone";s:17:"+33 6 12 34 56 78";s:4:"flag";b:1;}'
    b's:3:"obj";O:8:"stdClass":2:{s:4:"mail";s:9:"a@b.co.uk";s:10:"\x00*\x00private";d:0.5;}}'
)


def test_php_round_trip_is_byte_exact() -> None:
    for value in (WORDPRESS_VALUE, b"i:1;", b"N;", b'a:0:{}', b'C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}', b"b:0;",
                  b'a:1:{i:0;r:1;}', b'E:11:"Suit:Hearts";', b"d:-1.5E+25;"):
        assert phpserialize.dumps(phpserialize.loads(value)) == value
        assert phpserialize.rewrite_strings(value, lambda key, raw: raw) == value


def test_php_rewrite_changes_lengths_correctly() -> None:
    seen = []

    def rewrite(key, raw: bytes) -> bytes:  # noqa: ANN001
        seen.append(key)
        return raw + "—ünïcode".encode() if key in (b"name", b"mail") else raw

    out = phpserialize.rewrite_strings(WORDPRESS_VALUE, rewrite)
    tree = phpserialize.loads(out)  # parses again: every s:<len> matches its bytes
    assert tree.items[1][1] == "Zoë Dupont—ünïcode".encode()
    assert b's:%d:"Zo\xc3\xab Dupont' % len("Zoë Dupont—ünïcode".encode()) in out
    assert {b"email", b"name", b"phone", b"flag", b"mail"} - {k for k in seen} == {b"flag"}


def test_php_nested_serialized_strings_are_rewritten() -> None:
    inner = b'a:1:{s:5:"email";s:8:"x@y.org1";}'
    outer = b's:%d:"%s";' % (len(inner), inner)
    out = phpserialize.rewrite_strings(outer, lambda key, raw: b"REPLACED" if key == b"email" else raw)
    assert phpserialize.loads(phpserialize.loads(out)) .items[0][1] == b"REPLACED"


@pytest.mark.parametrize("bad", [b"", b"s:5:\"abc\";", b"a:1:{s:1:\"a\";}", b"x:1;", b"i:1", b'a:1:{i:0;i:1;}junk', b"s:-1:\"\";"])
def test_php_rejects_broken_values(bad: bytes) -> None:
    with pytest.raises(phpserialize.PhpSerializeError):
        phpserialize.loads(bad)


@given(st.recursive(
    st.one_of(st.binary(max_size=20), st.integers(), st.booleans(), st.none()),
    lambda children: st.dictionaries(st.one_of(st.binary(max_size=8), st.integers(0, 100)), children, max_size=4),
    max_leaves=15,
))
def test_php_round_trip_property(value) -> None:  # noqa: ANN001
    def encode(v, grow=b""):  # noqa: ANN001, ANN202 - a tiny reference serializer, as PHP writes it
        if v is None:
            return b"N;"
        if isinstance(v, bool):
            return b"b:%d;" % v
        if isinstance(v, int):
            return b"i:%d;" % v
        if isinstance(v, bytes):
            return b's:%d:"%s";' % (len(v) + len(grow), v + grow)
        return b"a:%d:{%s}" % (len(v), b"".join(encode(k) + encode(x, grow) for k, x in v.items()))

    data = encode(value)
    assert phpserialize.dumps(phpserialize.loads(data)) == data
    assert phpserialize.rewrite_strings(data, lambda key, raw: raw, nested=False) is data
    grown = phpserialize.rewrite_strings(data, lambda key, raw: raw + b"\xc3\xa9", nested=False)
    assert grown == encode(value, b"\xc3\xa9")  # keys untouched, every value string longer by 2 bytes


def test_keyed_is_hmac_sha256() -> None:
    import hmac

    for secret in (b"", b"short", b"k" * 64, b"long" * 40):
        assert Keyed(secret).digest(b"email\0", "Zoë@x.org") == hmac.digest(secret, "email\0Zoë@x.org".encode(), "sha256")


def test_php_action_sanitizes_by_key_and_by_value() -> None:
    env = ActionEnv(Keyed(b"k"))
    fn = build_action(ActionSpec("php", {"keys": {"name": ActionSpec("name")}, "values": "scrub"}), Target(kind="binary"), env)
    out = fn(WORDPRESS_VALUE)
    assert b"jane@example.org" not in out and b"Zo\xc3\xab Dupont" not in out and b"12 34 56 78" not in out
    assert b"a@b.co.uk" not in out and b"d:0.5;" in out and b"b:1;" in out
    phpserialize.loads(out)
    assert fn(b"i:1;") == b"i:1;"
    assert b"jane@example.org" not in fn(b"broken jane@example.org")  # not serialized: scrubbed as text
    text_fn = build_action(ActionSpec("php", {}), Target(kind="text"), env)
    assert isinstance(text_fn(WORDPRESS_VALUE.decode()), str)


# --- passwords ------------------------------------------------------------------------------

KNOWN_VECTORS = [
    ("test12345", "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"),  # phpass' own test.php
    ("DifficultPassword123", "$S$5FIcboyzv1ZD/OZDb4w/4HSlnsPlwbr/PWLWrHPWrJp8eXOQQaWJ"),  # Drupal 7
    ("password1234", "$S$DeIZ1KTE.VzRvudZ5.xgOakipuMFrVyPmRdWTjAdYieWj27NMglI"),
    ("password", "$S$DI3icqig3jyMv7n./ZLdJaV9H0s90uyRiJjeSnFPK32zo4Q.jj.8"),
]


@pytest.mark.parametrize(("password", "stored"), KNOWN_VECTORS)
def test_hashes_match_known_vectors(password: str, stored: str) -> None:
    assert check_password(password, stored)
    assert not check_password(password + "x", stored)


def test_our_hashes_verify_and_are_deterministic() -> None:
    assert phpass_hash("clonekit", b"saltsa") == phpass_hash("clonekit", b"saltsa")
    assert check_password("clonekit", phpass_hash("clonekit", b"saltsa"))
    assert phpass_hash("clonekit", b"saltsa").startswith("$P$B")  # WordPress' cost
    assert check_password("clonekit", drupal_hash("clonekit", b"saltsa", 10))


# --- when -----------------------------------------------------------------------------------

INDEX = {"name": 0, "meta_key": 1, "n": 2, "other": 3}


def ev(expr: str, row: tuple):  # noqa: ANN201
    return when_lang.compile_predicate(when_lang.parse(expr), INDEX)(row)


@pytest.mark.parametrize(
    ("expr", "row", "expected"),
    [
        ("name IN ('email','phone')", ("email", None, 1, None), True),
        ("name IN ('email','phone')", ("EMAIL", None, 1, None), True),  # _ci collation
        ("name NOT IN ('email','phone')", ("fax", None, 1, None), True),
        ("meta_key = 'billing_phone'", (None, "billing_phone", 1, None), True),
        ("meta_key LIKE 'billing_%'", (None, "billing_city", 1, None), True),
        ("meta_key LIKE 'billing\\_%'", (None, "billingXcity", 1, None), False),
        ("meta_key NOT LIKE '%phone'", (None, "a_phone", 1, None), False),
        ("n > 5 AND n <= 10", (None, None, 7, None), True),
        ("n = '7'", (None, None, 7, None), True),
        ("n <> 7 OR other IS NULL", (None, None, 7, None), True),
        ("NOT (name = 'x')", ("y", None, 1, None), True),
        ("other IS NOT NULL", (None, None, 1, None), False),
        ("name = 'x'", (None, None, 1, None), None),  # NULL: unknown, does not match
        ("`meta_key` = 'it''s'", (None, "it's", 1, None), True),
        ("meta_key = 'a' OR (meta_key = 'b' AND n = 1)", (None, "b", 1, None), True),
        ("name = other", ("a", None, 1, "A"), True),
    ],
)
def test_when_expressions(expr: str, row: tuple, expected) -> None:  # noqa: ANN001
    assert ev(expr, row) is expected


@pytest.mark.parametrize("bad", ["", "name", "name ==", "name = 'x' AND", "__import__('os')", "name IN ()", "name = \"x\"", "a = 1; DROP", "(a = 1"])
def test_when_rejects_what_it_does_not_know(bad: str) -> None:
    with pytest.raises(when_lang.WhenSyntaxError):
        when_lang.parse(bad)


# --- rule shapes (config load) ----------------------------------------------------------------

def test_rule_shape_problems_name_the_key() -> None:
    problems = check_table_rules(
        {
            "users": {"columns": {"mail": "emial", "pass": {"set": [1]}, "x": {"date": {"jitter": 3}},
                                  "v": [{"use": "redact"}, {"when": "a = 1", "use": "email"}], "w": {"when": "a =", "use": "email"}}},
            "logs": {"rows": "id > 1; DELETE FROM logs"},
            "cache_*": {"rows": "none", "colums": {}},
            "bad": "drop",
        },
        "sanitize.tables",
    )
    assert problems == [
        "sanitize.tables.users.columns.mail: expected an action (address, date, email, first_name, guess, hash, ip, json, keep, "
        "last_name, name, null, password, phone, php, redact, scrub, set, text, url, username), got 'emial' (did you mean 'email'?)",
        "sanitize.tables.users.columns.pass.set.value: expected a string, a number or null, got a list",
        "sanitize.tables.users.columns.x.date.jitter: unknown option for date; allowed: jitter_days",
        "sanitize.tables.users.columns.v[0]: expected a `when:` condition (only the last entry of the list may apply to every row), got a mapping",
        "sanitize.tables.users.columns.w.when: expected a condition such as \"name IN ('email','phone')\" (unexpected end of the condition), got 'a ='",
        "sanitize.tables.logs.rows: expected one SQL condition without ';' or comments, got 'id > 1; DELETE FROM logs'",
        "sanitize.tables['cache_*'].colums: unknown key (did you mean 'columns'?); allowed: columns, rows, accounts",
        "sanitize.tables.bad: expected a mapping with columns and/or rows, got 'drop'",
    ]


def test_good_rules_have_no_problems() -> None:
    assert check_table_rules(
        {
            "users_field_data": {"columns": {"mail": "email", "name": {"use": "username"}, "pass": {"set": ""},
                                             "init": {"email": {"domain": "keep"}}, "data": {"json": {"$.phone": "phone"}},
                                             "extra": {"php": {"keys": {"*mail*": "email"}}}}},
            "webform_submission_data": {"columns": {"value": {"when": "name IN ('email','phone')", "use": "redact"}}},
            "cache_*": {"rows": "none"},
            "watchdog": {"rows": "wid > (SELECT MAX(wid) - 10000 FROM watchdog)"},
            "sessions": "none",
        },
        "sanitize.tables",
    ) == []


def test_use_with_nested_actions_and_extra_options() -> None:
    from clonekit.sanitize.rules import parse_table_rules

    (rule,) = parse_table_rules({"wp_usermeta": {"columns": {"meta_value": [
        {"when": "meta_key = 'x'", "use": {"php": {"keys": {"*mail*": "email"}}}, "values": "keep"},
        {"use": {"json": {"$.phone": "phone"}}},
    ]}}})
    php, json_rule = rule.columns["meta_value"]
    assert php.action.name == "php" and php.action.options["values"] == "keep"
    assert php.action.options["keys"]["*mail*"].name == "email"
    assert json_rule.action.options["paths"]["$.phone"].name == "phone"


def test_config_loader_reports_rule_problems(tmp_path) -> None:  # noqa: ANN001
    from clonekit.config import load_config
    from clonekit.errors import ConfigError

    path = tmp_path / "clonekit.yml"
    path.write_text(
        "project: news\nsources:\n  prod:\n    database: {name: drupal}\n"
        "sanitize:\n  tables:\n    users_field_data:\n      columns: {mail: emial}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert any(p.startswith("sanitize.tables.users_field_data.columns.mail: expected an action") for p in err.value.problems)


def test_rules_digest_is_stable_and_secret_free(monkeypatch) -> None:  # noqa: ANN001
    cfg = sanitize_config(preset="drupal", tables={"a": {"rows": "none"}, "b": {"columns": {"x": "email"}}})
    same = sanitize_config(preset="drupal", tables={"b": {"columns": {"x": "email"}}, "a": {"rows": "none"}})
    assert rules_digest(cfg) == rules_digest(same)
    assert rules_digest(cfg) != rules_digest(sanitize_config(preset="wordpress", tables=cfg.tables))
    monkeypatch.setenv("CLONEKIT_TEST_SANITIZE_SECRET", "another-secret")
    assert rules_digest(cfg) == rules_digest(same)
    assert "another-secret" not in rules_digest(cfg)


@given(st.binary(max_size=60) | st.sampled_from([b'a:1:{s:1:"a";', b"a:99999999999:{", b'O:1:"x":1:{i:0;a:1:{', b"s:9:\"\";", b"i:-;"]))
def test_php_rewrite_fails_only_with_its_own_error(data: bytes) -> None:
    try:
        phpserialize.rewrite_strings(data, lambda key, raw: raw + b"!")
    except phpserialize.PhpSerializeError:
        pass


@given(st.text(max_size=40))
def test_when_parse_fails_only_with_its_own_error(text: str) -> None:
    try:
        node = when_lang.parse(text)
    except when_lang.WhenSyntaxError:
        return
    when_lang.compile_predicate(node, {c.lower(): 0 for c in when_lang.columns_of(node)})(("x",))
