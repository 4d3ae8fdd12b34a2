"""Write a captured tree back: into a local folder, or as a tar stream (for a Docker volume).

Every chunk is verified by the repository (hash of its plain bytes) and every file by its
SHA-256 and size: a corrupt or missing chunk stops the restore with IntegrityError.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ClonekitError, IntegrityError, UsageError
from ..fdio import write_all
from ..pools import batched
from ..progress import no_progress
from .entries import iter_entries, section_format
from .tree import (
    DIR,
    FILE,
    HARDLINK,
    SECTION_FORMAT,
    SYMLINK,
    check_relative,
    checked_order,
    decode_name,
    entry_path,
    order_key,
)

WRITE_WORKERS = 4
WRITE_BATCH_FILES = 64
# At most (WRITE_AHEAD_BATCHES + 1) batches wait or are written at once: about 20 MiB, as fast as
# 8 x 8 MiB into a preview's volume, beside the read-ahead of the chunks (docs/benchmarks.md).
WRITE_BATCH_BYTES = 4 * 1024 * 1024
WRITE_AHEAD_BATCHES = 4
TAR_BLOCK = 512
TAR_PIECE_BYTES = 1024 * 1024
SPARSE_BLOCK_BYTES = 64 * 1024
_ZEROS = bytes(SPARSE_BLOCK_BYTES)


# The chunks fetched ahead of the files being written: 4 reads in flight, about 8 MiB. As fast as
# 8 and 24 MiB into a preview's volume from a local store, 30 MiB less at the clone's peak.
READ_WORKERS = 4
READ_AHEAD_BYTES = 8 * 1024 * 1024
# Files whose chunks are named and fetched through one stream (``_Contents``): a batch of
# entries is held (about 4 MiB), the read-ahead starts again at each batch.
CONTENT_BATCH_FILES = 8192


class ChunkSource(Protocol):
    """What restores read: a repository's chunks in the order asked, fetched ahead in parallel."""

    def iter_chunks(self, ids: Iterable[str], *, workers: int = ..., read_ahead_bytes: int = ...) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class RestoreStats:
    files: int
    bytes: int
    dirs: int
    symlinks: int
    hardlinks: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "bytes": self.bytes, "dirs": self.dirs, "symlinks": self.symlinks,
                "hardlinks": self.hardlinks, "seconds": round(self.seconds, 3)}


Pairs = Iterator[tuple[bytes, Mapping[str, Any]]]


def _entries(repo: ChunkSource, section: Mapping[str, Any]) -> Pairs:
    """(path, entry) in the manifest's order, parents first, each path checked. A tree in chunks
    (``clonekit.files/2``) streams, its order checked as it goes: a restore holds a few entries,
    not 100,000 (docs/benchmarks.md). A ``clonekit.files/1`` section, whole in the manifest
    anyway, is sorted as it always was."""
    if section_format(section) == SECTION_FORMAT:
        pairs = [(check_relative(entry_path(item)), item) for item in section.get("entries", ())]
        pairs.sort(key=lambda pair: order_key(pair[0]))  # a bytes key per entry, not a list
        yield from pairs
        return

    def out_of_order(path: bytes) -> IntegrityError:
        return IntegrityError(f"the files of {section.get('path')!r} are out of order at {os.fsdecode(path)}: "
                              "the snapshot is damaged")

    streamed = ((check_relative(entry_path(item)), item) for item in iter_entries(section, repo))
    yield from checked_order(streamed, lambda pair: pair[0], out_of_order)


def _only_files(pairs: Iterable[tuple[bytes, Mapping[str, Any]]]) -> Pairs:
    return ((path, item) for path, item in pairs if item.get("type") == FILE)


def _file_contents(
    repo: ChunkSource, files: Iterable[tuple[bytes, Mapping[str, Any]]]
) -> Iterator[tuple[bytes, Mapping[str, Any], Iterator[bytes | memoryview]]]:
    """Each file with an iterator over its bytes (``_Contents``), CONTENT_BATCH_FILES at a time."""
    contents = _Contents(repo)
    for batch in batched(files, CONTENT_BATCH_FILES):
        yield from contents.of(batch)


