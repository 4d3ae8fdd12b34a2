"""List and read a file tree on the source's SSH host: one remote command per window of files.

The first command runs ``find -printf`` (every entry with its metadata, NUL-separated: any name
survives), prints a sentinel record, then execs GNU ``tar`` reading file names on its stdin.
We parse the listing as it arrives, sort it into the manifest's order (compact records, sorted
in runs of 50,000 merged from temporary files), and capture it in windows of WINDOW_ENTRIES entries, like a local tree: for
each window we decide which files changed since the previous snapshot and send only their names
(NUL-separated, verbatim: no quoting, no option injection) to a tar, which streams them. The
first window with files to read uses the tar of the listing's command; each later one a tar
started while the window before it was read. So an unchanged tree costs one command, and a
tree of 100,000 files with changes everywhere one per 10,000 files.

When tar reports a change (status 1), misses a file, or a member's header differs from the
listing, a fresh listing finds what changed; those files go round again (at most READ_ATTEMPTS
times), then the capture fails naming them. Nothing torn is ever stored.
"""

from __future__ import annotations

import contextlib
import heapq
import io
import logging
import os
import queue
import struct
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Generic, Protocol, TypeVar

from ..errors import SourceError
from .storer import PACK_FILE_BYTES, READ_ATTEMPTS, WINDOW_ENTRIES, Storer
from .tarstream import REGULAR, TarReader
from .tree import DIR, FILE, SYMLINK, Entry, Excluder, join, order_key

log = logging.getLogger("clonekit.files")

FIELDS = ("%y", "%m", "%U", "%G", "%s", "%T@", "%C@", "%i", "%n", "%D", "%b", "%P", "%l")
FIND_FORMAT = "\\0".join(FIELDS) + "\\0"
TYPES = {b"f": FILE, b"d": DIR, b"l": SYMLINK}
TAR_OPTIONS = (
    "--format=posix",
    # No per-file extended header for times we do not use: halves the bytes per small file.
    "--pax-option=delete=atime,delete=ctime,delete=mtime",
    "--null", "--verbatim-files-from", "--no-unquote", "--no-recursion",
    "--ignore-failed-read",  # a file removed since the listing is a warning, not a failure
    "-T", "-", "-cf", "-",
)


def parse_time_ns(text: bytes) -> int:
    """``1700000000.1234567890`` (find's %T@) → integer nanoseconds, exactly."""
    seconds, _, fraction = text.partition(b".")
    return int(seconds + (fraction + b"000000000")[:9])  # one int(): this runs twice per listed file


# find's output is read this much at a time, each piece parsed as it comes: 100,000 files
# listed at once were 11 MB of output, held two or three times over while it was split.
LISTING_READ_BYTES = 1 << 16

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


@dataclass
class Listing(Generic[T]):
    """What ``read_listing`` found: the root's attributes (None: not a folder), what was held of
    each entry, the special files skipped, and whether the sentinel ended it (``rest``: the
    bytes read past it)."""

    root: dict[str, Any] | None
    held: list[T]
    special: list[bytes]
    ended: bool = False
    rest: bytes = b""


class _Appendable(Protocol[T_contra]):
    def append(self, item: T_contra, /) -> None: ...


