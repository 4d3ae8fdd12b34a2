"""The compiled PHP walk (clonekit/_speedups.c) gives the reference walk's bytes.

It is optional (setup.py builds it when a C compiler is there), so two things are checked: that it
was built on a machine that can build it (a silent fallback would leave CI testing only Python),
and that whenever it answers, the answer is the reference walk's, for the same rewrites: on the
generated and damaged values of test_phpserialize_fast.py, on values hypothesis builds and
damages, with a plain rewrite and with the per-key form the ``php`` action uses (including the
scrub values it does not call). Where it is unsure it hands the value over (None), never answers
for a value the reference refuses, and never leaks a reference (counts checked).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clonekit.sanitize import phpserialize
from clonekit.sanitize.iptext import _V4_HINT
from clonekit.sanitize.phpserialize import PhpSerializeError, RewriteByKey, rewrite_strings_reference

from .test_phpserialize_fast import _corpus, _outcome, _rewrites, _string


def _can_build() -> bool:
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(compiler) is not None and headers.exists()


def _speedups():  # noqa: ANN202
    try:
        return importlib.import_module("clonekit._speedups")
    except ImportError:
        return None


speedups = _speedups()
needs_compiled = pytest.mark.skipif(speedups is None and not _can_build(), reason="no C compiler on this machine")


def test_the_compiled_walk_is_built_where_a_compiler_is() -> None:
    if not _can_build():
        assert speedups is None or phpserialize.compiled is not None
        return
    assert speedups is not None, (
        "clonekit._speedups did not build although a C compiler and Python's headers are here: "
        "run `make install` (pip install -e .) and read the build output")
    assert phpserialize.compiled is speedups or os.environ.get("CLONEKIT_PURE_PYTHON")


def _scrub_keeps(value: bytes) -> bool:
    """scrub's gates (actions.scrub_builder, iptext.replace_ips), written again from the Python:
    a value opening none of them comes back from scrub as it is. Three dots and a non-ASCII byte
    count as open (the compiled walk does not decode to look for Unicode digits)."""
    text = value.decode("utf-8", "surrogateescape")
    if "@" in text or len(re.findall("[0-9]", text)) >= 8 or "::" in text or text.count(":") >= 6:
        return False
    return text.count(".") < 3 or (value.isascii() and _V4_HINT.search(text) is None)


def _scrub_like(value: bytes) -> bytes:
    """Keeps a value scrub cannot change (``_scrub_keeps``); changes the others."""
    if _scrub_keeps(value):
        return value
    return value[::-1] + b"#"


def _by_key(rewrite: Callable[[object, bytes], bytes]) -> RewriteByKey:
    fns: dict = {}

    def fn_for(key: object) -> Callable[[bytes], bytes]:
        if key == b"note":
            fn = _scrub_like
        else:
            def fn(value: bytes) -> bytes:
                return rewrite(key, value)
        fns[key] = fn
        return fn

    return RewriteByKey(fns, fn_for, _scrub_like)


def _check(data: bytes, rewrite: Callable[[object, bytes], bytes]) -> bool:
    """True when the compiled walk answered (and then with the reference's bytes)."""
    assert speedups is not None
    reference = _outcome(rewrite_strings_reference, data, rewrite)
    if isinstance(rewrite, RewriteByKey):
        out = speedups.rewrite_strings_by_key(data, rewrite.fns, rewrite.fn_for, rewrite.keeps_plain, True)
    else:
        out = speedups.rewrite_strings(data, rewrite, True)
    if out is None:
        return False
    assert reference == ("ok", out), data
    if out == data:
        assert out is data  # untouched values come back as the same object
    return True


@needs_compiled
@pytest.mark.parametrize("rewrite_index", range(4))
@pytest.mark.parametrize("per_key", [False, True], ids=["rewrite", "per-key"])
def test_compiled_walk_matches_the_reference(rewrite_index: int, per_key: bool) -> None:
    rewrite = _rewrites()[rewrite_index]
    if per_key:
        rewrite = _by_key(rewrite)
    answered = handed_over = 0
    corpus = _corpus()
    for data in corpus:
        if _check(data, rewrite):
            answered += 1
        else:
            handed_over += 1
        assert _outcome(phpserialize.rewrite_strings, data, rewrite) == _outcome(rewrite_strings_reference, data, rewrite)
    # it answers for the valid values it handles, hands over the damaged and the custom ones
    assert answered > len(corpus) // 5 and handed_over > len(corpus) // 5


_keys = st.one_of(st.integers(-10**19, 10**19).map(lambda i: b"i:%d;" % i),
                  st.binary(max_size=12).map(_string),
                  st.sampled_from([b"s:4:\"mail\";", b"s:4:\"note\";", b"s:2:\"ip\";"]))
_scalars = st.sampled_from([b"N;", b"i:0;", b"i:-12;", b"i:99999999999999999999999;", b"b:1;", b"d:0.5;", b"d:;",
                            b"r:1;", b"R:22;", b'E:7:"Foo:Bar";', b'C:11:"ArrayObject":5:{x:i:0}'])
_texts = st.one_of(st.binary(max_size=20), st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
                   st.sampled_from([b"jane@example.org", b"04 32 01 69 97", b'"; }', b"a:1:{i:0;N;}"]))


def _serialized_values() -> st.SearchStrategy[bytes]:
    def extend(inner: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        entries = st.lists(st.tuples(_keys, inner), max_size=5)
        array = entries.map(lambda es: b"a:%d:{%s}" % (len(es), b"".join(k + v for k, v in es)))
        obj = st.tuples(st.binary(max_size=8), entries).map(
            lambda t: b'O:%d:"%s":%d:{%s}' % (len(t[0]), t[0], len(t[1]), b"".join(k + v for k, v in t[1])))
        return st.one_of(array, obj, inner.map(_string))  # a value serialized again inside a string

    return st.recursive(st.one_of(_scalars, _texts.map(_string)), extend, max_leaves=20)


def _damage(data: bytes, at: int, kind: int, byte: int) -> bytes:
    if not data:
        return data
    at %= len(data)
    if kind == 0:
        return data[:at]
    if kind == 1:
        return data[:at] + bytes([byte]) + data[at + 1 :]
    if kind == 2:
        return data[:at] + bytes([byte]) + data[at:]
    return data


@needs_compiled
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_serialized_values(), at=st.integers(0, 10**6), kind=st.integers(0, 5),
       byte=st.sampled_from(b'":;{}aisNObdrRCE-0123456789\x00\xff'), rewrite_index=st.integers(0, 3),
       per_key=st.booleans())
def test_compiled_walk_matches_the_reference_on_generated_values(data: bytes, at: int, kind: int, byte: int,
                                                                  rewrite_index: int, per_key: bool) -> None:
    rewrite = _rewrites()[rewrite_index]
    if per_key:
        rewrite = _by_key(rewrite)
    _check(_damage(data, at, kind, byte), rewrite)


@needs_compiled
def test_compiled_walk_hands_over_what_it_does_not_handle() -> None:
    assert speedups is not None
    keep = _rewrites()[0]
    for data in [b'C:11:"ArrayObject":5:{x:i:0}', b'E:7:"Foo:Bar";', b"a:-1:{}", b"a:1:{i:+1;N;}",
                 b"a:1:{i:0;" * 65 + b"N;" + b"}" * 65, b"a:1:{i:" + b"9" * 30 + b";N;}", b"a:1:{N;N;}", b"a:1:{i:0;N;",
                 b'a:1:{i:0;s:3:"ab";}', b'a:1:{i:0;s:3:"abc"}', b"", b"x"]:
        assert speedups.rewrite_strings(data, keep, True) is None, data
    # a rewrite that returns something other than bytes: the Python walks decide (and fail loudly)
    assert speedups.rewrite_strings(b's:1:"x";', lambda key, value: value.decode(), True) is None
    with pytest.raises(TypeError):
        phpserialize.rewrite_strings(b's:1:"x";', lambda key, value: value.decode())  # type: ignore[arg-type, return-value]
    # not bytes: handed over
    assert speedups.rewrite_strings(bytearray(b"N;"), keep, True) is None


@needs_compiled
def test_compiled_walk_passes_keys_and_raises_what_the_rewrite_raises() -> None:
    assert speedups is not None
    seen: list[object] = []

    def record(key: object, value: bytes) -> bytes:
        seen.append(key)
        return value

    data = b'a:3:{s:4:"mail";s:1:"x";i:-7;s:1:"y";i:3;a:1:{s:1:"k";s:12:"s:5:"inner";";}}'
    assert speedups.rewrite_strings(data, record, True) is data
    assert seen == [b"mail", -7, None]  # the string inside the serialized string is a top-level value
    assert speedups.rewrite_strings(b's:1:"x";', record, True) == b's:1:"x";' and seen[-1] is None

    def boom(key: object, value: bytes) -> bytes:
        raise ValueError("no value in this message")

    with pytest.raises(ValueError, match="no value"):
        speedups.rewrite_strings(data, boom, True)
    with pytest.raises(PhpSerializeError):
        phpserialize.rewrite_strings(b"a:1:{", keep_all)


def keep_all(key: object, value: bytes) -> bytes:
    return value


@needs_compiled
def test_compiled_walk_keeps_reference_counts() -> None:
    """No reference leaked or lost per string (a leak in C would grow these counts)."""
    assert speedups is not None
    constant = b"0123456789"
    fns: dict = {}

    def fn(value: bytes) -> bytes:
        return constant

    def fn_for(key: object) -> Callable[[bytes], bytes]:
        fns[key] = fn
        return fn

    data = b'a:3:{s:1:"a";s:2:"xy";i:1;s:1:"z";i:2;s:4:"jane";}'
    speedups.rewrite_strings_by_key(data, fns, fn_for, None, True)
    before = (sys.getrefcount(constant), sys.getrefcount(fn), sys.getrefcount(data), sys.getrefcount(fn_for))
    for _ in range(1000):
        out = speedups.rewrite_strings_by_key(data, fns, fn_for, None, True)
        assert out == b'a:3:{s:1:"a";s:10:"0123456789";i:1;s:10:"0123456789";i:2;s:10:"0123456789";}'
        speedups.rewrite_strings(data, lambda key, value: value, True)
        with pytest.raises(ZeroDivisionError):
            speedups.rewrite_strings(data, lambda key, value: 1 // 0, True)
    del out
    assert (sys.getrefcount(constant), sys.getrefcount(fn), sys.getrefcount(data), sys.getrefcount(fn_for)) == before


@pytest.mark.parametrize("code", ["compiled", "python"])
def test_an_ipv6_address_without_digits_is_scrubbed_inside_php_values(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``scrub`` is skipped only for values it cannot change: an IPv6 address may hold no decimal
    digit (``dead:beef::cafe``), so a colon sends the value to scrub (the skip once let it through);
    scrub's IPv4 pattern reads any Unicode digit (``١.٢.٣.٤``), so a non-ASCII byte does too."""
    from clonekit.sanitize.actions import ActionEnv, ActionSpec, Keyed, Target, build_action

    if code == "python":
        monkeypatch.setattr(phpserialize, "compiled", None)
    php = build_action(ActionSpec("php", {"values": "scrub"}), Target("binary"), ActionEnv(keyed=Keyed(b"s")))
    for address in (b"dead:beef::cafe", b"fe80::abcd", b"::ffff:c000:280"):
        value = b'a:2:{s:4:"host";s:%d:"from %s";s:4:"note";s:5:"plain";}' % (len(address) + 5, address)
        out = php(value)
        assert address not in out and b"2001:db8:" in out and b's:5:"plain"' in out
    address = "١.٢.٣.٤".encode()
    out = php(b'a:1:{s:4:"host";s:%d:"from %s";}' % (len(address) + 5, address))
    assert address not in out
    assert any(b"from %s." % net.encode() in out for net in ("192.0.2", "198.51.100", "203.0.113"))  # RFC 5737
