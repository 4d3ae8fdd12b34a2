"""PHP ``serialize()`` format: parse, rewrite the strings inside, write back with correct lengths.

Drupal (users_data, watchdog variables) and WordPress (usermeta, options) store PHP-serialized
values. Replacing a string inside one changes its byte length, and PHP refuses to unserialize a
value whose ``s:<len>:`` no longer matches. ``rewrite_strings`` walks a value once and writes
each changed string back with its new byte length; everything else (ints, floats, booleans,
references, enums, custom ``C:`` payloads, unchanged strings) is copied as its original bytes,
so an untouched value comes out byte for byte. ``loads``/``dumps`` give the same as a tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from .._compiled import speedups

# The compiled walk (clonekit/_speedups.c), or None: built without a C compiler, or turned off.
compiled = speedups

# Key of the array entry that holds a string (bytes for string keys, int for integer keys),
# or None for a top-level string.
Key = bytes | int | None
StringRewrite = Callable[[Key, bytes], bytes]
BytesFn = Callable[[bytes], bytes]


@dataclass(frozen=True)
class RewriteByKey:
    """A ``StringRewrite`` that is one function per key: ``fns.get(key) or fn_for(key)``, called
    with the value (``fn_for`` may remember its answer in ``fns``). ``keeps_plain`` (or None) is a
    function that returns an ASCII value holding no ``@``, ``:`` nor digit unchanged (scrub):
    the compiled walk does not call it for such values. Calling the object is the rewrite itself."""

    fns: dict[Hashable, BytesFn]
    fn_for: Callable[[Key], BytesFn]
    keeps_plain: BytesFn | None = None

    def __call__(self, key: Key, value: bytes) -> bytes:
        fn = self.fns.get(key)
        return (fn or self.fn_for(key))(value)


class PhpSerializeError(ValueError):
    """The bytes are not a PHP-serialized value (never carries the value itself)."""


@dataclass
class Raw:
    """A scalar kept exactly as serialized: N; b:..; i:..; d:..; r:..; R:..; E:..;"""

    data: bytes


@dataclass
class PhpArray:
    items: list[tuple[bytes | int | Raw, object]]


@dataclass
class PhpObject:
    class_name: bytes
    items: list[tuple[bytes | int | Raw, object]]


@dataclass
class PhpCustom:
    """``C:`` objects serialize themselves; their payload is opaque and kept as is."""

    class_name: bytes
    payload: bytes


_MAX_DEPTH = 64
_STRING = re.compile(rb's:(\d+):"')
_SCALAR = re.compile(rb"N;|i:[+-]?\d+;|b:[01];|d:[^;{}]*;|[rR]:\d+;")
_ARRAY = re.compile(rb"a:(\d+):\{")
_OBJECT = re.compile(rb'O:(\d+):"')
_CUSTOM = re.compile(rb'C:(\d+):"')
_ENUM = re.compile(rb'E:(\d+):"')
_COUNT = re.compile(rb":(\d+):\{")
_INT_KEY = re.compile(rb"i:([+-]?\d+);")
_SCALAR_TAGS = frozenset(b"idbrRN")
_string_head = _STRING.match


def _fail(what: str, pos: int) -> PhpSerializeError:
    return PhpSerializeError(f"not a PHP-serialized value: {what} at byte {pos}")


def _quoted(data: bytes, match: re.Match[bytes] | None, pos: int, tail: bytes) -> tuple[bytes, int]:
    """The ``<len>:"...`` body after a header match, followed by ``tail``."""
    if match is None:
        raise _fail("bad header", pos)
    start = match.end()
    end = start + int(match.group(1))
    if data[end : end + len(tail)] != tail:
        raise _fail("string length does not match", pos)
    return data[start:end], end + len(tail)