def read_listing(
    stream: Any, hold: Callable[[list[bytes]], T], excluded: Excluder | None = None, into: _Appendable[T] | None = None
) -> Listing[T]:
    """find's records (one field per FIELDS) read from ``stream`` as they come, up to the end or
    to the SENTINEL record; ``hold(fields)`` of each entry is kept (in ``held``, or appended to
    ``into``), but for what ``excluded`` leaves out (a folder with all it holds: find lists a
    folder before its content). The sentinel counts only where a record starts, so a file named
    like it cannot end the listing."""
    width = len(FIELDS)
    listing: Listing[T] = Listing(None, [], [])
    keep = (listing.held if into is None else into).append
    excluded_dirs: set[bytes] = set()
    pending = b""  # the start of a record the next read completes
    while data := stream.read1(LISTING_READ_BYTES):
        buffer = pending + data if pending else data
        fields = buffer.split(b"\0")
        fields.pop()  # after the last NUL: a field the next read completes (in ``pending``)
        at = start = 0  # field and byte of the next record's start
        while at < len(fields):
            if fields[at] == SENTINEL:
                listing.ended, listing.rest = True, buffer[start + len(SENTINEL) + 1 :]
                return listing
            if len(fields) - at < width:
                break
            record = fields[at : at + width]
            start += sum(map(len, record)) + width
            at += width
            kind, path = record[0], record[11]
            if path == b"":
                if kind == b"d":  # else the root is not a folder: the caller says so
                    listing.root = {"mode": int(record[1], 8), "uid": int(record[2]), "gid": int(record[3]),
                                    "mtime_ns": parse_time_ns(record[5])}
                continue
            if excluded is not None and (path.rpartition(b"/")[0] in excluded_dirs or excluded(path)):
                if kind == b"d":
                    excluded_dirs.add(path)
                continue
            if kind not in TYPES:
                listing.special.append(path)
                continue
            keep(hold(record))
        pending = buffer[start:]
    if pending:
        raise SourceError("the remote file listing is truncated or garbled (find -printf)")
    return listing


def listed_entry(fields: list[bytes]) -> Entry:
    """One of find's records (``read_listing``) as an entry."""
    kind, mode, uid, gid, size, mtime, ctime, ino, nlink, dev, blocks, path, target = fields
    mapped = TYPES[kind]
    file_size = int(size) if mapped == FILE else 0
    return Entry(
        path=path, type=mapped, mode=int(mode, 8), uid=int(uid), gid=int(gid), mtime_ns=parse_time_ns(mtime),
        size=file_size, ino=int(ino), dev=int(dev), nlink=int(nlink), ctime_ns=parse_time_ns(ctime),
        target=target if mapped == SYMLINK else b"",
        sparse=mapped == FILE and file_size > 0 and int(blocks) * 512 < file_size,
    )


def parse_listing(output: bytes) -> tuple[dict[str, Any] | None, list[Entry], list[bytes]]:
    """find's whole output → (root attributes, entries, special files skipped)."""
    listing = read_listing(io.BytesIO(output), listed_entry)
    return listing.root, listing.held, listing.special


# A listing over SSH comes in find's order and is sorted into the manifest's (``SortedRecords``):
# each entry is held meanwhile as one bytes object, its order key first (``order_key``) and its
# other fields after two NULs, which no key holds (a key's NULs each stand between two names). So
# the records sort as their keys do, by plain byte comparison: no key per entry beside them, and
# about 150 bytes per entry, where an ``Entry`` takes 380 (docs/benchmarks.md).
def _sortable(fields: list[bytes]) -> bytes:
    return order_key(fields[11]) + b"\0\0" + b"\0".join(fields[:11]) + b"\0" + fields[12]


def _unsorted(record: bytes) -> Entry:
    key, _, rest = record.partition(b"\0\0")
    fields = rest.split(b"\0")
    return listed_entry([*fields[:11], key.replace(b"\0", b"/"), fields[11]])


# Records sorted at once; more are sorted in runs of this many, each written to a temporary file
# (about 7 MB) and merged when read, as sort(1) does: a listing of any size holds one run.
SORT_RUN_RECORDS = 50_000


