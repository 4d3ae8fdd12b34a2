"""Pure parsing of the remote listing (no SSH): times, sentinel, names."""

from __future__ import annotations

import io

from clonekit.files.remote import FIELDS, SENTINEL, _read_until_sentinel, parse_listing, parse_time_ns


class _Trickle(io.RawIOBase):
    """A raw stream that returns at most 3 bytes per read: the sentinel arrives in pieces."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        piece, self.data = self.data[:3], self.data[3:]
        buffer[: len(piece)] = piece
        return len(piece)


def _record(kind: bytes, path: bytes, target: bytes = b"") -> bytes:
    fields = [kind, b"644", b"0", b"0", b"5", b"1700000000.5000000000", b"1700000001.0000000010", b"7", b"1",
              b"2049", b"8", path, target]
    assert len(fields) == len(FIELDS)
    return b"".join(f + b"\0" for f in fields)


def test_parse_time_ns_is_exact():
    assert parse_time_ns(b"1700000000.1234567890") == 1_700_000_000_123_456_789
    assert parse_time_ns(b"1700000000") == 1_700_000_000_000_000_000


def test_sentinel_only_counts_at_a_record_start():
    listing = _record(b"d", b"") + _record(b"f", SENTINEL) + _record(b"l", b"x", SENTINEL)
    tail = b"TAR-BYTES"
    stream = io.BufferedReader(_Trickle(listing + SENTINEL + b"\0" + tail))
    found = _read_until_sentinel(stream)
    assert found is not None
    got, rest = found
    assert got == listing
    assert rest + stream.read() == tail
    root, entries, skipped = parse_listing(got)
    assert root is not None and [e.path for e in entries] == [SENTINEL, b"x"]
    assert entries[0].mtime_ns == 1_700_000_000_500_000_000 and entries[1].target == SENTINEL


def test_no_sentinel_means_the_listing_failed():
    assert _read_until_sentinel(io.BufferedReader(_Trickle(_record(b"d", b"")))) is None


def test_a_listing_parsed_a_block_at_a_time_is_the_same_and_garbled_ends_are_refused(monkeypatch):
    import pytest

    import clonekit.files.remote as remote
    from clonekit.errors import SourceError

    listing = _record(b"d", b"") + b"".join(_record(b"f", b"dir/file-%d" % i) for i in range(50))
    listing += _record(b"f", b"long-" + b"n" * 300)  # longer than a whole block below
    whole = parse_listing(listing)
    for block in (7, 64, 200):
        monkeypatch.setattr(remote, "LISTING_BLOCK_BYTES", block)
        assert parse_listing(listing) == whole
        for garbled in (listing[:-1], listing + b"f\0", listing + b"f"):
            with pytest.raises(SourceError, match="truncated or garbled"):
                parse_listing(garbled)
    assert len(whole[1]) == 51
