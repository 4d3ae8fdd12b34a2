"""Pure parsing of the remote listing (no SSH): times, sentinel, names, the manifest's order."""

from __future__ import annotations

import io

import pytest

import clonekit.files.remote as remote
from clonekit.errors import SourceError
from clonekit.files.remote import FIELDS, SENTINEL, listed_entry, parse_listing, parse_time_ns, read_listing
from clonekit.files.tree import Excluder, order_key


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
    found = read_listing(stream, listed_entry)
    assert found.ended and found.root is not None
    assert found.rest + stream.read() == tail
    assert [e.path for e in found.held] == [SENTINEL, b"x"]
    assert found.held[0].mtime_ns == 1_700_000_000_500_000_000 and found.held[1].target == SENTINEL


def test_no_sentinel_means_the_listing_failed():
    assert not read_listing(io.BufferedReader(_Trickle(_record(b"d", b""))), listed_entry).ended


def test_a_listing_read_in_pieces_is_the_same_and_garbled_ends_are_refused(monkeypatch):
    listing = _record(b"d", b"") + b"".join(_record(b"f", b"dir/file-%d" % i) for i in range(50))
    listing += _record(b"f", b"long-" + b"n" * 300)  # longer than a whole read below
    whole = parse_listing(listing)
    for size in (7, 64, 200):
        monkeypatch.setattr(remote, "LISTING_READ_BYTES", size)
        assert parse_listing(listing) == whole
        for garbled in (listing[:-1], listing + b"f\0", listing + b"f"):
            with pytest.raises(SourceError, match="truncated or garbled"):
                parse_listing(garbled)
    assert len(whole[1]) == 51


def test_excluded_folders_go_with_what_they_hold_and_special_files_are_set_aside():
    listing = b"".join([_record(b"d", b""), _record(b"d", b"cache"), _record(b"f", b"cache/a"),
                        _record(b"p", b"cache/fifo"), _record(b"f", b"keep.log"), _record(b"s", b"sock"),
                        _record(b"f", b"x.tmp")])
    found = read_listing(io.BytesIO(listing), listed_entry, Excluder(["cache", "*.tmp"]))
    assert [e.path for e in found.held] == [b"keep.log"] and found.special == [b"sock"]


@pytest.mark.parametrize("run", [3, 50_000], ids=["spilled-runs", "one-run"])
def test_held_records_sort_as_their_order_keys_and_give_back_the_same_entries(monkeypatch, run):
    """The compact records of a listing over SSH sort by plain bytes in the manifest's order,
    names with bytes below '/' ('-', '.', ' ', control bytes) and non-UTF-8 included; in runs
    of 3, merged from temporary files, as in one."""
    monkeypatch.setattr(remote, "SORT_RUN_RECORDS", run)
    names = [b"a", b"a-b", b"a.b", b"a/b", b"a/b/c", b"a b", b"a\x01", b"a/\x01", b"ab", b"b\xff", b"b/\xff/-",
             b"new\nline", b"z", b"a/b-c", b"a/b/c/d"]
    records = [_record(b"l" if i % 3 == 0 else b"f", name, b"../" + name) for i, name in enumerate(names)]
    entries = parse_listing(b"".join(records))[1]
    listed = remote.SortedRecords()
    read_listing(io.BytesIO(b"".join(records)), remote._sortable, into=listed)
    assert listed.remaining == len(names) and len(listed._files) == (5 if run == 3 else 0)
    spilled = list(listed._files)
    back = list(map(remote._unsorted, listed))
    assert back == sorted(entries, key=lambda e: order_key(e.path))
    assert listed.remaining == 0 and all(f.closed for f in spilled)
