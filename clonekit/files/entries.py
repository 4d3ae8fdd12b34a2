"""A files section's entries, in the manifest (``clonekit.files/1``) or in chunks of the store
(``clonekit.files/2``, what a capture writes).

In ``clonekit.files/1`` the manifest held every entry of a tree. So reading a snapshot parsed
every entry, and a capture held every entry until its commit: memory grew with the number of
files, about 1.1 MiB per 1,000 (docs/benchmarks.md). In ``clonekit.files/2`` the entries, one
canonical JSON object per line in the manifest's order (``tree.py``), are cut into chunks at
entry boundaries chosen by content (a line's CRC-32), and stored like any chunk: compressed,
checksummed, verified on read, and deduplicated, so a stretch of the tree that did not change is
the same chunk as last night. The section lists those chunks (``tree.chunks``) and every chunk the
entries reference, once each (``content.chunks``). Prune, verify and the manifest's heads thus
see every chunk a snapshot needs without reading its tree (the ``"chunks"`` convention of
``manifest.py``)::

    {"kind": "files", "format": "clonekit.files/2", "path": ..., (the fields of clonekit.files/1
     but "entries"), "tree": {"chunks": [{"id", "size"}, ...]}, "content": {"chunks": [...]}}
"""

from __future__ import annotations

import itertools
import json
import re
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from ..errors import IntegrityError
from ..manifest import Record, canonical_json
from .tree import FILE, SECTION_FORMAT, chunk_refs

TREE_FORMAT = "clonekit.files/2"
READABLE_FORMATS = (SECTION_FORMAT, TREE_FORMAT)

# A tree chunk ends after an entry whose line's CRC-32 has its low 10 bits zero (one line in
# 1,024: about 256 KiB of entries) once it holds TREE_MIN_BYTES, and before an entry that would take it past TREE_MAX_BYTES.
# Few store objects per snapshot (about 100 for 100,000 files), one chunk's entries in memory
# at a time when read, and a boundary that depends on the entries around it, not on their
# position: an inserted file changes the chunk it lands in, not every chunk after it.
TREE_MIN_BYTES = 64 * 1024
TREE_MAX_BYTES = 1024 * 1024
TREE_CUT_MASK = 0x3FF
TREE_READ_AHEAD_BYTES = 2 * 1024 * 1024


class _Sink(Protocol):
    def put(self, data: bytes) -> Any: ...  # -> ChunkRef (has .to_json())


class ChunkReader(Protocol):
    def iter_chunks(self, ids: Iterable[str], *, workers: int = ..., read_ahead_bytes: int = ...) -> Iterator[bytes]: ...


class EntryWriter:
    """Entries in, tree chunks out: ``add`` each entry in the manifest's order, then ``finish``
    gives the section's ``tree`` and ``content`` fields. At most one chunk's text is held."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.tree: list[Any] = []
        self.content: dict[str, int] = {}

    def add(self, item: Mapping[str, Any]) -> None:
        # canonical JSON escapes every newline of a name; an unchanged entry is written as it was
        # read (``parse_tree_chunk``): 100,000 entries are not encoded again each night
        text = item.text if isinstance(item, Record) else None
        line = (text if text is not None else canonical_json(item)) + b"\n"
        for ref in chunk_refs(item):  # a file entry's only references (``collect_chunk_refs``' convention)
            size = ref.get("size")
            self.content[ref["id"]] = size if type(size) is int else -1
        if len(self.buffer) + len(line) > TREE_MAX_BYTES:
            self._cut()
        self.buffer += line
        if len(self.buffer) >= TREE_MIN_BYTES and zlib.crc32(line) & TREE_CUT_MASK == 0:
            self._cut()

    def _cut(self) -> None:
        if self.buffer:
            self.tree.append(self.sink.put(bytes(self.buffer)).to_json())
            self.buffer = bytearray()

    def finish(self) -> dict[str, Any]:
        self._cut()
        content = [{"id": chunk_id, "size": size} for chunk_id, size in sorted(self.content.items())]
        return {"tree": {"chunks": self.tree}, "content": {"chunks": content}}


def section_format(section: Mapping[str, Any]) -> str:
    """The section's format, refused with a clear message when this clonekit cannot read it."""
    form = section.get("format", SECTION_FORMAT)
    if form not in READABLE_FORMATS:
        raise IntegrityError(
            f"the files section of {section.get('path')!r} uses format {form!r}; "
            f"this clonekit reads {', '.join(READABLE_FORMATS)}",
            hint="upgrade clonekit",
        )
    return str(form)


