"""The ``previews.replace`` value transform (pure): the production URL becomes the preview URL.

Safe for PHP-serialized values (every ``s:N:"..."`` length is recomputed, nested serialized
strings included; ``sanitize.phpserialize`` walks them) and for JSON values (``https:\\/\\/``
escaped slashes too). ``db.target.rewrite_urls`` applies it to a database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..sanitize.phpserialize import PhpSerializeError, rewrite_strings

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
