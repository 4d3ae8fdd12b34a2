"""List and read a file tree on this machine."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import SourceError
from .tree import DIR, FILE, SYMLINK, Entry, Excluder, join

log = logging.getLogger("clonekit.files")

SPARSE_BLOCK_BYTES = 512


def entry_from_stat(path: bytes, st: os.stat_result, target: bytes = b"") -> Entry | None:
    """The Entry for one lstat() result; None for sockets, FIFOs and devices (not copied)."""
    if stat.S_ISREG(st.st_mode):
        kind = FILE
    elif stat.S_ISDIR(st.st_mode):
        kind = DIR
    elif stat.S_ISLNK(st.st_mode):
        kind = SYMLINK
    else:
        return None
    size = st.st_size if kind == FILE else 0
    return Entry(
        path=path, type=kind, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
        mtime_ns=st.st_mtime_ns, size=size, ino=st.st_ino, dev=st.st_dev, nlink=st.st_nlink,
        ctime_ns=st.st_ctime_ns, target=target,
        sparse=kind == FILE and size > 0 and st.st_blocks * SPARSE_BLOCK_BYTES < size,
    )


def root_attributes(root: str) -> dict[str, Any]:
    try:
        st = os.stat(root)
    except FileNotFoundError as exc:
        raise SourceError(f"the files path {root} does not exist") from exc
    except OSError as exc:
        raise SourceError(f"cannot read the files path {root}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"the files path {root} is not a folder")
    return {"mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}


def iter_local(root: str, excluded: Excluder, skipped: list[bytes]) -> Iterator[Entry]:
    """Every entry under root (not root itself), as it is listed; the paths of special files
    (not copied) are added to ``skipped``.

    In the manifest's order (``tree.order_key``): each folder's names sorted, a folder's entries
    right after it. So a capture streams the tree (``capture_files``): it neither sorts 100,000
    entries nor holds them (docs/benchmarks.md)."""
    base = os.fsencode(root)
    folders: list[tuple[bytes, Iterator[os.DirEntry[bytes]]]] = [(b"", _sorted_listing(base, b""))]
    while folders:
        rel_dir, listing = folders[-1]
        child = next(listing, None)
        if child is None:
            folders.pop()
            continue
        rel = join(rel_dir, child.name)
        if excluded(rel):
            continue
        try:
            st = child.stat(follow_symlinks=False)
            target = os.readlink(child.path) if stat.S_ISLNK(st.st_mode) else b""
        except FileNotFoundError:
            continue  # removed since the folder was listed: not part of this snapshot
        except OSError as exc:
            raise SourceError(f"cannot read {os.fsdecode(child.path)}: {exc.strerror}") from exc
        entry = entry_from_stat(rel, st, target)
        if entry is None:
            log.warning("skipping special file %s (sockets, FIFOs and devices are not copied)",
                        os.fsdecode(child.path))
            skipped.append(rel)
            continue
        yield entry
        if entry.type == DIR:
            folders.append((rel, _sorted_listing(base, rel)))


def _sorted_listing(base: bytes, rel_dir: bytes) -> Iterator[os.DirEntry[bytes]]:
    try:
        with os.scandir(os.path.join(base, rel_dir) if rel_dir else base) as listing:
            children = sorted(listing, key=lambda child: child.name)
    except OSError as exc:
        raise SourceError(f"cannot list {os.fsdecode(os.path.join(base, rel_dir))}: {exc.strerror}") from exc
    return iter(children)


class FileChanged(Exception):
    """Internal: the file changed while it was read; the caller reads it again."""


def _open_file(path: bytes) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # O_NOATIME needs ownership


def read_small(root: str, entry: Entry) -> tuple[Entry, bytes]:
    """``read_local`` of a small file, whole, in as few system calls as the check allows: open,
    fstat, one read of one byte more than its size (a file that grew is seen without another
    read), fstat, close. A tree of thumbnails is mostly these calls (docs/benchmarks.md)."""
    path = os.path.join(os.fsencode(root), entry.path)
    fd = _open_file(path)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileChanged(f"{os.fsdecode(path)} is no longer a regular file")
        want = before.st_size + 1
        parts = [os.read(fd, want)]
        got = len(parts[0])
        while got < before.st_size and parts[-1]:  # a short read that is not the end (a network file system)
            parts.append(os.read(fd, want - got))
            got += len(parts[-1])
        after = os.fstat(fd)
    finally:
        os.close(fd)
    return _unchanged_entry(entry, path, before, after, got), parts[0] if len(parts) == 1 else b"".join(parts)


def read_local(root: str, entry: Entry, consume: Callable[[CountingReader], Any]) -> tuple[Entry, Any]:
    """Open one file and hand a reader of it (``read``, ``readinto``) to ``consume``; check it did
    not change meanwhile.

    Returns the entry refreshed from the open file's fstat (it may differ from the listing if the
    file changed between listing and reading) and what ``consume`` returned.
    """
    path = os.path.join(os.fsencode(root), entry.path)
    fd = _open_file(path)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise FileChanged(f"{os.fsdecode(path)} is no longer a regular file")
        counted = CountingReader(handle)
        result = consume(counted)
        after = os.fstat(fd)
    return _unchanged_entry(entry, path, before, after, counted.total), result


def _unchanged_entry(entry: Entry, path: bytes, before: os.stat_result, after: os.stat_result, got: int) -> Entry:
    """The entry as the file was read: ``FileChanged`` unless its size, times and the bytes read agree."""
    if (
        got != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
        or after.st_ctime_ns != before.st_ctime_ns
    ):
        raise FileChanged(os.fsdecode(path))
    fresh = entry_from_stat(entry.path, before)
    assert fresh is not None
    return entry if fresh == entry else fresh  # the listed one when alike: a tree's entries are not held twice


class CountingReader:
    """An open file's reads, counted (the file must not grow or shrink while it is read)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.total = 0

    def read(self, size: int) -> bytes:
        data = self.handle.read(size)
        self.total += len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        got = self.handle.readinto(view) or 0
        self.total += got
        return got
