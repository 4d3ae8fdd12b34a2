"""Capture one file tree (local or over SSH) into chunks and a manifest section.

Unchanged files (same size, mtime, inode and ctime as in the previous snapshot of the same
path) keep their chunk references without being read or sent, as long as the store still holds
every one of those chunks (checked against the writer's listing: no request per file); a file
whose chunk is missing or was set aside as corrupt is read again. The others are stored:

- files under PACK_FILE_BYTES are packed together into chunks of about PACK_TARGET_BYTES (one
  store object per few hundred thumbnails instead of one each); a small file whose content is
  already known (previous snapshot or earlier in this one: moved, copied) is not stored again;
- larger files are cut by content (FastCDC) so an edit stores only the chunks around it.

A file that keeps changing while it is read fails the capture with its name: a snapshot never
holds a torn file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ..config import FileSource
from ..errors import IntegrityError, SourceError
from ..pools import batched, ordered_map
from ..progress import no_progress
from .entries import TREE_FORMAT, ChunkReader, EntryWriter, PreviousContents, iter_entries
from .storer import PACK_FILE_BYTES, READ_ATTEMPTS, WINDOW_ENTRIES, ChunkSink, Storer, refs_stored
from .tree import (
    FILE,
    HARDLINK,
    Entry,
    Excluder,
    Listed,
    PreviousFiles,
    chunk_refs,
    entry_to_json,
    link_hardlinks,
    unchanged,
)

log = logging.getLogger("clonekit.files")

# Files read at once. More threads overlap a cold disk's waits, but each read's system calls hand
# the GIL over: 100,000 thumbnails in the page cache took 12-15 s with 1, 14-17 s with 2, 18-20 s
# with 4; from a cold cache 34, 22-26 and 28-35 s (docs/benchmarks.md, 2026-12-03).
LOCAL_READ_WORKERS = 2
# Small files are read in groups (one task each): at most BATCH_FILES files or BATCH_BYTES bytes,
# READ_AHEAD_BATCHES groups ahead of the packing; at most about 16 MiB of file data waiting.
BATCH_FILES = 64
BATCH_BYTES = 2 * 1024 * 1024
READ_AHEAD_BATCHES = 8

Progress = Callable[..., None]


def capture_files(
    spec: FileSource,
    writer: ChunkSink,
    *,
    ssh: Any | None = None,
    previous: Mapping[str, Any] | None = None,
    store: ChunkReader | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Capture ``spec.path`` (on the SSH host when ``ssh`` is given) and return its manifest
    section (``clonekit.files/2``: its entries go to ``writer`` as tree chunks). ``previous`` is
    the previous snapshot's section of the same path, its tree read from ``store``.

    The tree streams through in windows of at most WINDOW_ENTRIES entries, in the manifest's
    order: listed, matched with the previous tree, read, packed, and written out as tree chunks
    before the next window is taken. So memory does not grow with the number of files
    (docs/benchmarks.md), but for a listing over SSH, held to be sorted (``RemoteTree.scan``)."""
    progress = progress or no_progress
    excluded = Excluder(spec.exclude)
    if ssh is not None:
        from .remote import RemoteTree

        tree: _Tree = RemoteTree(ssh, spec.path, excluded)
    else:
        tree = _LocalTree(spec.path, excluded)
    unreadable: list[IntegrityError] = []
    before = PreviousFiles(iter_entries(previous, store) if previous is not None else (), on_error=unreadable.append)
    storer = Storer(writer, PreviousContents(previous, store, unreadable.append).get if previous is not None else None)
    out = EntryWriter(writer)
    healed: set[bytes] = set()
    vanished: set[bytes] = set()
    task = f"files {spec.path}"
    files = total_bytes = read_files = read_bytes = to_read_bytes = 0

    def reuse(entry: Entry) -> Mapping[str, Any] | None:
        """The previous snapshot's entry of a file with the same size, mtime, inode and ctime (ctime
        covers chmod/chown) whose chunks the store still holds; None: read it."""
        old = before.get(entry.path)
        if not unchanged(entry, old):
            return None
        assert old is not None
        if refs_stored(chunk_refs(old), writer):
            return old
        healed.add(entry.path)  # its stored copy is gone or was set aside as corrupt: read it again
        return None

    with tree:
        root, listed, skipped = tree.scan()
        for window in batched(link_hardlinks(listed), tree.window):
            to_read: list[Entry] = []
            for index, entry in enumerate(window):
                if isinstance(entry, Entry) and entry.type == FILE:
                    old = reuse(entry)
                    if old is None:
                        to_read.append(entry)
                    else:
                        window[index] = old
            to_read_bytes += sum(e.size for e in to_read)
            progress(task, total=to_read_bytes)
            fresh, gone = tree.read(to_read, storer, progress=lambda n: progress(task, advance=n))
            del to_read
            contents = storer.take()
            vanished |= gone
            read_files += len(fresh)
            read_bytes += sum(e.size for e in fresh.values())
            for entry in window:
                if not isinstance(entry, Entry):  # the previous snapshot's, unchanged
                    files += 1
                    total_bytes += entry["size"]
                    out.add(entry)
                elif entry.path in vanished or (entry.type == HARDLINK and entry.target in vanished):
                    continue
                elif entry.type == FILE:
                    files += 1
                    entry = fresh.pop(entry.path)  # as it was when read
                    total_bytes += entry.size
                    out.add(entry_to_json(entry, contents.pop(entry.path)))
                else:
                    out.add(entry_to_json(entry, None))
    if unreadable:
        log.warning("%s: the previous snapshot's list of files cannot be read (%s): the files after that point "
                    "are read again, and moved files stored again", spec.path, unreadable[0].message)
    if healed:
        log.warning("%s: %d unchanged file(s) read again: chunks of the previous snapshot are missing "
                    "from the store or were set aside as corrupt", spec.path, len(healed))
    log.info("%s: %d files, %d read (%d bytes), %d packs, %d contents already stored",
             spec.path, files, read_files, read_bytes, storer.packs, storer.reused)
    return {
        "kind": "files",
        "format": TREE_FORMAT,
        "path": spec.path,
        "host": str(ssh.target) if ssh is not None else None,
        "exclude": list(spec.exclude),
        "root": root,
        "files": files,
        "bytes": total_bytes,
        "read_files": read_files,
        "read_bytes": read_bytes,
        "skipped": len(skipped),
        **out.finish(),
    }


