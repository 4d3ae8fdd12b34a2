"""Every action: deterministic under one secret, different under another, within VARCHAR limits,
unique where the column is, in the expected format. Pure logic: no service needed."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re

import pytest

from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action
from clonekit.sanitize.detect import EMAIL_RE

ENV = ActionEnv(Keyed(b"secret-one"), dev_password="devpass", keep_values=frozenset({"admin@agency.example", "admin"}))
OTHER_ENV = ActionEnv(Keyed(b"secret-two"))
TEXT = Target(kind="text", max_chars=255)

EMAILS = [f"user{i}@client{i % 7}.example.org" for i in range(20000)]


def act(name: str, target: Target = TEXT, env: ActionEnv = ENV, **options):  # noqa: ANN003, ANN201
    return build_action(ActionSpec(name, options), target, env)


def test_email_is_deterministic_keyed_realistic_and_unique() -> None:
    email = act("email")
    out = [email(e) for e in EMAILS]
    assert len(set(out)) == len(EMAILS)  # unique by construction (60-bit tag)
    assert all(EMAIL_RE.fullmatch(o) and o.endswith("@example.com") for o in out)
    assert [act("email")(e) for e in EMAILS[:50]] == out[:50]  # a new plan: same outputs
    assert act("email", env=OTHER_ENV)(EMAILS[0]) != out[0]  # another secret: other outputs
    assert email("  USER0@Client0.Example.org ") == out[0]  # one person, however it was typed
    assert re.fullmatch(r"[a-z]+\.[a-z]+\.[0-9a-f]{15}@example\.com", out[0])


def test_email_domain_options_and_staff() -> None:
    assert act("email", domain="keep")("Jane@Client.Example").endswith("@client.example")
    assert act("email", domain="dev.example.net")("jane@x.org").endswith("@dev.example.net")
    assert act("email")("admin@agency.example") == "admin@agency.example"  # keep_accounts
    assert act("email")("") == ""


@pytest.mark.parametrize("limit", [20, 32, 40, 60])
def test_varchar_limits_keep_uniqueness(limit: int) -> None:
    target = Target(kind="text", max_chars=limit, unique=True)
    for name in ("email", "username", "name", "redact", "url", "hash", "address", "phone", "first_name"):
        fn = act(name, target)
        out = [fn(e) for e in EMAILS[:3000]]
        assert all(len(o) <= limit for o in out), name
        assert len(set(out)) == len(out), name


def test_bytes_values_stay_bytes() -> None:
    out = act("email", Target(kind="binary", max_chars=64))(b"jane@example.org")
    assert isinstance(out, bytes) and out.endswith(b"@example.com") and len(out) <= 64


def test_names_usernames_addresses() -> None:
    assert re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", act("name")("Thaddeus Wolfeschlegel"))
    assert re.fullmatch(r"[A-Z][a-z]+", act("first_name")("Thaddeus"))
    assert re.fullmatch(r"[A-Z][a-z]+", act("last_name")("Wolfeschlegel"))
    assert re.fullmatch(r"[a-z]+_[0-9a-f]{15}", act("username")("twolfe"))
    assert act("username")("admin") == "admin"  # keep_accounts
    assert re.fullmatch(r"\d+ [A-Z][a-z]+ [A-Za-z]+", act("address")("12 rue de la Paix"))
    assert act("name")("Jane Doe") == act("name")("jane doe ")


def test_phone_keeps_the_format() -> None:
    phone = act("phone")
    for original in ("+33 6 12 34 56 78", "(415) 555-0199", "0612345678"):
        out = phone(original)
        assert out != original and len(out) == len(original)
        assert re.sub(r"\d", "9", out) == re.sub(r"\d", "9", original)
        assert re.search(r"\d", out).group() == re.search(r"\d", original).group()  # country/trunk digit kept
    as_int = act("phone", Target(kind="int"))(33612345678)
    assert isinstance(as_int, int) and len(str(as_int)) == 11 and as_int != 33612345678


def test_ip_uses_documentation_ranges() -> None:
    docs = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
    ip = act("ip")
    for original in ("81.56.201.7", "10.0.0.1", "2a01:cb00::42", "::1", "not-an-ip.example.org"):
        out = ipaddress.ip_address(ip(original))
        assert any(out in net for net in docs), original
    packed = act("ip", Target(kind="binary"))(ipaddress.ip_address("2a01:cb00::42").packed)
    assert ipaddress.IPv6Address(packed) in docs[3]
    as_int = act("ip", Target(kind="int"))(int(ipaddress.IPv4Address("81.56.201.7")))
    assert any(ipaddress.IPv4Address(as_int) in net for net in docs[:3])


def test_url_text_and_scrub() -> None:
    assert act("url")("http://thaddeus.example.net/blog").startswith("http://www.example.com/")
    assert act("url", host="dev.example")("https://x.org").startswith("https://dev.example/")
    original = "Dear team, I am Thaddeus and my details are below." * 3
    replaced = act("text")(original)
    assert len(replaced) == len(original) and "Thaddeus" not in replaced
    assert act("text", Target(kind="text", max_chars=10))(original) == replaced[:10].capitalize()
    message = "Mail jane.doe@gmail.com or call +33 6 12 34 56 78 from 81.56.201.7 on 2024-01-15 12:00:00, order 42."
    scrubbed = act("scrub")(message)
    assert "jane.doe@gmail.com" not in scrubbed and "12 34 56 78" not in scrubbed and "81.56.201.7" not in scrubbed
    assert scrubbed.startswith("Mail ") and scrubbed.endswith("on 2024-01-15 12:00:00, order 42.")
    assert act("text", mode="scrub")(message) == scrubbed
    assert act("scrub")("Contact admin@agency.example") == "Contact admin@agency.example"
    v6 = act("scrub")("Login from 2a01:cb00:1234::42 at 12:00:00, mac 00:1a:2b")
    assert "2a01:cb00:1234::42" not in v6 and "from 2001:db8:" in v6 and v6.endswith("at 12:00:00, mac 00:1a:2b")


def test_set_null_hash_redact() -> None:
    assert act("set", value="x")("anything") == "x"
    assert act("set", value="")(None) == ""
    assert act("null")("x") is None
    hashed = act("hash")("jane")
    assert re.fullmatch(r"[0-9a-f]{64}", hashed) and hashed == act("hash")("jane")
    assert len(act("hash", length=16)("jane")) == 16
    assert act("hash", Target(kind="text", max_chars=10))("jane") == hashed[:10]
    assert isinstance(act("hash", Target(kind="int"))(123456), int)
    assert act("redact")("secret stuff") == "redacted"
    assert act("redact", Target(kind="text", max_chars=30, unique=True))("a") != act("redact", Target(kind="text", max_chars=30, unique=True))("b")


def test_date_jitter() -> None:
    date = act("date", jitter_days=10)
    born = dt.datetime(1980, 5, 17, 8, 30)
    out = date(born)
    assert out != born and abs(out - born) <= dt.timedelta(days=10) and out == date(born)
    assert abs(act("date", jitter_days=10)(dt.date(1980, 5, 17)) - dt.date(1980, 5, 17)) <= dt.timedelta(days=10)
    ts = act("date", Target(kind="int"), jitter_days=1)(1_700_000_000)
    assert ts != 1_700_000_000 and abs(ts - 1_700_000_000) <= 86400
    text = act("date", jitter_days=30)("1980-05-17")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) and text != "1980-05-17"
    assert act("date", jitter_days=0)(born) == born


def test_json_paths() -> None:
    doc = {"email": "jane@x.org", "profile": {"phone": "+33 6 12 34 56 78", "city": "Paris"},
           "contacts": [{"email": "a@b.org"}, {"email": "c@d.org"}], "deep": {"x": {"email": "e@f.org"}}}
    fn = act("json", Target(kind="text"), paths={"$.profile.phone": ActionSpec("phone"), "$.contacts[*].email": ActionSpec("email"),
                            "$..email": ActionSpec("email")})
    out = json.loads(fn(json.dumps(doc)))
    assert out["profile"]["city"] == "Paris" and out["profile"]["phone"] != doc["profile"]["phone"]
    assert all(c["email"].endswith("@example.com") for c in out["contacts"])
    assert out["email"].endswith("@example.com") and out["deep"]["x"]["email"].endswith("@example.com")
    untouched = '{"a": 1,   "b": "x"}'
    assert act("json", paths={"$.email": ActionSpec("email")})(untouched) == untouched  # exact bytes kept
    assert "jane@x.org" not in act("json", paths={"$.email": ActionSpec("email")})("not json jane@x.org")


def test_password_formats() -> None:
    from clonekit.sanitize.passwords import check_password

    fn = act("password")
    drupal, wordpress = fn("$S$Dxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"), fn("$P$Bxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
    assert drupal.startswith("$S$") and len(drupal) == 55 and check_password("devpass", drupal)
    assert wordpress.startswith("$P$B") and len(wordpress) == 34 and check_password("devpass", wordpress)
    assert fn("$wp$2y$10$abc").startswith("$P$")  # WordPress 6.8 bcrypt: phpass still accepted
    bcrypt_hash = fn("$2y$10$" + "a" * 53)
    assert bcrypt_hash.startswith("$2y$") and check_password("devpass", bcrypt_hash)
    assert fn("") == "" and fn(None) is None
    assert act("password", format="drupal")("plain").startswith("$S$")
    assert act("password", format="plain")("x") == "devpass"
    assert fn("$S$Dyyy") == drupal  # one hash per format: the same every row and every night