def iter_entries(section: Mapping[str, Any], store: ChunkReader | None, *, texts: bool = True) -> Iterator[Mapping[str, Any]]:
    """The section's entries in the manifest's order, whatever its format: from the manifest
    (``clonekit.files/1``) or read from ``store`` one tree chunk at a time (``clonekit.files/2``).
    A damaged or missing tree chunk raises IntegrityError (the repository checks each chunk).
    ``texts``: each record keeps the line it was read from (``parse_tree_chunk``)."""
    for entries in iter_tree_chunks(section, store, texts=texts):
        yield from entries


def iter_tree_chunks(section: Mapping[str, Any], store: ChunkReader | None,
                     refs: list[Mapping[str, Any]] | None = None, *, texts: bool = True) -> Iterator[list[Mapping[str, Any]]]:
    """``iter_entries`` a tree chunk at a time (``refs``: only these of the section's tree
    chunks); a section of ``clonekit.files/1`` is one list of all its entries."""
    if section_format(section) == SECTION_FORMAT:
        entries = section.get("entries", [])
        yield entries if isinstance(entries, list) else list(entries)  # whole in the manifest already
        return
    for data in _tree_data(section, store, tree_refs(section) if refs is None else refs):
        yield parse_tree_chunk(data, texts=texts)


def _tree_data(section: Mapping[str, Any], store: ChunkReader | None, refs: list[Mapping[str, Any]]) -> Iterator[bytes]:
    """The text of each of ``refs``, tree chunks of a ``clonekit.files/2`` section, in order."""
    if store is None:
        raise ValueError("a clonekit.files/2 section's entries are read from the store: pass it")
    ids = [ref["id"] for ref in refs]
    for ref, data in zip(refs, store.iter_chunks(ids, workers=2, read_ahead_bytes=TREE_READ_AHEAD_BYTES), strict=True):
        if len(data) != ref["size"]:
            raise IntegrityError(f"tree chunk {ref['id']} of {section.get('path')!r} has {len(data)} bytes, "
                                 f"expected {ref['size']}")
        yield data


def parse_tree_chunk(data: bytes, *, texts: bool = True) -> list[Mapping[str, Any]]:
    """One tree chunk's entries (JSON lines), as compact records; the files of a pack share one
    chunk reference object, as they do in a manifest read whole. With ``texts`` each record keeps
    its line (``Record.text``): written again as is when the entry did not change (``EntryWriter``)."""
    refs: dict[tuple[str, int], Any] = {}

    def hook(item: dict[str, Any]) -> Any:
        if len(item) == 2 and isinstance(item.get("id"), str) and isinstance(item.get("size"), int):
            return refs.setdefault((item["id"], item["size"]), item)
        return item

    if not data.endswith(b"\n"):
        raise IntegrityError("a tree chunk does not end with a whole entry: the snapshot is damaged")
    try:
        # one parse per chunk, not per line: the lines joined as a JSON array
        items = json.loads(b"[" + data[:-1].replace(b"\n", b",") + b"]", object_hook=hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"a tree chunk is not valid JSON lines: {exc}") from exc
    out: list[Mapping[str, Any]] = []
    lines: Iterable[bytes | None] = data[:-1].split(b"\n") if texts else itertools.repeat(None, len(items))
    for item, text in zip(items, lines, strict=True):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise IntegrityError("a tree chunk holds something that is not a file entry: the snapshot is damaged")
        out.append(Record(item, text))
    return out