class SortedRecords:
    """Byte strings appended in any order, read back sorted (by plain bytes), each let go once
    read. At most SORT_RUN_RECORDS are held; the runs spilled to temporary files (deleted as
    they are made: nothing stays behind, whatever happens) are merged with the last one."""

    def __init__(self) -> None:
        self._run: list[bytes] = []
        self._files: list[IO[bytes]] = []
        self.remaining = 0  # appended and not yet read

    def append(self, record: bytes) -> None:
        self._run.append(record)
        self.remaining += 1
        if len(self._run) >= SORT_RUN_RECORDS:
            self._spill()

    def _spill(self) -> None:
        self._run.sort()
        spilled = tempfile.TemporaryFile(prefix="clonekit-listing-")
        self._files.append(spilled)
        spilled.writelines(_LENGTH.pack(len(record)) + record for record in self._run)
        spilled.seek(0)
        self._run = []

    def __iter__(self) -> Iterator[bytes]:
        last, self._run = sorted(self._run, reverse=True), []

        def held() -> Iterator[bytes]:
            while last:
                yield last.pop()

        for record in heapq.merge(*(_spilled(f) for f in self._files), held()):
            self.remaining -= 1
            yield record
        self.close()

    def close(self) -> None:
        for spilled in self._files:
            spilled.close()
        self._files = []


_LENGTH = struct.Struct("<I")


def _spilled(run: IO[bytes]) -> Iterator[bytes]:
    while header := run.read(_LENGTH.size):
        yield run.read(_LENGTH.unpack(header)[0])


SENTINEL = b"CK-END-OF-LISTING"
# One command for the usual case: list, then tar exactly the names we send back once we have
# read the listing. The shell is started once; names never pass through a command line.
LIST_THEN_TAR = (
    'root=$1 format=$2; shift 2; '
    'find -H "$root" -printf "$format" || exit 97; '  # 97: not tar's 1 ("a file changed"), which is allowed
    'printf "%s\\000" ' + SENTINEL.decode() + ' && exec tar -C "$root" "$@"'
)


class _Tar:
    """A remote command that ends in tar reading file names on its stdin, started before its
    names are known: sshd takes about 0.2 s to start a command (measured on loopback), so the
    next window's tar starts while this window's is read."""

    def __init__(self, ssh: Any, argv: list[str]) -> None:
        self.names: queue.Queue[bytes | None] = queue.Queue()
        self.stack = contextlib.ExitStack()
        self.output = self.stack.enter_context(ssh.stream(argv, stdin=self._fed(), ok_status=(0, 1)))
        self.head = b""  # bytes read past the listing (the command of scan())

    def _fed(self) -> Iterator[bytes]:
        while (piece := self.names.get()) is not None:
            yield piece

    def close(self, exc_type: Any = None, exc: Any = None, tb: Any = None) -> None:
        """Without names (if none were sent) tar sends an empty archive; waits for the command
        and checks its status unless an error ends the capture."""
        self.names.put(None)
        if exc_type is None:
            with _tool_hint():
                self.stack.close()
        else:
            self.stack.__exit__(exc_type, exc, tb)


