"""Capture one file tree (local or over SSH) into chunks and a manifest section.

Unchanged files (same size, mtime, inode and ctime as in the previous snapshot of the same
path) keep their chunk list without being read or sent. The others are cut by content and
handed to the ChunkWriter, which deduplicates and uploads. A file that keeps changing while it
is read fails the capture with its name: a snapshot never holds a torn file.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ..config import FileSource
from ..errors import SourceError
from .cdc import iter_chunks
from .tree import (
    FILE,
    SECTION_FORMAT,
    Content,
    Entry,
    Excluder,
    entry_to_json,
    link_hardlinks,
    previous_files,
    unchanged,
)

log = logging.getLogger("clonekit.files")

READ_ATTEMPTS = 3
LOCAL_READ_WORKERS = 4


class ChunkSink(Protocol):
    def put(self, data: bytes) -> Any: ...  # -> ChunkRef (has .to_json())


Progress = Callable[..., None]


def _no_progress(task: str, advance: int = 0, total: int | None = None) -> None:
    return None


def store_content(read: Callable[[int], bytes], writer: ChunkSink) -> tuple[Content, int]:
    """Chunk a stream into the writer; returns the content record and the byte count."""
    digest = hashlib.sha256()
    refs = []
    size = 0
    for chunk in iter_chunks(read):
        digest.update(chunk)
        size += len(chunk)
        refs.append(writer.put(chunk).to_json())
    return Content(digest.hexdigest(), tuple(refs)), size


def capture_files(
    spec: FileSource,
    writer: ChunkSink,
    *,
    ssh: Any | None = None,
    previous: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Capture ``spec.path`` (on the SSH host when ``ssh`` is given) and return its manifest section."""
    progress = progress or _no_progress
    excluded = Excluder(spec.exclude)
    if ssh is not None:
        from .remote import RemoteTree

        tree: _Tree = RemoteTree(ssh, spec.path, excluded)
    else:
        tree = _LocalTree(spec.path, excluded)
    root, listed, skipped = tree.list()
    entries = link_hardlinks(listed)
    before = previous_files(previous)
    contents: dict[bytes, Content] = {}
    to_read: list[Entry] = []
    for entry in entries:
        if entry.type != FILE:
            continue
        old = before.get(entry.path)
        if unchanged(entry, old):
            assert old is not None
            contents[entry.path] = Content(old["sha256"], tuple(old["chunks"]))
        else:
            to_read.append(entry)
    task = f"files {spec.path}"
    progress(task, total=sum(e.size for e in to_read))
    fresh, vanished = tree.read(to_read, writer, progress=lambda n: progress(task, advance=n))
    for entry, content in fresh.values():
        contents[entry.path] = content
    refreshed = {path: entry for path, (entry, _) in fresh.items()}
    out_entries = []
    total_bytes = 0
    files = 0
    for entry in entries:
        if entry.path in vanished or _parent_vanished(entry, vanished):
            continue
        entry = refreshed.get(entry.path, entry)
        content = contents.get(entry.path) if entry.type == FILE else None
        if entry.type == FILE:
            files += 1
            total_bytes += entry.size
        out_entries.append(entry_to_json(entry, content))
    return {
        "kind": "files",
        "format": SECTION_FORMAT,
        "path": spec.path,
        "host": str(ssh.target) if ssh is not None else None,
        "exclude": list(spec.exclude),
        "root": root,
        "files": files,
        "bytes": total_bytes,
        "read_files": len(fresh),
        "read_bytes": sum(entry.size for entry, _ in fresh.values()),
        "skipped": len(skipped),
        "entries": out_entries,
    }


def _parent_vanished(entry: Entry, vanished: set[bytes]) -> bool:
    # Hard links to a vanished file go with it.
    return entry.type == "hardlink" and entry.target in vanished


class _Tree(Protocol):
    def list(self) -> tuple[dict[str, Any], list[Entry], list[bytes]]: ...

    def read(
        self, entries: list[Entry], writer: ChunkSink, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, tuple[Entry, Content]], set[bytes]]: ...


class _LocalTree:
    def __init__(self, root: str, excluded: Excluder) -> None:
        self.root = root
        self.excluded = excluded

    def list(self) -> tuple[dict[str, Any], list[Entry], list[bytes]]:
        from .local import list_local, root_attributes

        root = root_attributes(self.root)
        entries, skipped = list_local(self.root, self.excluded)
        return root, entries, skipped

    def read(
        self, entries: list[Entry], writer: ChunkSink, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, tuple[Entry, Content]], set[bytes]]:
        from .local import FileChanged, read_local

        vanished: set[bytes] = set()

        def one(entry: Entry) -> tuple[Entry, Content] | None:
            for attempt in range(1, READ_ATTEMPTS + 1):
                try:
                    fresh, (content, _) = read_local(self.root, entry, lambda read: store_content(read, writer))
                except FileNotFoundError:
                    log.warning("%s was removed while the snapshot ran: left out", _show(self.root, entry.path))
                    return None
                except FileChanged:
                    log.warning("%s changed while it was read (attempt %d of %d)",
                                _show(self.root, entry.path), attempt, READ_ATTEMPTS)
                    continue
                except OSError as exc:
                    raise SourceError(f"cannot read {_show(self.root, entry.path)}: {exc.strerror}") from exc
                progress(fresh.size)
                return fresh, content
            raise SourceError(
                f"{_show(self.root, entry.path)} kept changing while it was read ({READ_ATTEMPTS} attempts): "
                "refusing to store a torn copy",
                hint="run the snapshot again when the file is quiet, or exclude it",
            )

        out: dict[bytes, tuple[Entry, Content]] = {}
        with ThreadPoolExecutor(LOCAL_READ_WORKERS, thread_name_prefix="ck-files") as pool:
            for entry, result in zip(entries, pool.map(one, entries), strict=True):
                if result is None:
                    vanished.add(entry.path)
                else:
                    out[entry.path] = result
        return out, vanished


def _show(root: str, path: bytes) -> str:
    return os.fsdecode(os.path.join(os.fsencode(root), path))
