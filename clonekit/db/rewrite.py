"""The ``previews.replace`` value transform (pure): the production URL becomes the preview URL.

Safe for PHP-serialized values (every ``s:N:"..."`` length is recomputed, nested serialized
strings included; ``sanitize.phpserialize`` walks them) and for JSON values (``https:\\/\\/``
escaped slashes too). ``db.target.rewrite_urls`` applies it to a database.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..sanitize.phpserialize import PhpSerializeError, rewrite_strings
from .codec import escape, unescape

# A value that may be PHP-serialized: it is walked; any other value gets a plain replacement.
SERIALIZED_START = re.compile(rb'^(?:[aO]:\d+:[{"]|s:\d+:"|i:-?\d+;|b:[01];|d:[-0-9.EeINFAN]+;|N;)')
# The same test in SQL; REGEXP may ignore case there: more rows for rewrite_value, never fewer.
SERIALIZED_START_SQL = '^([aO]:[0-9]+:[{"]|s:[0-9]+:"|i:-?[0-9]+;|b:[01];|d:[-0-9.EeINFAN]+;|N;)'


@dataclass(frozen=True)
class Replacement:
    old: str
    new: str

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """The plain form and the JSON escaped-slash form (``https:\\/\\/www.example.net``)."""
        out = [(self.old.encode(), self.new.encode())]
        if "/" in self.old:
            out.append((self.old.replace("/", "\\/").encode(), self.new.replace("/", "\\/").encode()))
        return out

    def needles(self) -> list[str]:
        return [old.decode() for old, _ in self.pairs()]


def rewrite_value(value: str, replacements: Sequence[Replacement]) -> str:
    """``value`` with every replacement applied; PHP-serialized lengths stay right."""
    data = value.encode("utf-8", "surrogatepass")
    pairs = [p for r in replacements for p in r.pairs()]
    if not any(old in data for old, _ in pairs):
        return value
    return rewrite_bytes(data, pairs).decode("utf-8", "surrogatepass")


def rewrite_bytes(data: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    if not any(old in data for old, _ in pairs):
        return data
    if SERIALIZED_START.match(data):
        try:
            return rewrite_strings(data, lambda _key, text: _replace(text, pairs))
        except PhpSerializeError:
            pass  # not (well-formed) serialized data after all: plain replacement, as WP-CLI does
    return _replace(data, pairs)


def _replace(data: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    for old, new in pairs:
        data = data.replace(old, new)
    return data


class StreamRewrite:
    """``previews.replace`` applied to tsv-1 chunks on their way into ``LOAD DATA``: the cold
    restore writes each row once, already rewritten, instead of scanning and updating every text
    column after the load. Same result as ``rewrite_value`` on each text value (byte for byte: it
    works on the stored bytes); a chunk holding no needle (the usual case) passes untouched after
    one substring search per needle.
    """

    def __init__(self, replacements: Sequence[Replacement]) -> None:
        self.pairs = [p for r in replacements for p in r.pairs()]
        # Escaping maps each byte to fixed bytes, so a value holding a needle holds its escaped form
        # in the chunk; the converse may not hold (a false hit only costs a look at the row).
        self._needles = sorted({escape(old) for old, _ in self.pairs})
        self._lock = threading.Lock()
        self.changed = 0  # values rewritten, by every loading thread (for the log)

    def chunk(self, data: bytes, fields: frozenset[int]) -> tuple[bytes, int]:
        """``data`` (whole tsv-1 rows) with the text fields at ``fields`` (0-based) rewritten, and
        how many values changed."""
        if not fields or not any(n in data for n in self._needles):
            return data, 0
        lines = data.split(b"\n")
        changed = 0
        for i, line in enumerate(lines):
            if any(n in line for n in self._needles):
                lines[i], count = self._line(line, fields)
                changed += count
        if changed:
            with self._lock:
                self.changed += changed
        return b"\n".join(lines), changed

    def _line(self, line: bytes, fields: frozenset[int]) -> tuple[bytes, int]:
        changed = 0
        values = line.split(b"\t")  # a TAB inside a value is escaped: raw TABs only separate fields
        for i in fields:
            if i >= len(values) or values[i] == b"\\N" or not any(n in values[i] for n in self._needles):
                continue
            raw = unescape(values[i])
            new = rewrite_bytes(raw, self.pairs)
            if new != raw:
                values[i] = escape(new)
                changed += 1
        return b"\t".join(values), changed