class RemoteTree:
    """A tree on the SSH host. Use as a context manager: ``scan()`` lists it, then ``read()`` is
    called once per window. The first window with files to read sends them to the tar that
    scan()'s command execs; each later one to a tar started while the one before was read."""

    window: int | None = WINDOW_ENTRIES

    def __init__(self, ssh: Any, root: str, excluded: Excluder) -> None:
        self.ssh = ssh
        self.root = root
        self.excluded = excluded
        self._next: _Tar | None = None  # started, waiting for names
        self._listed = SortedRecords()  # the listing, in the manifest's order once read

    def __enter__(self) -> RemoteTree:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._listed.close()
        if self._next is not None:
            tar, self._next = self._next, None
            tar.close(exc_type, exc, tb)

    def _listing(self, wanted: Mapping[bytes, Entry]) -> dict[bytes, Entry]:
        """A fresh listing of the ``wanted`` files, those still there (used only when something
        changed during the capture)."""
        output = self.ssh.run(["find", "-H", self.root, "-printf", FIND_FORMAT])
        found = read_listing(io.BytesIO(output), listed_entry).held
        return {entry.path: entry for entry in found if entry.type == FILE and entry.path in wanted}

    def scan(self) -> tuple[dict[str, Any], Iterator[Entry], list[bytes]]:
        tar = self._next = _Tar(self.ssh, ["sh", "-c", LIST_THEN_TAR, "sh", self.root, FIND_FORMAT, *TAR_OPTIONS])
        listing = read_listing(tar.output, _sortable, self.excluded, into=self._listed)
        if not listing.ended:  # find failed: ending the command raises its error (with find's message)
            self._next = None
            tar.close()
            raise SourceError(f"listing {self.root} on {self.ssh.target} ended early")
        tar.head = listing.rest
        if listing.root is None:
            raise SourceError(f"the files path {self.root} on {self.ssh.target} is not a folder")
        for path in listing.special:
            log.warning("skipping special file %s on %s (sockets, FIFOs and devices are not copied)",
                        os.fsdecode(join(os.fsencode(self.root), path)), self.ssh.target)
        return listing.root, map(_unsorted, self._listed), listing.special

    def read(
        self, entries: list[Entry], storer: Storer, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, Entry], set[bytes]]:
        done: dict[bytes, Entry] = {}
        vanished: set[bytes] = set()
        wanted = {entry.path: entry for entry in entries}
        for attempt in range(1, READ_ATTEMPTS + 1):
            if not wanted:
                break
            if attempt == 1 and self._next is not None:
                # the next window's tar, unless this window is the last
                more = self._listed.remaining > 0
                following = _Tar(self.ssh, ["tar", "-C", self.root, *TAR_OPTIONS]) if more else None
                tar, self._next = self._next, following
                headers, status = self._run_tar(tar, wanted, storer, progress)
            else:  # a file changed: its tar is not started ahead
                headers, status = self._tar(wanted, storer, progress)
            if status == 0 and headers.all_as_listed(wanted):
                done.update(wanted)  # tar saw exactly what was listed and reported no change: done
                wanted = {}
                break
            # Something moved (tar status 1, a missing member or a header unlike the listing): list again.
            current = self._listing(wanted)
            changed: dict[bytes, Entry] = {}
            for path, entry in wanted.items():
                fresh = current.get(path)
                if fresh is None:
                    log.warning("%s on %s was removed while the snapshot ran: left out",
                                os.fsdecode(path), self.ssh.target)
                    vanished.add(path)
                    continue
                if path in headers.paths and _same(fresh, entry) and headers.size_of(entry) == entry.size:
                    done[path] = entry
                    continue
                if path not in headers.paths and _same(fresh, entry):
                    raise SourceError(
                        f"cannot read {os.fsdecode(join(os.fsencode(self.root), path))} on {self.ssh.target}",
                        hint=f"check that {self.ssh.target.user or 'the SSH user'} may read it",
                    )
                log.warning("%s on %s changed while it was read (attempt %d of %d)",
                            os.fsdecode(path), self.ssh.target, attempt, READ_ATTEMPTS)
                changed[path] = fresh
            wanted = changed
        if wanted:
            names = ", ".join(os.fsdecode(p) for p in sorted(wanted)[:5])
            raise SourceError(
                f"files on {self.ssh.target} kept changing while they were read ({READ_ATTEMPTS} attempts): {names}",
                hint="run the snapshot again when they are quiet, or exclude them",
            )
        return done, vanished

    def _run_tar(
        self, tar: _Tar, wanted: dict[bytes, Entry], storer: Storer, progress: Callable[[int], None]
    ) -> tuple[_Members, int]:
        """Send ``wanted``'s names to a started tar and read the archive."""
        tar.names.put(_names(wanted))
        tar.names.put(None)  # tar's stdin ends: it sends these and exits
        try:
            headers = self._parse_tar(_Prefixed(tar.head, tar.output), wanted, storer, progress)
        except BaseException as exc:
            tar.close(type(exc), exc, exc.__traceback__)
            raise
        tar.close()  # waits for the command and checks its status
        return headers, tar.output.exit_status or 0

    def _tar(
        self, wanted: dict[bytes, Entry], storer: Storer, progress: Callable[[int], None]
    ) -> tuple[_Members, int]:
        """One more remote tar of ``wanted``; returns what it sent and tar's status."""
        # GNU tar exits 1 when a file changed or vanished while read: the caller lists again then.
        argv = ["tar", "-C", self.root, *TAR_OPTIONS]
        with self.ssh.stream(argv, stdin=_names(wanted), ok_status=(0, 1)) as stream:
            headers = self._parse_tar(stream, wanted, storer, progress)
        return headers, getattr(stream, "exit_status", 0) or 0

    def _parse_tar(
        self, stream: Any, wanted: dict[bytes, Entry], storer: Storer, progress: Callable[[int], None]
    ) -> _Members:
        members = _Members()
        archive = TarReader(stream)
        for member in archive:
            if member.type not in REGULAR:
                continue
            entry = wanted.get(member.path.removeprefix(b"./"))
            if entry is None:
                raise SourceError(f"remote tar sent an unexpected member {os.fsdecode(member.path)!r}")
            if member.size < PACK_FILE_BYTES:  # stored under the listing's path: the member's is let go
                storer.small(entry.path, archive.read())
            else:
                storer.large(entry.path, archive.readinto)
            members.add(entry, (member.size, member.mtime))
            progress(member.size)
        return members


