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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntegrityError
from ..manifest import Record

SECTION_FORMAT = "clonekit.files/1"

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
    """File entries of the previous snapshot's section for the same path, found by path. Keyed by
    each entry's own name string (the raw bytes for a name stored in base64): 100,000 names are
    not copied to be looked up (docs/benchmarks.md)."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self._by_name: dict[str | bytes, Mapping[str, Any]] = {}
        for item in entries:
            if item.get("type") == FILE:
                self._by_name[item["path"] if "path" in item else decode_name(item, "path")] = item

    def entries(self) -> Iterable[Mapping[str, Any]]:
        return self._by_name.values()

    def clear(self) -> None:
        self._by_name.clear()

    def get(self, path: bytes) -> Mapping[str, Any] | None:
        try:
            return self._by_name.get(path.decode("utf-8"))  # stored as this string (encode_name)
        except UnicodeDecodeError:
            return self._by_name.get(path)


def content_of(item: Mapping[str, Any]) -> Content:
    offset = item.get("offset")
    return Content(item["sha256"], tuple(item.get("chunks", ())), offset if isinstance(offset, int) else None)


def entries_by_hash(entries: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The previous snapshot's file entry of each content (``content_of`` says where it lives): a
    file moved or copied is not stored again. The entries themselves, no copy: one per file."""
    return {item["sha256"]: item for item in entries
            if item.get("type") == FILE and isinstance(item.get("sha256"), str)}


def unchanged(entry: Entry, before: Mapping[str, Any] | None) -> bool:
    """Same size, mtime, inode and ctime as last time: the content is reused without reading it."""
    return (
        before is not None
        and before.get("size") == entry.size
        and before.get("mtime_ns") == entry.mtime_ns
        and before.get("ino") == entry.ino
        and before.get("ctime_ns") == entry.ctime_ns
        and isinstance(before.get("chunks"), list)
        and isinstance(before.get("sha256"), str)
    )


class Excluder:
    """Glob patterns relative to the root (fnmatch: ``*`` also matches '/')."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = [os.fsencode(p.strip().lstrip("/").removeprefix("./").rstrip("/")) for p in patterns if p.strip()]

    def __call__(self, path: bytes) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.patterns)


# What a listing holds: an entry as listed, or, for a file unchanged since the previous snapshot,
# that snapshot's entry itself (``Reuse``), which is all the capture needs of it.
Listed = Entry | Mapping[str, Any]
Reuse = Callable[[Entry], Mapping[str, Any] | None]


def listed_path(item: Listed) -> bytes:
    return item.path if isinstance(item, Entry) else entry_path(item)


def order_key(path: bytes) -> bytes:
    """The manifest's order of entries: by path components, so a folder's entries follow it. NUL,
    the smallest byte and never in a name, in place of '/' orders the bytes as the components
    (``path.split(b"/")``) would, in one object instead of a list of them per entry."""
    return path.replace(b"/", b"\0")


def in_order(entries: Sequence[Listed]) -> bool:
    return all(order_key(listed_path(entries[i - 1])) < order_key(listed_path(entries[i]))
               for i in range(1, len(entries)))


def link_hardlinks(entries: list[Listed]) -> list[Listed]:
    """The first path (in sorted order) of each multiply-linked inode keeps the content; the
    others become ``hardlink`` entries pointing to it. Sorted by path, parents first (a listing
    already in that order is not sorted again: a sort by key holds every key at once)."""
    ordered = entries if in_order(entries) else sorted(entries, key=lambda e: order_key(listed_path(e)))
    first: dict[tuple[int, int], bytes] = {}
    out: list[Listed] = []
    for entry in ordered:
        if isinstance(entry, Entry) and entry.type == FILE and entry.nlink > 1:
            key = (entry.dev, entry.ino)
            if key in first:
                entry = Entry(path=entry.path, type=HARDLINK, mode=entry.mode, uid=entry.uid, gid=entry.gid,
                              mtime_ns=entry.mtime_ns, target=first[key])
            else:
                first[key] = entry.path
        out.append(entry)
    return out


def join(parent: bytes, name: bytes) -> bytes:
    return name if not parent else parent + b"/" + name


def check_relative(path: bytes) -> bytes:
    """Refuse names that would escape the destination (a damaged or hostile manifest)."""
    parts = path.split(b"/")
    if not path or path.startswith(b"/") or any(p in (b"", b".", b"..") for p in parts) or b"\0" in path:
        raise IntegrityError(f"unsafe path {path!r} in a files section: refusing to restore it")
    return path
