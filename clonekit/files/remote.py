"""List and read a file tree on the source's SSH host: ONE remote command per capture.

The command runs ``find -printf`` (every entry with its metadata, NUL-separated: any name
survives), prints a sentinel record, then execs GNU ``tar`` reading file names on its stdin.
We parse the listing, decide which files changed since the previous snapshot, and send only
their names back (NUL-separated, verbatim: no quoting, no option injection); tar streams them.
So an unchanged tree costs one round trip, and 20,000 changed files cost the same one.

When tar reports a change (status 1), misses a file, or a member's header differs from the
listing, a fresh listing finds what changed; those files go round again (at most READ_ATTEMPTS
times), then the capture fails naming them. Nothing torn is ever stored.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import SourceError
from .storer import PACK_FILE_BYTES, READ_ATTEMPTS, Storer
from .tarstream import REGULAR, TarReader
from .tree import DIR, FILE, SYMLINK, Entry, Excluder, in_manifest_order, join

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


# find's output is split this much at a time: 100,000 files split at once were 1.3 million strings
# held beside their entries.
LISTING_BLOCK_BYTES = 1 << 20


def listing_records(output: bytes) -> Iterator[list[bytes]]:
    """find's records (one field per FIELDS), a block of the output at a time."""
    width = len(FIELDS)
    at, block = 0, LISTING_BLOCK_BYTES
    while at < len(output):
        end = min(len(output), at + block)
        fields = output[at:end].split(b"\0")
        cut = fields.pop()  # after the last NUL: a field cut by the block's end, or b"" at the output's end
        records = len(fields) // width
        if end == len(output) and (cut or len(fields) % width):
            raise SourceError("the remote file listing is truncated or garbled (find -printf)")
        if not records:
            if end == len(output):
                raise SourceError("the remote file listing is truncated or garbled (find -printf)")
            block *= 2  # one record longer than a block (names of thousands of bytes)
            continue
        for i in range(records):
            yield fields[i * width : (i + 1) * width]
        # the block's bytes less the cut field and the fields of the next record (fewer than a record's)
        at = end - len(cut) - sum(len(field) + 1 for field in fields[records * width :])


def parse_listing(
    output: bytes, keep: Callable[[Entry], Entry | None] | None = None
) -> tuple[dict[str, Any] | None, list[Entry], list[bytes]]:
    """Records of find's output → (root attributes, entries, skipped special files). ``keep``
    says what to hold of each entry as it is parsed: itself, or None (left out)."""
    root = None
    entries: list[Entry] = []
    skipped: list[bytes] = []
    for kind, mode, uid, gid, size, mtime, ctime, ino, nlink, dev, blocks, path, target in listing_records(output):
        if path == b"":
            if kind != b"d":
                continue  # the root is not a folder: scan() says so
            root = {"mode": int(mode, 8), "uid": int(uid), "gid": int(gid), "mtime_ns": parse_time_ns(mtime)}
            continue
        mapped = TYPES.get(kind)
        if mapped is None:
            skipped.append(path)
            continue
        file_size = int(size) if mapped == FILE else 0
        entry = Entry(
            path=path, type=mapped, mode=int(mode, 8), uid=int(uid), gid=int(gid), mtime_ns=parse_time_ns(mtime),
            size=file_size, ino=int(ino), dev=int(dev), nlink=int(nlink), ctime_ns=parse_time_ns(ctime),
            target=target if mapped == SYMLINK else b"",
            sparse=mapped == FILE and file_size > 0 and int(blocks) * 512 < file_size,
        )
        held = entry if keep is None else keep(entry)
        if held is not None:
            entries.append(held)
    return root, entries, skipped


SENTINEL = b"CK-END-OF-LISTING"
# One command for the usual case: list, then tar exactly the names we send back once we have
# read the listing. The shell is started once; names never pass through a command line.
LIST_THEN_TAR = (
    'root=$1 format=$2; shift 2; '
    'find -H "$root" -printf "$format" || exit 97; '  # 97: not tar's 1 ("a file changed"), which is allowed
    'printf "%s\\000" ' + SENTINEL.decode() + ' && exec tar -C "$root" "$@"'
)


def _drain(entries: list[Entry]) -> Iterator[Entry]:
    """The entries in order, each let go once taken."""
    entries.reverse()
    while entries:
        yield entries.pop()


