"""The file tree model and its manifest section format (pure: no I/O).

Section format (``"format": "clonekit.files/1"``, read only: captures now write
``clonekit.files/2``, where the same entries are kept in chunks of the store, see
``clonekit.files.entries``), one per captured path::

    {"kind": "files", "format": "clonekit.files/1", "path": "/srv/files", "host": "deploy@prod:22" | null,
     "exclude": ["css/*", ...], "files": n, "bytes": n, "read_files": n, "read_bytes": n,
     "entries": [ENTRY, ...]}                       # sorted by path; parents before children

    ENTRY = {"path": "a/b.jpg",                      # relative to the root, '/'-separated
             "type": "file" | "dir" | "symlink" | "hardlink",
             "mode": 420, "uid": 33, "gid": 33, "mtime_ns": 1700000000123456789,
             # file:     "size", "sha256" (of the whole content), "chunks": [{"id", "size"}, ...],
             #           "ino", "ctime_ns" (to recognise an unchanged file next time), "sparse": true?,
             #           "offset": n when the file is the slice [n, n+size) of its one chunk: files
             #           under 512 KiB are packed together into chunks of about 4 MiB
             # symlink:  "target"
             # hardlink: "link" (path of the file entry it shares its content with)
            }

Names are bytes on disk. A name (``path``, ``target``, ``link``) that is valid UTF-8 is stored
as a JSON string; any other is stored under the same key with a ``_b64`` suffix (``path_b64``),
base64 of the raw bytes, so every name survives exactly.
"""

from __future__ import annotations

import base64
import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import IntegrityError
from ..manifest import Record

SECTION_FORMAT = "clonekit.files/1"

T = TypeVar("T")

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"


@dataclass(frozen=True, slots=True)
class Entry:
    """One node of a tree, as listed (no content). ``path`` is relative, bytes, '/'-separated."""

    path: bytes
    type: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    ino: int = 0
    dev: int = 0
    nlink: int = 1
    ctime_ns: int = 0
    target: bytes = b""  # symlink target, or the path a hard link points to
    sparse: bool = False


@dataclass(frozen=True, slots=True)
class Content:
    """What a file's bytes became in the store."""

    sha256: str
    chunks: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    offset: int | None = None  # set when the file is a slice of a pack chunk (small files)


def encode_name(out: dict[str, Any], key: str, name: bytes) -> None:
    try:
        out[key] = name.decode("utf-8")
    except UnicodeDecodeError:
        out[key + "_b64"] = base64.b64encode(name).decode("ascii")


def decode_name(item: Mapping[str, Any], key: str) -> bytes:
    if key in item:
        return str(item[key]).encode("utf-8")
    if key + "_b64" in item:
        return base64.b64decode(item[key + "_b64"])
    raise IntegrityError(f"file entry without {key!r}: the manifest is damaged")


def entry_to_json(entry: Entry, content: Content | None) -> Record:
    out: dict[str, Any] = {"type": entry.type, "mode": entry.mode, "uid": entry.uid, "gid": entry.gid,
                           "mtime_ns": entry.mtime_ns}
    encode_name(out, "path", entry.path)
    if entry.type == FILE:
        assert content is not None
        out.update(size=entry.size, ino=entry.ino, ctime_ns=entry.ctime_ns, sha256=content.sha256,
                   chunks=content.chunks)  # the store's references, shared by the files of a pack
        if content.offset is not None:
            out["offset"] = content.offset
        if entry.sparse:
            out["sparse"] = True
    elif entry.type == SYMLINK:
        encode_name(out, "target", entry.target)
    elif entry.type == HARDLINK:
        encode_name(out, "link", entry.target)
    return Record(out)  # compact: a tree's entries live from the capture to the commit


def entry_path(item: Mapping[str, Any]) -> bytes:
    return decode_name(item, "path")


class PreviousFiles:
    """The previous snapshot's file entries of the same path, asked for in the manifest's order: a
    merge of the listing with the previous tree as it streams (``entries``, from the store one
    tree chunk at a time), so a capture holds no table of 100,000 previous entries.

    A path asked for out of order, and every path once the previous tree turns out unreadable
    (a chunk missing or corrupt: ``IntegrityError`` while streaming it), gets None: that file is
    read again, which is always safe."""

    def __init__(self, entries: Iterable[Mapping[str, Any]], on_error: Callable[[IntegrityError], None] | None = None) -> None:
        self._entries: Iterator[Mapping[str, Any]] | None = iter(entries)
        self._on_error = on_error
        self._asked = b""
        self._key = b""  # order key of ``_item``
        self._item: Mapping[str, Any] | None = None

    def get(self, path: bytes) -> Mapping[str, Any] | None:
        key = order_key(path)
        if key < self._asked:
            return None
        self._asked = key
        while self._entries is not None and (self._item is None or self._key < key):
            try:
                item = next(self._entries, None)
            except IntegrityError as exc:
                if self._on_error is not None:
                    self._on_error(exc)
                item = None
            if item is None:
                self._entries, self._item = None, None
                break
            self._item, self._key = item, order_key(entry_path(item))
        item = self._item
        return item if item is not None and self._key == key and item.get("type") == FILE else None