class _Contents:
    """The contents of a tree's files, a batch of files at a time: each batch's chunks fetched
    through one ordered, parallel stream (a batch, not the whole tree, is held while its chunks
    are named). Packed small files are slices of a shared chunk, fetched once for a run of
    files, across batches too."""

    def __init__(self, repo: ChunkSource) -> None:
        self.repo = repo
        self.current: tuple[str, bytes] | None = None  # the pack chunk the last packed file was cut from

    def of(
        self, files: list[tuple[bytes, Mapping[str, Any]]]
    ) -> Iterator[tuple[bytes, Mapping[str, Any], Iterator[bytes | memoryview]]]:
        wanted: list[str] = []
        last = self.current[0] if self.current is not None else None
        for _, item in files:  # the same walk as below decides which files need a fetch
            refs = item.get("chunks", ())
            if "offset" in item:
                if len(refs) == 1 and refs[0]["id"] == last:
                    continue  # served from the chunk already fetched for the previous packed file
                wanted.extend(ref["id"] for ref in refs)
                last = refs[-1]["id"] if refs else None
            elif refs:
                wanted.extend(ref["id"] for ref in refs)
                last = None
        stream = self.repo.iter_chunks(wanted, workers=READ_WORKERS, read_ahead_bytes=READ_AHEAD_BYTES)
        for path, item in files:
            refs = item.get("chunks", ())
            if "offset" not in item:
                yield path, item, _take(stream, refs, path)
                if refs:
                    self.current = None
                continue
            if len(refs) != 1:
                raise IntegrityError(f"packed file {os.fsdecode(path)} must name exactly one chunk")
            ref = refs[0]
            if self.current is None or self.current[0] != ref["id"]:
                self.current = (ref["id"], next(_take(stream, refs, path)))
            offset, size = int(item["offset"]), int(item["size"])
            if offset < 0 or offset + size > len(self.current[1]):
                raise IntegrityError(f"packed file {os.fsdecode(path)} lies outside its chunk: the manifest is damaged")
            yield path, item, iter((memoryview(self.current[1])[offset : offset + size],))


def iter_files(repo: ChunkSource, section: Mapping[str, Any]) -> Iterator[tuple[bytes, Iterator[bytes | memoryview]]]:
    """Every regular file of a section, in path order: (relative path, its bytes in pieces)."""
    for path, _item, pieces in _file_contents(repo, _only_files(_entries(repo, section))):
        yield path, pieces


def _take(stream: Iterator[bytes], refs: Any, path: bytes) -> Iterator[bytes]:
    for ref in refs:
        data = next(stream, None)
        if data is None:
            raise IntegrityError(f"the chunk stream ended early while restoring {os.fsdecode(path)}")
        if len(data) != ref["size"]:
            raise IntegrityError(
                f"chunk {ref['id']} of {os.fsdecode(path)} has {len(data)} bytes, expected {ref['size']}"
            )
        yield data