@contextlib.contextmanager
def _tool_hint() -> Iterator[None]:
    """A remote find or tar that does not know GNU options: say what the source host needs."""
    try:
        yield
    except SourceError as exc:
        text = exc.message.lower()
        if any(word in text for word in ("unrecognized option", "invalid option", "unknown option", "printf",
                                         "not found", "usage:")):
            raise SourceError(
                exc.message, hint="clonekit reads remote files with GNU find and GNU tar: install findutils and "
                "tar on the source host (busybox or BSD versions lack -printf and --verbatim-files-from)",
            ) from exc
        raise


def _names(wanted: Mapping[bytes, Entry]) -> bytes:
    return b"".join(b"./" + path + b"\0" for path in wanted)


class _Prefixed:
    """Bytes already read past the listing, then the rest of the stream."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head = head
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size < 0 or size >= len(self.head):
                head, self.head = self.head, b""
                return head + (self.stream.read(size - len(head)) if size > len(head) else b"")
            head, self.head = self.head[:size], self.head[size:]
            return head
        return self.stream.read(size)

    def readinto(self, view: memoryview) -> int:
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        return int(self.stream.readinto(view) or 0)


def _header_key(entry: Entry) -> tuple[int, int]:
    return entry.size, entry.mtime_ns // 1_000_000_000


class _Members:
    """What one tar stream sent: the listed paths it held, and the (size, mtime in seconds) of
    the members whose header differed from the listing. Not a header per file: 100,000 of them
    held 20 MB beside the capture (docs/benchmarks.md)."""

    def __init__(self) -> None:
        self.paths: set[bytes] = set()  # the listing's own path objects
        self.differing: dict[bytes, tuple[int, int]] = {}

    def add(self, entry: Entry, header: tuple[int, int]) -> None:
        self.paths.add(entry.path)
        if header != _header_key(entry):
            self.differing[entry.path] = header

    def all_as_listed(self, wanted: Mapping[bytes, Entry]) -> bool:
        """Every wanted file was sent with the header its listing gave (only they can be sent)."""
        return not self.differing and len(self.paths) == len(wanted)

    def size_of(self, entry: Entry) -> int:
        """The size tar gave a member that was sent."""
        return self.differing.get(entry.path, _header_key(entry))[0]


def _same(a: Entry, b: Entry) -> bool:
    return (a.size, a.mtime_ns, a.ctime_ns, a.ino) == (b.size, b.mtime_ns, b.ctime_ns, b.ino)
