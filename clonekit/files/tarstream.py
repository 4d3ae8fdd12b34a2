"""A minimal reader for the POSIX (pax/ustar) tar stream GNU tar writes: names as raw bytes.

Python's tarfile costs ~75 µs per member in stream mode (measured); an uploads tree has tens of
thousands of small files, so this reader does only what the capture needs: headers (checksum
verified), pax ``path``/``size``/``linkpath`` records, and each member's data read straight
from the underlying buffered stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import SourceError

BLOCK = 512
REGULAR = (b"0", b"\0", b"7")
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"


@dataclass
class TarMember:
    path: bytes
    type: bytes
    size: int
    mtime: int
    linkname: bytes


class TarReader:
    """Iterate members; read a regular member's data with ``read(n)`` before asking for the next."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._left = 0  # data bytes of the current member not read yet
        self._padding = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self._left:
            size = self._left
        if size == 0:
            return b""
        data = self._exact(size)
        self._left -= len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        """Like ``read(len(view))`` into ``view``, without a bytes object when the stream has ``readinto``."""
        size = min(len(view), self._left)
        if size == 0:
            return 0
        into = getattr(self.stream, "readinto", None)
        if into is None:
            size = min(size, 1 << 19)  # no big bytes object per call
            data = self._exact(size)
            view[:size] = data
        else:
            got = 0
            while got < size:
                n = into(view[got:size])
                if not n:
                    raise SourceError("the tar stream ended in the middle of a member")
                got += n
        self._left -= size
        return size

    def __iter__(self) -> Iterator[TarMember]:
        pending: dict[bytes, bytes] = {}
        while True:
            self._skip_rest()
            header = self.stream.read(BLOCK)
            if len(header) < BLOCK or header == bytes(BLOCK):
                return  # end of archive (GNU tar writes zero blocks, padding follows)
            _check(header)
            kind = header[156:157]
            size = _number(header[124:136])
            if kind in (PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                body = self._exact(size)
                self._padding = -size % BLOCK
                if kind == PAX_LOCAL:
                    pending.update(_pax_records(body))
                elif kind == GNU_LONGNAME:
                    pending[b"path"] = body.rstrip(b"\0")
                elif kind == GNU_LONGLINK:
                    pending[b"linkpath"] = body.rstrip(b"\0")
                continue
            name = _cstring(header[0:100])
            prefix = _cstring(header[345:500]) if header[257:262] == b"ustar" else b""
            path = pending.get(b"path", prefix + b"/" + name if prefix else name)
            if b"size" in pending:
                size = int(pending[b"size"])
            member = TarMember(
                path=path, type=kind, size=size, mtime=_number(header[136:148]),
                linkname=pending.get(b"linkpath", _cstring(header[157:257])),
            )
            pending = {}
            has_data = kind in REGULAR
            self._left = size if has_data else 0
            self._padding = -size % BLOCK if has_data else 0
            yield member

    def _skip_rest(self) -> None:
        while self._left:
            self.read(min(self._left, 1 << 20))
        if self._padding:
            self._exact(self._padding)
            self._padding = 0

    def _exact(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise SourceError("the tar stream ended in the middle of a member")
        return data


def _cstring(field: bytes) -> bytes:
    end = field.find(b"\0")
    return field if end < 0 else field[:end]


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU, for large values)
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] & 0x40 else value
    text = _cstring(field).strip(b" ")
    return int(text, 8) if text else 0


def _check(header: bytes) -> None:
    stored = _number(header[148:156])
    if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
        raise SourceError("the tar stream is damaged (bad header checksum)")


def _pax_records(body: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    at = 0
    while at < len(body):
        space = body.find(b" ", at)
        if space < 0:
            break
        length = int(body[at:space])
        if length <= 0:
            raise SourceError("the tar stream is damaged (bad pax record)")
        record = body[space + 1 : at + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        records[key] = value
        at += length
    return records
