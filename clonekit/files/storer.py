"""Where a captured tree's file contents go: small files packed together, large ones cut by content.

Shared by the local and the SSH tree readers (``capture``, ``remote``); knows nothing of either.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .cdc import BUFFER_BYTES, MIN_CHUNK_BYTES, ReadInto, iter_chunks
from .tree import Content, content_of

READ_ATTEMPTS = 3
# A tree is captured this many entries at a time (``capture_files``), local or over SSH: about
# 4 MiB of listed entries, and a pack closed at each window's end (its files' entries are then written).
WINDOW_ENTRIES = 10_000
PACK_FILE_BYTES = MIN_CHUNK_BYTES  # smaller files are packed; larger ones are chunked by content
PACK_TARGET_BYTES = 4 * 1024 * 1024
# Large files chunked at once, each through one reused buffer of BUFFER_BYTES (cdc.py). One keeps
# the store's compressor threads busy on 2 cores and holds 25-40 MiB less than two (docs/benchmarks.md).
LARGE_FILE_READERS = 1


class ChunkSink(Protocol):
    def put(self, data: bytes) -> Any: ...  # -> ChunkRef (has .to_json())

    def has(self, chunk_id: str) -> bool: ...  # stored (per the writer's listing) or being stored


def stored(content: Content, writer: ChunkSink) -> bool:
    """Every chunk of ``content`` is in the store: it may be referenced again without reading the file.
    A chunk deleted by hand, by a lifecycle rule or set aside as corrupt (bad/) is not."""
    return refs_stored(content.chunks, writer)


def refs_stored(refs: Iterable[Any], writer: ChunkSink) -> bool:
    """``stored`` of an entry's ``chunks`` as they are: no ``Content`` made for each of 100,000 entries."""
    for ref in refs:  # a loop, not all() over a generator: once per unchanged file of a nightly
        if not (isinstance(ref, Mapping) and writer.has(str(ref.get("id")))):
            return False
    return True


def store_content(readinto: ReadInto, writer: ChunkSink, buffer: bytearray | None = None) -> tuple[Content, int]:
    """Chunk a stream by content into the writer; returns the content record and the byte count."""
    digest = hashlib.sha256()
    refs = []
    size = 0
    for chunk in iter_chunks(readinto, buffer):
        digest.update(chunk)
        size += len(chunk)
        refs.append(writer.put(chunk).to_json())
    return Content(digest.hexdigest(), tuple(refs)), size


class Storer:
    """Where file contents go: small ones into packs (in call order), large ones chunked by content.

    ``small`` is called from one thread; ``large`` from any. ``take`` flushes the pack being
    filled and hands over every file's content since the last ``take``, by path (the last call
    for a path wins).
    """

    def __init__(self, writer: ChunkSink, previous: Callable[[str], Mapping[str, Any] | None] | None = None) -> None:
        self.writer = writer
        self.previous = previous  # sha256 -> the previous snapshot's entry of that content (entries.PreviousContents)
        # A content this capture packed, by the first 16 bytes of its SHA-256 (as bytes): its pack
        # (an index in ``pack_refs``) << 32 | its offset. About 110 bytes per file where a Content
        # by its hex hash took 300: a first snapshot of 100,000 thumbnails holds one per file.
        self.stored_here: dict[bytes, int] = {}
        self.pack_refs: list[tuple[Mapping[str, Any], ...]] = []
        self.results: dict[bytes, Content] = {}
        self.lock = threading.Lock()
        self.pack = bytearray()
        self.pending: list[tuple[bytes, str, int]] = []  # (path, sha256, offset) waiting for the pack's id
        self.pending_by_hash: dict[str, int] = {}
        self.packs = 0
        self.reused = 0
        # One chunking buffer per large file read at once, made on first need and reused: memory
        # stays flat whatever the number of reader threads and files.
        self._buffers: queue.LifoQueue[bytearray | None] = queue.LifoQueue()
        for _ in range(LARGE_FILE_READERS):
            self._buffers.put(None)

    def small(self, path: bytes, data: bytes, sha: str = "") -> None:
        """Pack ``data`` (``sha``: its SHA-256 in hex when the caller took it, in a reader thread)."""
        if len(data) >= PACK_FILE_BYTES:  # grew since it was listed
            self.large(path, _BytesReader(data).readinto)
            return
        sha = sha or hashlib.sha256(data).hexdigest()
        here = self.stored_here.get(bytes.fromhex(sha[:32]))
        known = None if here is None else Content(sha, self.pack_refs[here >> 32], here & 0xFFFFFFFF)
        if known is None and self.previous is not None:
            # whether a previous entry's chunks are still stored is asked on a hit, not for each
            # of 100,000 entries when one thumbnail changed (docs/benchmarks.md)
            old = self.previous(sha)
            if old is not None and stored(content_of(old), self.writer):
                known = content_of(old)  # else its chunks are gone or set aside as corrupt: packed again
        if known is not None:
            self.reused += 1
            with self.lock:
                self.results[path] = known
            return
        if not data:
            with self.lock:
                self.results[path] = Content(sha)
            return
        offset = self.pending_by_hash.get(sha)
        if offset is None:  # the same bytes twice in one pack are stored once
            offset = len(self.pack)
            self.pack += data
            self.pending_by_hash[sha] = offset
        self.pending.append((path, sha, offset))
        if len(self.pack) >= PACK_TARGET_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        refs = (self.writer.put(bytes(self.pack)).to_json(),)  # one reference shared by the pack's files
        self.packs += 1
        pack = len(self.pack_refs)
        self.pack_refs.append(refs)
        with self.lock:
            for path, sha, offset in self.pending:
                self.results[path] = Content(sha, refs, offset)
                self.stored_here.setdefault(bytes.fromhex(sha[:32]), pack << 32 | offset)
        self.pack = bytearray()
        self.pending = []
        self.pending_by_hash = {}

    def large(self, path: bytes, readinto: ReadInto) -> int:
        buffer = self._buffers.get()  # waits while LARGE_FILE_READERS files are being chunked
        try:
            if buffer is None:
                buffer = bytearray(BUFFER_BYTES)
            content, size = store_content(readinto, self.writer, buffer)
        finally:
            self._buffers.put(buffer)
        with self.lock:  # the store's writer gives the chunks' memory back (memory.GIVE_BACK)
            self.results[path] = content
        return size

    def take(self) -> dict[bytes, Content]:
        """Flush the pack being filled; every file's content since the last ``take``, by path."""
        self.flush()
        with self.lock:
            results, self.results = self.results, {}
        return results


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.at = 0

    def readinto(self, view: memoryview) -> int:
        piece = self.view[self.at : self.at + len(view)]
        view[: len(piece)] = piece
        self.at += len(piece)
        return len(piece)
