"""List and read a file tree on the source's SSH host in a constant number of round trips.

1. one ``find -printf`` lists every entry with its metadata (NUL-separated: any name survives);
2. one GNU ``tar`` streams only the files that changed since the previous snapshot, their
   names fed on stdin (NUL-separated, verbatim: no quoting, no option injection);
3. when tar reports a change (status 1), misses a file, or a member's header differs from the
   listing, one more listing finds what changed; those files go round again (at most
   READ_ATTEMPTS times), then the capture fails naming them.
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Callable
from typing import Any

from ..errors import SourceError
from .capture import PACK_FILE_BYTES, READ_ATTEMPTS, Storer
from .tree import DIR, FILE, SYMLINK, Entry, Excluder, join

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
    sign = -1 if seconds.startswith(b"-") else 1
    return int(seconds) * 1_000_000_000 + sign * int((fraction[:9] or b"0").ljust(9, b"0"))


def parse_listing(output: bytes) -> tuple[dict[str, Any] | None, list[Entry], list[bytes]]:
    """Records of find's output → (root attributes, entries, skipped special files)."""
    fields = output.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    width = len(FIELDS)
    if len(fields) % width:
        raise SourceError("the remote file listing is truncated or garbled (find -printf)")
    root = None
    entries: list[Entry] = []
    skipped: list[bytes] = []
    for i in range(0, len(fields), width):
        kind, mode, uid, gid, size, mtime, ctime, ino, nlink, dev, blocks, path, target = fields[i : i + width]
        if path == b"":
            root = {"mode": int(mode, 8), "uid": int(uid), "gid": int(gid), "mtime_ns": parse_time_ns(mtime)}
            continue
        mapped = TYPES.get(kind)
        if mapped is None:
            skipped.append(path)
            continue
        file_size = int(size) if mapped == FILE else 0
        entries.append(Entry(
            path=path, type=mapped, mode=int(mode, 8), uid=int(uid), gid=int(gid), mtime_ns=parse_time_ns(mtime),
            size=file_size, ino=int(ino), dev=int(dev), nlink=int(nlink), ctime_ns=parse_time_ns(ctime),
            target=target if mapped == SYMLINK else b"",
            sparse=mapped == FILE and file_size > 0 and int(blocks) * 512 < file_size,
        ))
    return root, entries, skipped


class RemoteTree:
    def __init__(self, ssh: Any, root: str, excluded: Excluder) -> None:
        self.ssh = ssh
        self.root = root
        self.excluded = excluded

    def _listing(self, *, warn: bool = False) -> tuple[dict[str, Any] | None, list[Entry], list[bytes]]:
        # -H: follow the root if it is a symlink, never below it.
        output = self.ssh.run(["find", "-H", self.root, "-printf", FIND_FORMAT])
        root, entries, skipped = parse_listing(output)
        excluded_dirs: set[bytes] = set()
        out = []
        for entry in entries:  # find lists a folder before what it holds
            if entry.path.rpartition(b"/")[0] in excluded_dirs or self.excluded(entry.path):
                if entry.type == DIR:
                    excluded_dirs.add(entry.path)
                continue
            out.append(entry)
        special = [p for p in skipped if not self.excluded(p)]
        for path in special if warn else ():
            log.warning("skipping special file %s on %s (sockets, FIFOs and devices are not copied)",
                        os.fsdecode(join(os.fsencode(self.root), path)), self.ssh.target)
        return root, out, special

    def list(self) -> tuple[dict[str, Any], list[Entry], list[bytes]]:
        root, entries, skipped = self._listing(warn=True)
        if root is None:
            raise SourceError(f"the files path {self.root} on {self.ssh.target} is not a folder")
        return root, entries, skipped

    def read(
        self, entries: list[Entry], storer: Storer, *, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, Entry], set[bytes]]:
        done: dict[bytes, Entry] = {}
        vanished: set[bytes] = set()
        wanted = {entry.path: entry for entry in entries}
        for attempt in range(1, READ_ATTEMPTS + 1):
            if not wanted:
                break
            headers, status = self._tar(wanted, storer, progress)
            if status == 0 and all(headers.get(path) == _header_key(entry) for path, entry in wanted.items()):
                done.update(wanted)  # tar saw exactly what was listed and reported no change: done
                wanted = {}
                break
            # Something moved (tar status 1, a missing member or a header unlike the listing): list again.
            _, now, _ = self._listing()
            current = {entry.path: entry for entry in now if entry.type == FILE}
            changed: dict[bytes, Entry] = {}
            for path, entry in wanted.items():
                fresh = current.get(path)
                if fresh is None:
                    log.warning("%s on %s was removed while the snapshot ran: left out",
                                os.fsdecode(path), self.ssh.target)
                    vanished.add(path)
                    continue
                if path in headers and _same(fresh, entry) and headers[path][0] == entry.size:
                    done[path] = entry
                    continue
                if path not in headers and _same(fresh, entry):
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

    def _tar(
        self, wanted: dict[bytes, Entry], storer: Storer, progress: Callable[[int], None]
    ) -> tuple[dict[bytes, tuple[int, int]], int]:
        """One remote tar of ``wanted``; returns each member's (size, mtime seconds) and tar's status."""
        names = b"".join(b"./" + path + b"\0" for path in wanted)
        headers: dict[bytes, tuple[int, int]] = {}
        # GNU tar exits 1 when a file changed or vanished while read: the caller lists again then.
        with self.ssh.stream(["tar", "-C", self.root, *TAR_OPTIONS], stdin=names, ok_status=(0, 1)) as stream:
            try:
                archive = tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")
                for member in archive:
                    if not member.isreg():
                        continue
                    path = os.fsencode(member.name).removeprefix(b"./")
                    if path not in wanted:
                        raise SourceError(f"remote tar sent an unexpected member {member.name!r}")
                    handle = archive.extractfile(member)
                    assert handle is not None
                    if member.size < PACK_FILE_BYTES:
                        storer.small(path, handle.read())
                    else:
                        storer.large(path, handle.read)
                    headers[path] = (member.size, int(member.mtime))
                    progress(member.size)
            except tarfile.TarError as exc:
                raise SourceError(f"the tar stream from {self.ssh.target} is damaged: {exc}") from exc
        return headers, getattr(stream, "exit_status", 0) or 0


def _header_key(entry: Entry) -> tuple[int, int]:
    return entry.size, entry.mtime_ns // 1_000_000_000


def _same(a: Entry, b: Entry) -> bool:
    return (a.size, a.mtime_ns, a.ctime_ns, a.ino) == (b.size, b.mtime_ns, b.ctime_ns, b.ino)
