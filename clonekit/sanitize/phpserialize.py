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
from collections.abc import Callable
from dataclasses import dataclass

# Key of the array entry that holds a string (bytes for string keys, int for integer keys),
# or None for a top-level string.
Key = bytes | int | None
StringRewrite = Callable[[Key, bytes], bytes]


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

    One streaming pass, no tree: untouched bytes are copied as slices and only a changed string
    is written again with its new byte length (counts of arrays do not change). Strings that are
    themselves serialized values (WordPress double-serializes) are rewritten recursively when
    ``nested``. Returns ``data`` itself when nothing changed; raises PhpSerializeError when
    ``data`` does not parse."""
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
        new = None
        if nested and len(value) > 3 and value[1:2] == b":" and looks_serialized(value):
            try:
                new = rewrite_strings(value, rewrite, nested=True)
            except PhpSerializeError:
                new = None
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
