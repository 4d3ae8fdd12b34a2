"""The php action's compiled walk with its key cache gives the values it gives without it.

``php_value`` resolves each string key once per action (``key_cache``) and then runs, on a
value's bytes and without a Python object, scrub's gate (``values: scrub``) and the compiled
pseudonyms (email, username, ip, url keys). One value function, and so one cache, handles thousands
of serialized values here, as in a capture: keys seen before and new ones, keys too long to cache,
more distinct keys than the cache holds, integer keys, serialized strings inside values, staff
values, empty, non-ASCII, IPv6 and over-long values. Each value is compared with the same walk
without the cache and with the pure-Python walks.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from typing import Any

import pytest

from clonekit.sanitize import actions, phpserialize
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action

from .test_phpserialize_compiled import speedups

pytestmark = pytest.mark.skipif(speedups is None, reason="the compiled module did not build "
                                "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")

STAFF = frozenset({"admin@example.org", "webmaster"})
OPTIONS = {"keys": {"*mail*": ActionSpec("email"), "?name": ActionSpec("username"), "ip": ActionSpec("ip"),
                    "*host*": ActionSpec("ip"), "site": ActionSpec("url"), "who": ActionSpec("name")},
           "values": "scrub"}
KEYS = [b"mail", b"%name", b"@name", b"ip", b"hostname", b"site", b"who", b"note", b"%message", b"@uri",
        b"m" * 64 + b"mail", b"x" * 65, b""] + [b"k%d" % i for i in range(90)]  # more keys than the cache holds
VALUES = [b"", b"jane.doe", b" Jane.Doe@Example.ORG ", b"admin@example.org", b"WEBMASTER", b"10.1.2.3", b"dead:beef::1",
          b"https://example.org/a", b"Zo\xc3\xab M\xc3\xbcller", b"plain words", b"call 0612345678", b"tel 061234",
          b"\xff\xfe invalid", b"x" * 600, b"a.b.c.d", b"1.2.3.4.5", b"l\xc3\xa9a@exa.mple", b"\xd9\xa1\xd9\xa2 digits"]


def _string(raw: bytes) -> bytes:
    return b's:%d:"%s";' % (len(raw), raw)


def _value(rng: random.Random, depth: int = 0) -> bytes:
    items = []
    count = rng.randint(0, 5)
    for _ in range(count):
        roll = rng.random()
        key = b"i:%d;" % rng.randint(-3, 3) if roll < 0.1 else _string(rng.choice(KEYS))
        roll = rng.random()
        if roll < 0.1 and depth < 2:
            value = _string(_value(rng, depth + 1))  # serialized inside a string (WordPress)
        elif roll < 0.15 and depth < 2:
            value = _value(rng, depth + 1)
        elif roll < 0.2:
            value = b"i:%d;" % rng.randint(0, 99)
        else:
            value = _string(rng.choice(VALUES))
        items.append(key + value)
    return b"a:%d:{%s}" % (count, b"".join(items))


def _functions(monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[Any], Any], ...]:
    monkeypatch.setattr(actions, "compiled", speedups)
    monkeypatch.setattr(phpserialize, "compiled", speedups)
    env = ActionEnv(keyed=Keyed(b"php-key-cache-secret"), keep_values=STAFF)
    cached = build_action(ActionSpec("php", OPTIONS), Target(kind="binary"), env)
    assert isinstance(cached, functools.partial) and cached.func is speedups.php_value and len(cached.args[0]) == 4
    uncached = functools.partial(speedups.php_value, cached.args[0][:3], cached.args[1])
    monkeypatch.setattr(actions, "compiled", None)
    monkeypatch.setattr(phpserialize, "compiled", None)
    python = build_action(ActionSpec("php", OPTIONS), Target(kind="binary"), env)
    return cached, uncached, python


def test_the_key_cache_changes_no_value(monkeypatch: pytest.MonkeyPatch) -> None:
    cached, uncached, python = _functions(monkeypatch)
    rng = random.Random(20261201)
    changed = 0
    for _ in range(4000):
        data = _value(rng)
        out = cached(data)
        assert out == uncached(data) == python(data), data
        changed += out != data
    assert changed > 1000  # the values did go through the actions


def test_watchdog_variables_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shape the drupal preset meets most: the same four placeholders, row after row."""
    cached, uncached, python = _functions(monkeypatch)
    for i in range(300):
        data = (b"a:4:{" + _string(b"%name") + _string(b"user.%d" % i) + _string(b"%email")
                + _string(b"user%d@example.org" % i) + _string(b"@uri") + _string(b"/node/%d" % i)
                + _string(b"%message") + _string(b"Caf\xc3\xa9 %d" % (i * 123457)) + b"}")
        assert cached(data) == uncached(data) == python(data)


def test_a_key_cache_is_a_capsule_php_value_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    cached, _, _ = _functions(monkeypatch)
    fns, fn_for, keeps_plain, _ = cached.args[0]
    with pytest.raises(ValueError):
        speedups.php_value((fns, fn_for, keeps_plain, object()), cached.args[1], b"a:0:{}")
    assert speedups.php_value((fns, fn_for, keeps_plain, speedups.key_cache()), cached.args[1], b"a:0:{}") == b"a:0:{}"