def _items(data: bytes, pos: int, count: int, depth: int) -> tuple[list[tuple[bytes | int | Raw, object]], int]:
    items: list[tuple[bytes | int | Raw, object]] = []
    for _ in range(count):
        head = data[pos : pos + 1]
        key: bytes | int | Raw
        if head == b"i":
            match = _INT_KEY.match(data, pos)
            if match is None:
                raise _fail("bad integer key", pos)
            key, pos = int(match.group(1)), match.end()
        elif head == b"s":
            key, pos = _quoted(data, _STRING.match(data, pos), pos, b'";')
        else:
            raise _fail("array key must be an int or a string", pos)
        value, pos = _value(data, pos, depth + 1)
        items.append((key, value))
    if data[pos : pos + 1] != b"}":
        raise _fail("expected '}'", pos)
    return items, pos + 1


def _value(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    if depth > _MAX_DEPTH:
        raise _fail("nesting too deep", pos)
    head = data[pos : pos + 1]
    if head == b"s":
        return _quoted(data, _STRING.match(data, pos), pos, b'";')
    if head == b"a":
        match = _ARRAY.match(data, pos)
        if match is None:
            raise _fail("bad array header", pos)
        items, pos = _items(data, match.end(), int(match.group(1)), depth)
        return PhpArray(items), pos
    if head == b"O":
        name, pos = _quoted(data, _OBJECT.match(data, pos), pos, b'"')
        match = _COUNT.match(data, pos)
        if match is None:
            raise _fail("bad object header", pos)
        items, pos = _items(data, match.end(), int(match.group(1)), depth)
        return PhpObject(name, items), pos
    if head == b"C":
        name, pos = _quoted(data, _CUSTOM.match(data, pos), pos, b'"')
        match = _COUNT.match(data, pos)
        if match is None:
            raise _fail("bad custom object header", pos)
        payload_end = match.end() + int(match.group(1))
        if data[payload_end : payload_end + 1] != b"}":
            raise _fail("custom payload length does not match", pos)
        return PhpCustom(name, data[match.end() : payload_end]), payload_end + 1
    if head == b"E":
        start = pos
        _, pos = _quoted(data, _ENUM.match(data, pos), pos, b'";')
        return Raw(data[start:pos]), pos
    match = _SCALAR.match(data, pos)
    if match is None:
        raise _fail("unknown value", pos)
    return Raw(match.group()), match.end()


def loads(data: bytes) -> object:
    """Parse one serialized value; the whole input must be consumed."""
    value, pos = _value(data, 0, 0)
    if pos != len(data):
        raise _fail("trailing bytes", pos)
    return value


def _dump_key(key: bytes | int | Raw, out: list[bytes]) -> None:
    if isinstance(key, int):
        out.append(b"i:%d;" % key)
    elif isinstance(key, Raw):
        out.append(key.data)
    else:
        out.append(b's:%d:"%s";' % (len(key), key))


def _dump(value: object, out: list[bytes]) -> None:
    if isinstance(value, bytes):
        out.append(b's:%d:"%s";' % (len(value), value))
    elif isinstance(value, Raw):
        out.append(value.data)
    elif isinstance(value, PhpArray):
        out.append(b"a:%d:{" % len(value.items))
        for key, item in value.items:
            _dump_key(key, out)
            _dump(item, out)
        out.append(b"}")
    elif isinstance(value, PhpObject):
        out.append(b'O:%d:"%s":%d:{' % (len(value.class_name), value.class_name, len(value.items)))
        for key, item in value.items:
            _dump_key(key, out)
            _dump(item, out)
        out.append(b"}")
    elif isinstance(value, PhpCustom):
        out.append(b'C:%d:"%s":%d:{%s}' % (len(value.class_name), value.class_name, len(value.payload), value.payload))
    else:
        raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(value: object) -> bytes:
    out: list[bytes] = []
    _dump(value, out)
    return b"".join(out)


def looks_serialized(data: bytes) -> bool:
    """Cheap pre-check before a parse: PHP values start with a type tag and end with ; or }."""
    if len(data) < 2:
        return False
    head = data[:2]
    return head in (b"a:", b"O:", b"s:", b"i:", b"b:", b"d:", b"N;", b"C:", b"E:") and data[-1:] in (b";", b"}")


def _int_at(data: bytes, start: int, stop: int) -> int:
    text = data[start:stop]
    if not text or not (text.isdigit() or (text[:1] == b"-" and text[1:].isdigit())):
        raise _fail("expected an integer", start)
    return int(text)


def rewrite_strings(data: bytes, rewrite: StringRewrite, *, nested: bool = True) -> bytes:
    """Pass every string value of a serialized value (with its array key) through ``rewrite``.

    Untouched bytes are copied as slices and only a changed string is written again with its new
    byte length (counts of arrays do not change). Strings that are themselves serialized values
    (WordPress double-serializes) are rewritten recursively when ``nested``. Returns ``data``
    itself when nothing changed; raises PhpSerializeError when ``data`` does not parse.

    Three walks, fastest first, each handing over what it does not handle: one array of scalars
    and strings without a double quote (``_rewrite_pairs``: split by one regex), the common
    shapes (strings, numbers, booleans, NULL, references, nested arrays and objects) in one loop
    (``_rewrite_flat``), and the reference walk over every form, which alone decides what parses
    and what fails. All give the same bytes (tests/sanitize/test_phpserialize_fast.py). Before
    them, the compiled walk when it was built (``compiled``): the first two walks' work in C, the
    same hand-over rule (tests/sanitize/test_phpserialize_compiled.py)."""
    if compiled is not None:
        if rewrite.__class__ is RewriteByKey:
            by_key: RewriteByKey = rewrite  # type: ignore[assignment]
            done = compiled.rewrite_strings_by_key(data, by_key.fns, by_key.fn_for, by_key.keeps_plain, nested)
        else:
            done = compiled.rewrite_strings(data, rewrite, nested)
        if done is not None:
            return done
    return rewrite_strings_python(data, rewrite, nested=nested)


def rewrite_strings_python(data: bytes, rewrite: StringRewrite, *, nested: bool = True) -> bytes:
    """``rewrite_strings`` without the compiled walk: the regex split, the flat loop, the reference."""
    out = _rewrite_pairs(data, rewrite, nested)
    if out is None:
        out = _rewrite_flat(data, rewrite, nested)
    if out is None:
        return rewrite_strings_reference(data, rewrite, nested=nested)
    return out


def _serialized_inside(value: bytes, rewrite: StringRewrite, walk: Callable[..., bytes]) -> bytes | None:
    """A string that is itself a serialized value (WordPress double-serializes), rewritten by
    ``walk``; None when it is not one."""
    if len(value) > 3 and looks_serialized(value):
        try:
            return walk(value, rewrite, nested=True)
        except PhpSerializeError:
            return None
    return None


_ARRAY_HEAD = re.compile(rb"a:(\d+):\{")
# One entry of an array whose strings hold no double quote: key (string or integer), then value
# (string, integer, boolean, NULL, float). Each alternative starts with its own tag and
# ``[^"]*`` cannot run past a quote, so a text has one way to split into entries.
_PAIR = (rb'(?:s:(\d+):"([^"]*)"|i:(-?\d+));'
         rb'(?:s:(\d+):"([^"]*)";|(N;|i:-?\d+;|b:\d+;|d:[^;"{}]*;))')
_PAIR_RE = re.compile(_PAIR)


def _rewrite_pairs(data: bytes, rewrite: StringRewrite, nested: bool) -> bytes | None:
    """One array of scalars and quote-free strings (Drupal's watchdog variables and users.data,
    most WordPress meta): one regex checks its shape and splits it into entries, Python only
    checks the string lengths and calls ``rewrite``; None for anything else (or a length that
    does not match: the loop or the reference walk decides)."""
    head = _ARRAY_HEAD.match(data)
    if head is None or data[-1:] != b"}":
        return None
    entries = _PAIR_RE.findall(data, head.end(), len(data) - 1)
    if len(entries) != int(head.group(1)):
        return None
    pieces: list[bytes] | None = None
    # Each entry's size follows from its groups: the entries fill the array exactly when their
    # sizes add up to it (findall skips what does not match; the split is then not the parse).
    pos, flushed = head.end(), 0
    for key_len, key_text, int_key, value_len, value, scalar in entries:
        if key_len:
            if len(key_text) != int(key_len):
                return None
            key: bytes | int = key_text
            pos += 6 + len(key_len) + len(key_text)
        else:
            key = int(int_key)
            pos += 3 + len(int_key)
        if not value_len:
            pos += len(scalar)
            continue
        if len(value) != int(value_len):
            return None
        new = _serialized_inside(value, rewrite, rewrite_strings) if nested and value[1:2] == b":" else None
        if new is None:
            new = rewrite(key, value)
        end = pos + 6 + len(value_len) + len(value)
        if new != value:
            if pieces is None:
                pieces = []
            pieces.append(data[flushed:pos])
            pieces.append(b's:%d:"%s";' % (len(new), new))
            flushed = end
        pos = end
    if pos != len(data) - 1:
        return None
    if pieces is None:
        return data
    pieces.append(data[flushed:])
    return b"".join(pieces)
_OBJECT_COUNT = re.compile(rb'":(\d+):\{')
_FLAT_SCALAR = re.compile(rb"N;|i:-?\d+;|b:\d+;|d:[^;]*;|[rR]:\d+;")
_FLAT_INT_KEY = re.compile(rb"i:(-?\d+);")


def _rewrite_flat(data: bytes, rewrite: StringRewrite, nested: bool) -> bytes | None:
    """``rewrite_strings`` in one loop with a stack of entry counts, no call per value; None when
    ``data`` holds a form it leaves to the reference walk (custom objects, enums, negative counts)
    or does not parse. Accepts exactly what the reference accepts for the forms it handles."""
    size = len(data)
    string_head, scalar, int_key = _string_head, _FLAT_SCALAR.match, _FLAT_INT_KEY.match
    pieces: list[bytes] | None = None
    flushed = 0
    left: list[int] = []  # entries still to read in each open array or object, innermost last
    key: bytes | int | None = None
    want_key = False  # inside an array, after its header or a value: a key or its end comes next
    pos = 0
    while True:
        tag = data[pos] if pos < size else 0
        if want_key:
            if left[-1] == 0:  # every entry read: the array ends, and was a value of its parent
                if tag != 0x7D:
                    return None
                pos += 1
                left.pop()
                if not left:
                    break
                left[-1] -= 1
                continue
            if tag == 0x69:
                found = int_key(data, pos)
                if found is None:
                    return None
                key, pos, want_key = int(found.group(1)), found.end(), False
                continue
            if tag != 0x73:
                return None
        if tag == 0x73:  # s:<len>:"...";
            head = string_head(data, pos)
            if head is None:
                return None
            start = head.end()
            end = start + int(head.group(1))
            if data[end : end + 2] != b'";':
                return None
            value = data[start:end]
            if want_key:
                key, pos, want_key = value, end + 2, False
                continue
            new = _serialized_inside(value, rewrite, rewrite_strings) if nested and value[1:2] == b":" else None
            if new is None:
                new = rewrite(key, value)
            if new != value:
                if pieces is None:
                    pieces = []
                pieces.append(data[flushed:pos])
                pieces.append(b's:%d:"%s";' % (len(new), new))
                flushed = end + 2
            pos = end + 2
        elif tag == 0x61 or tag == 0x4F:  # a:<n>:{   O:<len>:"Class":<n>:{
            if len(left) >= _MAX_DEPTH:
                return None
            if tag == 0x61:
                head = _ARRAY_HEAD.match(data, pos)
            else:
                name = _OBJECT.match(data, pos)
                if name is None:
                    return None
                head = _OBJECT_COUNT.match(data, name.end() + int(name.group(1)))
            if head is None:
                return None
            left.append(int(head.group(1)))
            pos, want_key = head.end(), True
            continue
        else:
            found = scalar(data, pos)
            if found is None:
                return None
            pos = found.end()
        if not left:  # the top-level value ended
            break
        left[-1] -= 1
        want_key = True
    if pos != size:
        return None
    if pieces is None:
        return data
    pieces.append(data[flushed:])
    return b"".join(pieces)


def rewrite_strings_reference(data: bytes, rewrite: StringRewrite, *, nested: bool = True) -> bytes:
    """``rewrite_strings`` as a recursive walk over every form PHP writes: the reference the flat
    loop is checked against, and the judge of what does not parse."""
    pieces: list[bytes] = []
    flushed = [0]
    pos = _rewrite_value(data, 0, None, rewrite, nested, pieces, flushed, 0)
    if pos != len(data):
        raise _fail("trailing bytes", pos)
    if not pieces:
        return data
    pieces.append(data[flushed[0] :])
    return b"".join(pieces)


def _rewrite_value(
    data: bytes, pos: int, key: bytes | int | None, rewrite: StringRewrite, nested: bool,
    pieces: list[bytes], flushed: list[int], depth: int,
) -> int:
    """Rewrite the value at ``pos``; returns the position after it."""
    tag = data[pos] if pos < len(data) else 0
    if tag == 0x73:  # s:<len>:"...";
        head = _string_head(data, pos)
        if head is None:
            raise _fail("bad string header", pos)
        start = head.end()
        end = start + int(head.group(1))
        if data[end : end + 2] != b'";' or end > len(data):
            raise _fail("string length does not match", pos)
        value = data[start:end]
        new = _serialized_inside(value, rewrite, rewrite_strings_reference) if nested and value[1:2] == b":" else None
        if new is None:
            new = rewrite(key, value)
        if new != value:
            pieces.append(data[flushed[0] : pos])
            pieces.append(b's:%d:"%s";' % (len(new), new))
            flushed[0] = end + 2
        return end + 2
    if tag == 0x61 or tag == 0x4F:  # a:<n>:{ ... }   O:<len>:"Class":<n>:{ ... }
        if depth >= _MAX_DEPTH:
            raise _fail("nesting too deep", pos)
        if tag == 0x4F:
            _, count_at = _quoted(data, _OBJECT.match(data, pos), pos, b'":')
        elif data[pos + 1 : pos + 2] == b":":
            count_at = pos + 2
        else:
            raise _fail("bad array header", pos)
        colon = data.find(b":", count_at)
        if colon < 0 or data[colon + 1 : colon + 2] != b"{":
            raise _fail("bad array header", pos)
        pos = colon + 2
        for _ in range(_int_at(data, count_at, colon)):
            kind = data[pos] if pos < len(data) else 0
            if kind == 0x73:
                head = _string_head(data, pos)
                if head is None:
                    raise _fail("bad string key", pos)
                start = head.end()
                end = start + int(head.group(1))
                if data[end : end + 2] != b'";':
                    raise _fail("string length does not match", pos)
                item_key: bytes | int = data[start:end]
                pos = end + 2
            elif kind == 0x69:
                semi = data.find(b";", pos)
                if semi < 0 or data[pos + 1 : pos + 2] != b":":
                    raise _fail("bad integer key", pos)
                item_key = _int_at(data, pos + 2, semi)
                pos = semi + 1
            else:
                raise _fail("array key must be an int or a string", pos)
            pos = _rewrite_value(data, pos, item_key, rewrite, nested, pieces, flushed, depth + 1)
        if data[pos : pos + 1] != b"}":
            raise _fail("expected '}'", pos)
        return pos + 1
    if tag in _SCALAR_TAGS:
        semi = data.find(b";", pos)
        if semi < 0 or (tag == 0x4E and semi != pos + 1) or (tag != 0x4E and data[pos + 1] != 0x3A):
            raise _fail("bad scalar", pos)
        if tag == 0x69:
            _int_at(data, pos + 2, semi)
        elif tag != 0x64 and tag != 0x4E and not data[pos + 2 : semi].isdigit():
            raise _fail("bad scalar", pos)
        return semi + 1
    if tag == 0x43 or tag == 0x45:  # C: custom payloads and E: enums are kept as they are
        _, pos = _value(data, pos, 0)
        return pos
    raise _fail("unknown value", pos)
