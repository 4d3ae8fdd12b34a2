"""PHP ``serialize()`` format: parse, rewrite the strings inside, write back with correct lengths.

Drupal (users_data, watchdog variables) and WordPress (usermeta, options) store PHP-serialized
values. Replacing a string inside one changes its byte length, and PHP refuses to unserialize a
value whose ``s:<len>:`` no longer matches, so values are parsed into a small tree and written
back. Everything that is not a string (ints, floats, booleans, references, enums, custom
``C:`` payloads) is kept as its original bytes, so an untouched value round-trips byte for byte.
"""

from __future__ import annotations

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


class _Parser:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, what: str) -> PhpSerializeError:
        return PhpSerializeError(f"not a PHP-serialized value: {what} at byte {self.pos}")

    def expect(self, token: bytes) -> None:
        end = self.pos + len(token)
        if self.data[self.pos : end] != token:
            raise self.fail(f"expected {token.decode()!r}")
        self.pos = end

    def read_until(self, stop: int) -> bytes:
        end = self.data.find(bytes((stop,)), self.pos)
        if end < 0:
            raise self.fail("unterminated token")
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def read_int(self, stop: int) -> int:
        text = self.read_until(stop)
        try:
            return int(text)
        except ValueError:
            raise self.fail("expected an integer") from None

    def read_quoted(self, length: int) -> bytes:
        self.expect(b'"')
        end = self.pos + length
        if end > len(self.data) or length < 0:
            raise self.fail("string length beyond the end")
        out = self.data[self.pos : end]
        self.pos = end
        self.expect(b'"')
        return out

    def value(self, depth: int = 0) -> object:
        if depth > _MAX_DEPTH:
            raise self.fail("nesting too deep")
        data = self.data
        if self.pos + 1 >= len(data):
            raise self.fail("unexpected end")
        tag = data[self.pos]
        start = self.pos
        if tag == 0x4E:  # N;
            self.expect(b"N;")
            return Raw(b"N;")
        if data[self.pos + 1] != 0x3A:  # ':'
            raise self.fail("expected ':'")
        self.pos += 2
        if tag == 0x73:  # s:<len>:"...";
            length = self.read_int(0x3A)
            out = self.read_quoted(length)
            self.expect(b";")
            return out
        if tag in (0x69, 0x62, 0x64, 0x72, 0x52):  # i b d r R
            self.read_until(0x3B)
            return Raw(data[start : self.pos])
        if tag == 0x45:  # E:<len>:"Class:Case";
            length = self.read_int(0x3A)
            self.read_quoted(length)
            self.expect(b";")
            return Raw(data[start : self.pos])
        if tag == 0x61:  # a:<n>:{...}
            count = self.read_int(0x3A)
            return PhpArray(self.items(count, depth))
        if tag == 0x4F:  # O:<len>:"Class":<n>:{...}
            length = self.read_int(0x3A)
            name = self.read_quoted(length)
            self.expect(b":")
            count = self.read_int(0x3A)
            return PhpObject(name, self.items(count, depth))
        if tag == 0x43:  # C:<len>:"Class":<n>:{payload}
            length = self.read_int(0x3A)
            name = self.read_quoted(length)
            self.expect(b":")
            size = self.read_int(0x3A)
            self.expect(b"{")
            payload = data[self.pos : self.pos + size]
            if len(payload) != size:
                raise self.fail("custom payload beyond the end")
            self.pos += size
            self.expect(b"}")
            return PhpCustom(name, payload)
        raise self.fail("unknown type tag")

    def items(self, count: int, depth: int) -> list[tuple[bytes | int | Raw, object]]:
        if count < 0:
            raise self.fail("negative count")
        self.expect(b"{")
        out: list[tuple[bytes | int | Raw, object]] = []
        for _ in range(count):
            key = self.value(depth + 1)
            if isinstance(key, Raw):
                if key.data.startswith(b"i:"):
                    key = int(key.data[2:-1])
                # other raw keys are invalid PHP but kept as they are
            elif not isinstance(key, bytes):
                raise self.fail("array key must be an int or a string")
            out.append((key, self.value(depth + 1)))  # type: ignore[arg-type]
        self.expect(b"}")
        return out


def loads(data: bytes) -> object:
    """Parse one serialized value; the whole input must be consumed."""
    parser = _Parser(data)
    value = parser.value()
    if parser.pos != len(data):
        raise parser.fail("trailing bytes")
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


def rewrite_strings(data: bytes, rewrite: StringRewrite, *, nested: bool = True) -> bytes:
    """Parse ``data``, pass every string value (with its array key) through ``rewrite``, re-serialize.

    Strings that are themselves serialized values (WordPress double-serializes) are rewritten
    recursively when ``nested``. Raises PhpSerializeError when ``data`` does not parse.
    """
    tree = loads(data)
    changed = _walk(tree, None, rewrite, nested)
    if changed is _UNCHANGED:
        return data
    return dumps(changed)


_UNCHANGED = object()


def _walk(value: object, key: Key, rewrite: StringRewrite, nested: bool) -> object:
    """Returns the new value, or _UNCHANGED so untouched values keep their exact bytes."""
    if isinstance(value, bytes):
        if nested and looks_serialized(value):
            try:
                inner = rewrite_strings(value, rewrite, nested=True)
            except PhpSerializeError:
                pass
            else:
                return _UNCHANGED if inner == value else inner
        new = rewrite(key, value)
        return _UNCHANGED if new == value else new
    if isinstance(value, (PhpArray, PhpObject)):
        any_change = False
        items = value.items
        for i, (item_key, item) in enumerate(items):
            walk_key: Key = item_key if isinstance(item_key, (bytes, int)) else None
            new = _walk(item, walk_key, rewrite, nested)
            if new is not _UNCHANGED:
                items[i] = (item_key, new)
                any_change = True
        return value if any_change else _UNCHANGED
    return _UNCHANGED