class _FileCheck:
    """Whole-file SHA-256 and size, checked once the last chunk went by.

    A file stored as exactly one chunk whose id IS its SHA-256 (plain stores) was already
    verified by the repository when the chunk was fetched: only its size is checked again.
    With ``hasher`` (a one-thread pool) the hashing runs beside the writing, in order.
    """

    def __init__(self, path: bytes, item: Mapping[str, Any], hasher: ThreadPoolExecutor | None = None) -> None:
        self.path = path
        self.item = item
        refs = item.get("chunks", ())
        self.verified_by_chunk = "offset" not in item and len(refs) == 1 and refs[0].get("id") == item.get("sha256")
        self.digest = hashlib.sha256()
        self.size = 0
        self.hasher = hasher
        self.pending: Future[None] | None = None

    def update(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.verified_by_chunk:
            return
        if self.hasher is None:
            self.digest.update(data)
        else:
            if self.pending is not None:
                self.pending.result()  # at most one chunk hashing while the next is written
            self.pending = self.hasher.submit(self.digest.update, data)

    def check(self) -> None:
        if self.pending is not None:
            self.pending.result()  # one thread, in order: the last update done means all are
        if self.size != self.item.get("size") or (
            not self.verified_by_chunk and self.digest.hexdigest() != self.item.get("sha256")
        ):
            raise IntegrityError(
                f"restored file {os.fsdecode(self.path)} does not match its checksum: the snapshot is damaged"
            )


def restore_files(
    repo: ChunkSource, section: Mapping[str, Any], dest: Path, *, progress: Callable[..., None] | None = None
) -> RestoreStats:
    """Recreate the tree exactly under ``dest`` (created if missing; must be empty): contents,
    modes, mtimes, symlinks, hard links, empty folders; owners too when running as root."""
    try:
        return _restore(repo, section, Path(dest), progress or no_progress)
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename else str(dest)
        raise ClonekitError(f"cannot restore files into {dest}: {where}: {exc.strerror}") from exc


def _restore(repo: ChunkSource, section: Mapping[str, Any], dest: Path, progress: Callable[..., None]) -> RestoreStats:
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise UsageError(f"cannot restore files into {dest}: the folder is not empty")
    base = os.fsencode(dest)
    as_root = os.geteuid() == 0
    task = f"restore {section.get('path', '')}"
    total = section.get("bytes")  # the files' bytes, as the capture counted them
    progress(task, total=total if isinstance(total, int) else None)

    counts = {DIR: 0, FILE: 0, SYMLINK: 0, HARDLINK: 0}
    folders: list[tuple[bytes, Mapping[str, Any]]] = []  # their modes and times are set last
    links: list[tuple[bytes, Mapping[str, Any]]] = []  # hard links and symlinks, made after every file
    written = 0

    def files() -> Pairs:
        """The files, in order; each folder made as the walk reaches it (before what it holds)."""
        for path, item in _entries(repo, section):
            kind = item.get("type")
            if kind == FILE:
                yield path, item
            elif kind == DIR:
                os.mkdir(os.path.join(base, path), 0o700)  # final mode once everything inside is written
                counts[DIR] += 1
                folders.append((path, item))
            elif kind in (HARDLINK, SYMLINK):
                links.append((path, item))
            else:
                raise IntegrityError(f"unknown entry type {kind!r} for {os.fsdecode(path)} in the manifest")

    def write(
        path: bytes, item: Mapping[str, Any], chunks: Iterable[bytes | memoryview],
        hasher: ThreadPoolExecutor | None = None,
    ) -> int:
        target = os.path.join(base, path)
        size = _write_file(target, path, item, chunks, progress, task, hasher)
        _apply(target, item, as_root)
        return size

    def write_batch(batch: list[tuple[bytes, Mapping[str, Any], list[bytes | memoryview]]]) -> int:
        return sum(write(path, item, chunks) for path, item, chunks in batch)

    # Small files are written in batches by a few threads (file creation is mostly waiting on
    # the kernel; one task per file would cost more in bookkeeping than the write itself);
    # files of several chunks are written in order here, as their chunks arrive.
    with (
        ThreadPoolExecutor(WRITE_WORKERS, thread_name_prefix="ck-restore") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="ck-hash") as hasher,
    ):
        running: deque[Future[int]] = deque()
        batch: list[tuple[bytes, Mapping[str, Any], list[bytes | memoryview]]] = []
        batch_bytes = 0
        for path, item, chunks in _file_contents(repo, files()):
            counts[FILE] += 1
            if len(item.get("chunks", ())) > 1:
                written += write(path, item, chunks, hasher)
                continue
            pieces = list(chunks)
            batch.append((path, item, pieces))
            batch_bytes += sum(len(piece) for piece in pieces)
            if len(batch) >= WRITE_BATCH_FILES or batch_bytes >= WRITE_BATCH_BYTES:
                running.append(pool.submit(write_batch, batch))
                batch, batch_bytes = [], 0
            while len(running) > WRITE_AHEAD_BATCHES or (running and running[0].done()):
                written += running.popleft().result()
        if batch:
            running.append(pool.submit(write_batch, batch))
        while running:
            written += running.popleft().result()
    # Hard links before symlinks, symlinks last: no path is ever resolved through a restored
    # symlink, so a hostile manifest cannot write or link outside ``dest``.
    for path, item in links:
        if item.get("type") == HARDLINK:
            link = os.path.join(base, check_relative(decode_name(item, "link")))
            os.link(link, os.path.join(base, path), follow_symlinks=False)
            counts[HARDLINK] += 1
    for path, item in links:
        if item.get("type") == SYMLINK:
            target = os.path.join(base, path)
            os.symlink(decode_name(item, "target"), target)
            if as_root:
                os.lchown(target, item["uid"], item["gid"])
            os.utime(target, ns=(item["mtime_ns"], item["mtime_ns"]), follow_symlinks=False)
            counts[SYMLINK] += 1
    # Folders last and deepest first: writing into a folder changes its mtime.
    for path, item in reversed(folders):
        _apply(os.path.join(base, path), item, as_root)
    root = section.get("root")
    if root:
        _apply(base, root, as_root)
    return RestoreStats(files=counts[FILE], bytes=written, dirs=counts[DIR], symlinks=counts[SYMLINK],
                        hardlinks=counts[HARDLINK], seconds=time.monotonic() - started)