class RemoteTree:
    """A tree on the SSH host. Use as a context manager: ``scan()`` then ``read()`` share one command."""

    window: int | None = None  # one window: the files to read go to the one tar command scan() started

    def __init__(self, ssh: Any, root: str, excluded: Excluder) -> None:
        self.ssh = ssh
        self.root = root
        self.excluded = excluded
        self._stack = contextlib.ExitStack()
        self._names: queue.Queue[bytes | None] = queue.Queue()
        self._output: Any = None
        self._leftover = b""

    def __enter__(self) -> RemoteTree:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._names.put(None)  # the stdin feeder may still wait for names
        self._stack.__exit__(exc_type, exc, tb)

    def _send_names(self) -> Iterator[bytes]:
        while (piece := self._names.get()) is not None:
            yield piece

    def _parse(self, output: bytes, *, warn: bool) -> tuple[dict[str, Any] | None, list[Entry], list[bytes]]:
        """``parse_listing`` without what is excluded."""
        excluded_dirs: set[bytes] = set()

        def keep(entry: Entry) -> Entry | None:
            if entry.path.rpartition(b"/")[0] in excluded_dirs or self.excluded(entry.path):
                if entry.type == DIR:  # find lists a folder before what it holds
                    excluded_dirs.add(entry.path)
                return None
            return entry

        root, entries, skipped = parse_listing(output, keep)
        special = [p for p in skipped if not (self.excluded(p) or p.rpartition(b"/")[0] in excluded_dirs)]
        for path in special if warn else ():
            log.warning("skipping special file %s on %s (sockets, FIFOs and devices are not copied)",
                        os.fsdecode(join(os.fsencode(self.root), path)), self.ssh.target)
        return root, entries, special

    def _listing(self) -> list[Entry]:
        """A fresh listing on its own (used only when something changed during the capture)."""
        output = self.ssh.run(["find", "-H", self.root, "-printf", FIND_FORMAT])
        return self._parse(output, warn=False)[1]

    def scan(self) -> tuple[dict[str, Any], Iterator[Entry], list[bytes]]:
        argv = ["sh", "-c", LIST_THEN_TAR, "sh", self.root, FIND_FORMAT, *TAR_OPTIONS]
        self._output = self._stack.enter_context(
            self.ssh.stream(argv, stdin=self._send_names(), ok_status=(0, 1))
        )
        found = _read_until_sentinel(self._output)
        if found is None:  # find failed: ending the command raises its error (with find's message)
            self._names.put(None)
            with _tool_hint():
                self._stack.close()
            raise SourceError(f"listing {self.root} on {self.ssh.target} ended early")
        listing, self._leftover = found
        root, entries, skipped = self._parse(listing, warn=True)
        if root is None:
            raise SourceError(f"the files path {self.root} on {self.ssh.target} is not a folder")
        return root, _drain(in_manifest_order(entries)), skipped

    def read(
        self, entries: list[Entry], storer: Storer, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, Entry], set[bytes]]:
        done: dict[bytes, Entry] = {}
        vanished: set[bytes] = set()
        wanted = {entry.path: entry for entry in entries}
        for attempt in range(1, READ_ATTEMPTS + 1):
            if attempt == 1:
                headers, status = self._first_tar(wanted, storer, progress)
            elif not wanted:
                break
            else:
                headers, status = self._tar(wanted, storer, progress)
            if status == 0 and headers.all_as_listed(wanted):
                done.update(wanted)  # tar saw exactly what was listed and reported no change: done
                wanted = {}
                break
            # Something moved (tar status 1, a missing member or a header unlike the listing): list again.
            current = {entry.path: entry for entry in self._listing() if entry.type == FILE}
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

    def _first_tar(
        self, wanted: dict[bytes, Entry], storer: Storer, progress: Callable[[int], None]
    ) -> tuple[_Members, int]:
        """The tar half of the command scan() started: send the names, read the archive."""
        self._names.put(_names(wanted))
        self._names.put(None)
        headers = self._parse_tar(_Prefixed(self._leftover, self._output), wanted, storer, progress)
        with _tool_hint():
            self._stack.close()  # waits for the command and checks its status
        return headers, self._output.exit_status or 0

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


def _read_until_sentinel(stream: Any) -> tuple[bytes, bytes] | None:
    """Read find's records up to the sentinel record; returns (listing, what came after it).
    The sentinel counts only where a record starts (a multiple of the field count of NULs
    before it), so a file named like it cannot end the listing early."""
    buffer = bytearray()
    width = len(FIELDS)
    searched = 0
    while True:
        data = stream.read1(1 << 16)
        if not data:
            return None
        buffer += data
        at = searched
        while (at := buffer.find(SENTINEL + b"\0", at)) >= 0:
            if (at == 0 or buffer[at - 1] == 0) and buffer.count(0, 0, at) % width == 0:
                return bytes(buffer[:at]), bytes(buffer[at + len(SENTINEL) + 1 :])
            at += 1
        searched = max(0, len(buffer) - len(SENTINEL))


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