def content_of(item: Mapping[str, Any]) -> Content:
    offset = item.get("offset")
    return Content(item["sha256"], tuple(item.get("chunks", ())), offset if isinstance(offset, int) else None)


_COMPARED = ("size", "mtime_ns", "ino", "ctime_ns", "chunks", "sha256")


def unchanged(entry: Entry, before: Mapping[str, Any] | None) -> bool:
    """Same size, mtime, inode and ctime as last time: the content is reused without reading it."""
    if before is None:
        return False
    values = before.values_of(_COMPARED) if type(before) is Record else [before.get(key) for key in _COMPARED]
    size, mtime_ns, ino, ctime_ns, chunks, sha256 = values
    return (size == entry.size and mtime_ns == entry.mtime_ns and ino == entry.ino and ctime_ns == entry.ctime_ns
            and isinstance(chunks, (list, tuple)) and isinstance(sha256, str))


def chunk_refs(item: Mapping[str, Any]) -> Sequence[Any]:
    """An entry's chunk references as held: a record's tuple, shared, not a new list per file."""
    refs = item.values_of(("chunks",))[0] if type(item) is Record else item.get("chunks")
    return refs if isinstance(refs, (list, tuple)) else ()


class Excluder:
    """Glob patterns relative to the root (fnmatch: ``*`` also matches '/')."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [os.fsencode(p.strip().lstrip("/").removeprefix("./").rstrip("/")) for p in patterns if p.strip()]

    def __call__(self, path: bytes) -> bool:
        return bool(self.patterns) and any(fnmatch.fnmatchcase(path, pattern) for pattern in self.patterns)


# What a capture holds of a listed file: the entry as listed, or, for a file unchanged since the
# previous snapshot, that snapshot's entry itself, which is all the capture needs of it.
Listed = Entry | Mapping[str, Any]


def listed_path(item: Listed) -> bytes:
    return item.path if isinstance(item, Entry) else entry_path(item)


def order_key(path: bytes) -> bytes:
    """The manifest's order of entries: by path components, so a folder's entries follow it. NUL,
    the smallest byte and never in a name, in place of '/' orders the bytes as the components
    (``path.split(b"/")``) would, in one object instead of a list of them per entry."""
    return path.replace(b"/", b"\0")


def checked_order(
    items: Iterable[T], path_of: Callable[[T], bytes], out_of_order: Callable[[bytes], Exception]
) -> Iterator[T]:
    """``items`` as they come, each checked to follow the one before in the manifest's order
    (``order_key``): the first that does not raises ``out_of_order(its path)``. Streams."""
    last: bytes | None = None
    for item in items:
        path = path_of(item)
        key = order_key(path)
        if last is not None and key <= last:
            raise out_of_order(path)
        last = key
        yield item


def link_hardlinks(entries: Iterable[Listed]) -> Iterator[Listed]:
    """Entries in the manifest's order (``order_key``), each multiply-linked inode's first path
    keeping the content and the others made ``hardlink`` entries pointing to it. Streams: only
    the first path of each multiply-linked inode is held."""
    first: dict[tuple[int, int], bytes] = {}
    def out_of_order(path: bytes) -> ValueError:  # a bug of the listing, not bad input
        return ValueError(f"a listing out of the manifest's order at {path!r}")

    for entry in checked_order(entries, listed_path, out_of_order):
        if isinstance(entry, Entry) and entry.type == FILE and entry.nlink > 1:
            inode = (entry.dev, entry.ino)
            if inode in first:
                entry = Entry(path=entry.path, type=HARDLINK, mode=entry.mode, uid=entry.uid, gid=entry.gid,
                              mtime_ns=entry.mtime_ns, target=first[inode])
            else:
                first[inode] = entry.path
        yield entry


def join(parent: bytes, name: bytes) -> bytes:
    return name if not parent else parent + b"/" + name


def check_relative(path: bytes) -> bytes:
    """Refuse names that would escape the destination (a damaged or hostile manifest)."""
    parts = path.split(b"/")
    if not path or path.startswith(b"/") or any(p in (b"", b".", b"..") for p in parts) or b"\0" in path:
        raise IntegrityError(f"unsafe path {path!r} in a files section: refusing to restore it")
    return path