def _write_file(
    target: bytes, path: bytes, item: Mapping[str, Any], chunks: Iterable[bytes | memoryview],
    progress: Callable[..., None],
    task: str,
    hasher: ThreadPoolExecutor | None = None,
) -> int:
    check = _FileCheck(path, item, hasher)
    sparse = bool(item.get("sparse"))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        for data in chunks:
            check.update(data)
            if sparse:
                _write_sparse(fd, data)
            else:
                write_all(fd, (data,))
            progress(task, advance=len(data))
        check.check()
        if sparse:
            os.ftruncate(fd, check.size)
    finally:
        os.close(fd)
    return check.size


def _write_sparse(fd: int, data: bytes | memoryview) -> None:
    """Seek over all-zero blocks instead of writing them: holes stay holes, as in the source."""
    view = memoryview(data)
    for start in range(0, len(view), SPARSE_BLOCK_BYTES):
        block = view[start : start + SPARSE_BLOCK_BYTES]
        if block == _ZEROS[: len(block)]:
            os.lseek(fd, len(block), os.SEEK_CUR)
        else:
            write_all(fd, (block,))


def _apply(target: bytes, item: Mapping[str, Any], as_root: bool) -> None:
    if as_root:
        os.chown(target, item["uid"], item["gid"])  # before chmod: chown clears set-uid bits
    os.chmod(target, item["mode"])
    os.utime(target, ns=(item["mtime_ns"], item["mtime_ns"]))


# -- tar ------------------------------------------------------------------------------------------


def iter_tar(repo: ChunkSource, section: Mapping[str, Any]) -> Iterator[bytes]:
    """The same tree as a POSIX (pax) tar stream, names as raw bytes, mtimes to the nanosecond.

    Pipe it into ``tar -x -C <dir>`` (GNU tar restores every mtime exactly; busybox tar keeps
    contents, names, modes and owners but file mtimes only to the second, folders' not at all).
    A damaged chunk raises IntegrityError mid-stream: the consumer must treat the extraction as
    failed. Pieces are about TAR_PIECE_BYTES (headers and small files are batched)."""
    batch = bytearray()
    for piece in _tar_pieces(repo, section):
        if len(piece) >= TAR_PIECE_BYTES:
            if batch:
                yield bytes(batch)
                batch.clear()
            yield piece
            continue
        batch += piece
        if len(batch) >= TAR_PIECE_BYTES:
            yield bytes(batch)
            batch.clear()
    if batch:
        yield bytes(batch)