class _Tree(Protocol):
    window: int | None  # entries captured at a time (None: all at once)

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...

    def scan(self) -> tuple[dict[str, Any], Iterator[Listed], list[bytes]]:
        """The root's attributes, its entries in the manifest's order (as they are listed), and
        the special files skipped (complete once the entries are)."""
        ...

    def read(
        self, entries: list[Entry], storer: Storer, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, Entry], set[bytes]]:
        """Store the entries' contents; return the entries as they were read, and those that vanished."""
        ...


class _LocalTree:
    window: int | None = WINDOW_ENTRIES

    def __init__(self, root: str, excluded: Excluder) -> None:
        self.root = root
        self.excluded = excluded

    def __enter__(self) -> _LocalTree:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        return None

    def scan(self) -> tuple[dict[str, Any], Iterator[Listed], list[bytes]]:
        from .local import iter_local, root_attributes

        root = root_attributes(self.root)
        skipped: list[bytes] = []
        return root, iter_local(self.root, self.excluded, skipped), skipped

    def read(
        self, entries: list[Entry], storer: Storer, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, Entry], set[bytes]]:
        from .local import FileChanged, read_local, read_small

        def one(entry: Entry) -> tuple[Entry, bytes | None] | None:
            small = entry.size < PACK_FILE_BYTES
            for attempt in range(1, READ_ATTEMPTS + 1):
                try:
                    if small:
                        fresh, data = read_small(self.root, entry)
                    else:
                        fresh, _ = read_local(self.root, entry, lambda reader: storer.large(entry.path, reader.readinto))
                        data = None
                except FileNotFoundError:
                    log.warning("%s was removed while the snapshot ran: left out", _show(self.root, entry.path))
                    return None
                except FileChanged:
                    log.warning("%s changed while it was read (attempt %d of %d)",
                                _show(self.root, entry.path), attempt, READ_ATTEMPTS)
                    continue
                except OSError as exc:
                    raise SourceError(f"cannot read {_show(self.root, entry.path)}: {exc.strerror}") from exc
                return fresh, data
            raise SourceError(
                f"{_show(self.root, entry.path)} kept changing while it was read ({READ_ATTEMPTS} attempts): "
                "refusing to store a torn copy",
                hint="run the snapshot again when the file is quiet, or exclude it",
            )

        def batch(group: list[Entry]) -> list[tuple[Entry, bytes | None, str] | None]:
            """Read a few files in one task, each small file's SHA-256 taken here: a task and a
            hand-over per file cost more than a thumbnail's read (docs/benchmarks.md)."""
            out: list[tuple[Entry, bytes | None, str] | None] = []
            for entry in group:
                result = one(entry)
                if result is not None and result[1] is not None:
                    out.append((result[0], result[1], hashlib.sha256(result[1]).hexdigest()))
                else:
                    out.append(None if result is None else (result[0], None, ""))
            return out

        fresh_entries: dict[bytes, Entry] = {}
        vanished: set[bytes] = set()
        with ThreadPoolExecutor(LOCAL_READ_WORKERS, thread_name_prefix="ck-files") as pool:
            groups = _batches(entries)
            for group, results in zip(groups, ordered_map(pool, batch, groups, READ_AHEAD_BATCHES), strict=True):
                for entry, result in zip(group, results, strict=True):
                    if result is None:
                        vanished.add(entry.path)
                        continue
                    fresh, data, sha = result
                    if data is not None:
                        storer.small(entry.path, data, sha)  # packs fill in path order: same input, same packs
                    fresh_entries[entry.path] = fresh
                    progress(fresh.size)
        return fresh_entries, vanished


def _batches(entries: list[Entry]) -> list[list[Entry]]:
    """``entries`` in order, in groups of small files of at most BATCH_FILES files and BATCH_BYTES
    bytes; a large file (read in pieces, not held) is a group of its own."""
    groups: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if entry.size >= PACK_FILE_BYTES:
            if current:
                groups.append(current)
                current, size = [], 0
            groups.append([entry])
            continue
        if current and (len(current) >= BATCH_FILES or size + entry.size > BATCH_BYTES):
            groups.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        groups.append(current)
    return groups


def _show(root: str, path: bytes) -> str:
    return os.fsdecode(os.path.join(os.fsencode(root), path))
