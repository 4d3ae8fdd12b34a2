"""The fast PHP-serialized rewriters give the reference walk's bytes, and fail where it fails.

``rewrite_strings`` tries one regex split (``_rewrite_pairs``), then one flat loop
(``_rewrite_flat``), then the recursive reference walk. Each fast walk may hand a value over
(None) but must never return bytes the reference would not: checked on generated values (nested
arrays and objects, double-serialized strings, quotes and braces inside strings, multibyte UTF-8,
binary bytes, custom objects, enums) and on thousands of damaged ones (truncated, lengths off by
one, bytes replaced), with rewrites that grow, shrink and keep strings.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest

from clonekit.sanitize import phpserialize
from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action
from clonekit.sanitize.phpserialize import PhpSerializeError, rewrite_strings, rewrite_strings_reference

SEED = 20261130
WORDS = [b"", b"jane@example.org", b"Aim\xc3\xa9 Peltier", b'say "hi";', b"}{;:", b"s:3:\"abc\";", b"i:5;",
         b"\x00\xff\xfe binary", b"04 32 01 69 97", b"192.0.2.44", b"\xe6\x97\xa5\xe6\x9c\xac", b"a:0:{}", b"N;"]


def _string(value: bytes) -> bytes:
    return b's:%d:"%s";' % (len(value), value)


def _value(rng: random.Random, depth: int) -> bytes:
    pick = rng.random()
    if depth < 4 and pick < 0.25:
        return _array(rng, depth + 1)
    if depth < 4 and pick < 0.30:
        inner = _array(rng, depth + 1)
        return b'O:8:"stdClass":' + inner[2:] if inner.startswith(b"a:") else inner
    if depth < 3 and pick < 0.38:
        return _string(_value(rng, depth + 1))  # WordPress' double serialization
    if pick < 0.70:
        return _string(rng.choice(WORDS) + str(rng.randint(0, 99)).encode() * rng.randint(0, 1))
    return rng.choice([b"N;", b"i:42;", b"i:-7;", b"b:1;", b"b:0;", b"d:0.5;", b"d:-1.0E+25;", b"d:NAN;", b"r:1;",
                       b"R:2;", b'C:11:"ArrayObject":5:{x:i:0}', b'E:7:"Foo:Bar";'])


def _array(rng: random.Random, depth: int) -> bytes:
    count = rng.randint(0, 5)
    entries = []
    for i in range(count):
        key = _string(rng.choice([b"name", b"%email", b"ip", b"\x00*\x00mail", b"k\xc3\xa9y", b'q"uote'])
                      + str(i).encode()) if rng.random() < 0.7 else b"i:%d;" % rng.randint(-3, 9)
        entries.append(key + _value(rng, depth))
    return b"a:%d:{%s}" % (count, b"".join(entries))


def _damaged(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(4)
    if kind == 0 and data:
        return data[: rng.randrange(len(data))]
    if kind == 1:
        digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
        if digits:
            at = rng.choice(digits)
            return data[:at] + str((data[at] - 0x30 + rng.choice([1, 9])) % 10).encode() + data[at + 1 :]
    if kind == 2 and data:
        at = rng.randrange(len(data))
        return data[:at] + bytes([rng.choice(b'":;{}aisN-0\xff')]) + data[at + 1 :]
    return data + rng.choice([b"", b"x", b";", b"}"])


def _rewrites() -> list[Callable[[object, bytes], bytes]]:
    def grow(key: object, value: bytes) -> bytes:
        return value + b"\xc3\xa9!" if isinstance(key, bytes) and b"mail" in key else value

    def shrink(key: object, value: bytes) -> bytes:
        return value[:2]

    def by_hash(key: object, value: bytes) -> bytes:
        return hashlib.sha256(repr(key).encode() + value).hexdigest()[: len(value) % 7].encode()

    return [lambda key, value: value, grow, shrink, by_hash]


def _outcome(walk: Callable[..., bytes], data: bytes, rewrite: Callable[[object, bytes], bytes]) -> tuple[str, bytes | None]:
    try:
        return "ok", walk(data, rewrite)
    except PhpSerializeError:
        return "error", None


def _corpus() -> list[bytes]:
    rng = random.Random(SEED)
    values = [_array(rng, 0) for _ in range(400)] + [_value(rng, 0) for _ in range(200)]
    values += [_damaged(rng, rng.choice(values)) for _ in range(1600)]
    values += [b"", b"a", b"a:", b"a:1:{", b"a:-1:{}", b"a:0:{}", b"a:1:{i:+1;N;}", b"a:1:{i:1;i:+1;}", b'a:1:{s:1:"x";d:{;}',
               b's:5:"h\xc3\xa9l";', b'a:1:{i:0;s:3:"a"b";}', b"b:12;", b"i:-;", b"N;N;", b'O:3:"Foo":-1:{}',
               b"a:1:{i:0;" * 70 + b"N;" + b"}" * 70, b"a:1:{i:0;" * 60 + b"N;" + b"}" * 60]
    return values


@pytest.mark.parametrize("rewrite_index", range(4))
def test_fast_paths_match_the_reference_walk(rewrite_index: int) -> None:
    rewrite = _rewrites()[rewrite_index]
    handed_over = 0
    for data in _corpus():
        reference = _outcome(rewrite_strings_reference, data, rewrite)
        assert _outcome(rewrite_strings, data, rewrite) == reference, data
        for walk in (phpserialize._rewrite_pairs, phpserialize._rewrite_flat):
            out = walk(data, rewrite, True)
            if out is None:
                handed_over += 1
            else:  # a fast walk that answers gives the reference's bytes, and only for what parses
                assert reference == ("ok", out), (walk.__name__, data)
    assert handed_over  # the damaged values reach the reference walk


def test_an_untouched_value_is_returned_as_is() -> None:
    for data in _corpus():
        try:
            out = rewrite_strings(data, lambda key, value: value)
        except PhpSerializeError:
            continue
        assert out is data


def test_the_php_action_gives_the_same_output_through_either_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the `php` action as the presets use it: NULL, text, bytes, invalid serialized data
    (scrubbed as text), nested values; the same output with only the reference walk."""
    env = ActionEnv(keyed=Keyed(b"test-secret"), keep_values=frozenset({"staff@example.org"}))
    spec = ActionSpec("php", {"keys": {"*mail*": ActionSpec("email"), "ip": ActionSpec("ip"), "*name*": ActionSpec("username")},
                              "values": "scrub"})
    values: list[object] = [None, 42, "", "not serialized jane@example.org 04 32 01 69 97",
                            'a:2:{s:4:"mail";s:17:"staff@example.org";s:2:"ip";s:10:"192.0.2.44";}',
                            'a:1:{s:4:"name";s:6:"Aimé";}', b'a:1:{s:4:"name";s:6:"Aim\xc3\xa9";}',
                            b'a:1:{s:4:"note";s:4:"\xff\xfe\x00;";}', *_corpus()[:600]]
    fast = build_action(spec, Target("binary"), env)
    fast_out = [fast(v) for v in values]
    monkeypatch.setattr(phpserialize, "rewrite_strings", rewrite_strings_reference)
    reference = build_action(spec, Target("binary"), env)
    assert [reference(v) for v in values] == fast_out
    assert str(fast_out[4]).startswith('a:2:{s:4:"mail";s:17:"staff@example.org";s:2:"ip";')  # staff kept