def tree_refs(section: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    refs = (section.get("tree") or {}).get("chunks")
    if not isinstance(refs, list) or not all(
        isinstance(ref, Mapping) and isinstance(ref.get("id"), str) and isinstance(ref.get("size"), int) for ref in refs
    ):
        raise IntegrityError(f"the files section of {section.get('path')!r} has no valid tree chunk list: "
                             "the manifest is damaged")
    return list(refs)


def tree_chunk_ids(section: Mapping[str, Any]) -> list[str]:
    """The ids of the chunks that hold the section's entries (none in ``clonekit.files/1``)."""
    return [] if section_format(section) == SECTION_FORMAT else [ref["id"] for ref in tree_refs(section)]


class PreviousContents:
    """Where each content of the previous snapshot's tree is, by SHA-256: a file moved or copied
    since is not stored again (``Storer``). Compact: 8 bytes per file (48 bits of the hash and
    the tree chunk that holds its entry, in one sorted array), the entry itself read back from
    that chunk on a hit. A table of 100,000 entries by hash held them all (about 50 MiB).
    Built on first ``get`` (an unchanged tree never pays for it); empty when the tree cannot be
    read (``on_error`` is told; the content is then stored again, which is always safe)."""

    def __init__(self, section: Mapping[str, Any] | None, store: ChunkReader | None,
                 on_error: Callable[[IntegrityError], None] | None = None) -> None:
        self.section = section
        self.store = store
        self._on_error = on_error
        self._keys: array[int] | None = None
        self._cached: tuple[int, list[Mapping[str, Any]]] | None = None  # the last tree chunk read back

    def get(self, sha: str) -> Mapping[str, Any] | None:
        keys = self._index()
        wanted = _prefix(sha)
        at = bisect_left(keys, wanted << 16)
        while at < len(keys) and keys[at] >> 16 == wanted:
            try:
                entries = self._chunk_entries(keys[at] & 0xFFFF)
            except IntegrityError:  # gone since the index was built: stored again
                return None
            for item in entries:
                if item.get("sha256") == sha and item.get("type") == FILE:
                    return item
            at += 1
        return None

    def _index(self) -> array[int]:
        if self._keys is None:
            keys: list[int] = []
            try:
                for number, prefixes in enumerate(self._prefixes()):
                    if number > 0xFFFF:
                        raise IntegrityError("more tree chunks than the index numbers")  # 16 GB of entries
                    keys.extend(prefix << 16 | number for prefix in prefixes)
            except IntegrityError as exc:
                if self._on_error is not None:
                    self._on_error(exc)
                keys = []
            keys.sort()
            self._keys = array("Q", keys)
        return self._keys

    def _prefixes(self) -> Iterator[list[int]]:
        """The hash prefixes of the files of each tree chunk (``_prefix``). A tree chunk's text is
        searched, not parsed: in canonical JSON a ``"sha256":"`` key can only be a file entry's
        (a quote inside a name is escaped), and a wrong match only costs a look that finds nothing."""
        if self.section is None:
            return
        if section_format(self.section) == SECTION_FORMAT:
            yield [_prefix(item["sha256"]) for item in self.section.get("entries", ())
                   if item.get("type") == FILE and _is_sha(item.get("sha256"))]
            return
        for data in _tree_data(self.section, self.store, tree_refs(self.section)):
            yield [int(found, 16) for found in _SHA_KEY.findall(data)]

    def _chunk_entries(self, number: int) -> list[Mapping[str, Any]]:
        if self._cached is None or self._cached[0] != number:
            assert self.section is not None
            one = None if section_format(self.section) == SECTION_FORMAT else [tree_refs(self.section)[number]]
            self._cached = (number, next(iter_tree_chunks(self.section, self.store, one)))
        return self._cached[1]


_SHA_KEY = re.compile(rb'"sha256":"([0-9a-f]{12})[0-9a-f]{52}"')


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64


def _prefix(sha: str) -> int:
    try:
        return int(sha[:12], 16)
    except ValueError:
        return -1 & 0xFFFFFFFFFFFF  # not hex: a key no real hash has but the same one, found by get and missed