def _tar_pieces(repo: ChunkSource, section: Mapping[str, Any]) -> Iterator[bytes]:
    root = section.get("root")
    if root:
        yield _header(b".", DIR, root)
    source = _Contents(repo)
    for batch in batched(_entries(repo, section), CONTENT_BATCH_FILES):
        yield from _tar_batch(batch, source.of(list(_only_files(batch))))
    yield bytes(2 * TAR_BLOCK)


def _tar_batch(
    entries: list[tuple[bytes, Mapping[str, Any]]],
    contents: Iterator[tuple[bytes, Mapping[str, Any], Iterator[bytes | memoryview]]],
) -> Iterator[bytes]:
    for path, item in entries:
        kind = item.get("type")
        if kind == FILE:
            file_path, _, chunks = next(contents)
            assert file_path == path
            yield _header(path, FILE, item)
            check = _FileCheck(path, item)
            for data in chunks:
                check.update(data)
                yield data if isinstance(data, bytes) else bytes(data)  # packed files are views into a chunk
            check.check()
            padding = -check.size % TAR_BLOCK
            if padding:
                yield bytes(padding)
        elif kind in (DIR, SYMLINK, HARDLINK):
            yield _header(path, kind, item)
        else:
            raise IntegrityError(f"unknown entry type {kind!r} for {os.fsdecode(path)} in the manifest")


_TAR_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE, SYMLINK: tarfile.SYMTYPE, HARDLINK: tarfile.LNKTYPE}


def _header(path: bytes, kind: str, item: Mapping[str, Any]) -> bytes:
    """A ustar header, preceded by a pax header when a name is long or not ASCII, or the mtime
    has nanoseconds. Pax values are written as raw bytes (no ``hdrcharset`` record, which GNU
    tar does not know): GNU tar and the kernel take names as bytes anyway."""
    name = path + (b"/" if kind == DIR and path != b"." else b"")
    link = b""
    if kind == SYMLINK:
        link = decode_name(item, "target")
    elif kind == HARDLINK:
        link = decode_name(item, "link")
    pax: dict[str, bytes] = {}
    if not _fits_ustar(name, 100):
        pax["path"] = name
    if not _fits_ustar(link, 100):
        pax["linkpath"] = link
    seconds, nanos = divmod(int(item["mtime_ns"]), 1_000_000_000)
    if nanos:
        pax["mtime"] = f"{seconds}.{nanos:09d}".encode()
    info = tarfile.TarInfo("path-in-pax-header" if "path" in pax else name.decode("ascii"))
    info.type = _TAR_TYPES[kind]
    info.mode = item["mode"]
    info.uid = item["uid"]
    info.gid = item["gid"]
    info.mtime = seconds
    if kind == FILE:
        info.size = int(item["size"])
    info.linkname = "link-in-pax-header" if "linkpath" in pax else link.decode("ascii")
    header = info.tobuf(tarfile.USTAR_FORMAT, "ascii", "strict")
    if not pax:
        return header
    records = b"".join(_pax_record(key, value) for key, value in pax.items())
    extended = tarfile.TarInfo("PaxHeader")
    extended.type = tarfile.XHDTYPE
    extended.size = len(records)
    extended.mtime = seconds
    return extended.tobuf(tarfile.USTAR_FORMAT, "ascii", "strict") + records + bytes(-len(records) % TAR_BLOCK) + header


def _fits_ustar(name: bytes, limit: int) -> bool:
    return len(name) < limit and name.isascii()


def _pax_record(key: str, value: bytes) -> bytes:
    """``"<length> key=value\n"`` where length counts the whole record, its own digits included."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body
