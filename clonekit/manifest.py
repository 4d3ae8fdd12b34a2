"""Snapshot manifests: what a snapshot is made of. A snapshot exists exactly when its manifest does.

Convention for every section (database, files, services): a chunk reference is an object
``{"id": <64 hex>, "size": n}`` inside a list under a key named ``"chunks"``. ``chunk_ids()``
collects them all, so prune and verify need not know the sections' shapes.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from .errors import IntegrityError

FORMAT_VERSION = 2  # 2: files sections may keep their entries in tree chunks (clonekit.files/2)
CHUNK_ID = re.compile(r"^[0-9a-f]{64}$")
SNAPSHOT_ID = re.compile(r"^[a-z0-9][a-z0-9-]*-\d{8}-\d{6}-[0-9a-f]{4,}$")


MAX_SHAPES = 256  # distinct key sets whose position maps are shared (a few in practice)
_SHAPES: dict[tuple[str, ...], dict[str, int]] = {}
ENTRY_TYPES = frozenset(("file", "dir", "symlink", "hardlink"))  # clonekit.files.tree's ENTRY types


class Record(Mapping[str, Any]):
    """A JSON object of a manifest, read-only, in about a third of a dict's memory.

    A files section holds one entry per file from the capture to the commit, and every manifest
    read back (the previous snapshot's, the one a clone restores) as many: as dicts parsed from
    JSON they took about 1.3 KB each, so a snapshot of a 100,000-file tree peaked over 300 MiB
    (docs/benchmarks.md). A record keeps its values in one tuple beside a position map shared by
    every record of the same keys, and a ``chunks`` list as a tuple of references shared with the
    other files of its pack. It reads like the dict it replaces: ``chunks`` comes out as a new
    list, equality is a dict's, and ``canonical_json`` writes the same bytes.
    """

    __slots__ = ("_at", "_text", "_values")

    def __init__(self, item: Mapping[str, Any], text: bytes | None = None) -> None:
        self._text = text  # its canonical JSON when read from a tree chunk: written again as it was
        keys = tuple(item)
        at = _SHAPES.get(keys)
        if at is None:
            at = {key: index for index, key in enumerate(keys)}
            if len(_SHAPES) < MAX_SHAPES:
                _SHAPES[keys] = at
        self._at = at
        values = list(item.values())
        if "chunks" in at and isinstance(values[at["chunks"]], list):
            values[at["chunks"]] = tuple(values[at["chunks"]])
        if "type" in at and values[at["type"]] in ENTRY_TYPES:
            values[at["type"]] = sys.intern(values[at["type"]])
        self._values = tuple(values)

    @property
    def text(self) -> bytes | None:
        """The canonical JSON this record was read from (``clonekit.files.entries``), if any."""
        return self._text

    def __getitem__(self, key: str) -> Any:
        return self._value(key, self._at[key])

    def get(self, key: str, default: Any = None) -> Any:
        # Mapping.get goes through __getitem__ and a KeyError: a nightly snapshot asks each of
        # 100,000 previous entries for six values (unchanged files) at half the cost this way.
        index = self._at.get(key)
        return default if index is None else self._value(key, index)

    def values_of(self, keys: Sequence[str]) -> list[Any]:
        """The values of ``keys`` as held (None where missing; ``chunks`` as its shared tuple, not
        a new list): one call where a nightly snapshot compares 100,000 entries' values."""
        at, values = self._at, self._values
        return [values[at[key]] if key in at else None for key in keys]

    def _value(self, key: str, index: int) -> Any:
        value = self._values[index]
        return list(value) if key == "chunks" and isinstance(value, tuple) else value

    def __contains__(self, key: object) -> bool:
        return key in self._at

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record) and other._at is self._at:
            return self._values == other._values
        return super().__eq__(other)

    def __hash__(self) -> int:  # read-only: SharedRecords keeps one of equal records (same keys, same order)
        # Equal records have equal values, so a hash of some of them is enough: a file's path and
        # times tell entries apart, in a sixth of the time of all its values (200,000 per snapshot).
        at, values = self._at, self._values
        path, mtime = at.get("path"), at.get("mtime_ns")
        if path is not None and mtime is not None:
            return hash((id(at), values[path], values[mtime]))
        return hash((id(at), *[value for value in values if type(value) in _SCALARS]))

    def __repr__(self) -> str:
        return f"Record({dict(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Record, (dict(self),))


class SharedRecords:
    """What the manifests one process reads have in common, held once: ``json.loads``' object
    hook for a manifest (``hook``). A chunk reference ``{"id", "size"}`` read before comes back as
    that same object (the files of a pack share one), and a file tree's entry as a ``Record``,
    the one read before when an earlier manifest held the same entry: the nightly snapshots of a
    tree are mostly the same files, so a repository that reads 30 of them (``snapshots``,
    ``prune``) holds each unchanged entry once, not 30 times (docs/benchmarks.md). Other objects
    stay dicts."""

    def __init__(self) -> None:
        self.refs: dict[tuple[str, int], dict[str, Any]] = {}
        self.records: dict[Record, Record] = {}

    def hook(self, item: dict[str, Any]) -> Any:
        if len(item) == 2 and isinstance(item.get("id"), str) and isinstance(item.get("size"), int):
            return self.refs.setdefault((item["id"], item["size"]), item)
        if _is_entry(item):
            return self.shared(Record(item))
        return item

    def shared(self, record: Record) -> Record:
        try:
            known = self.records.setdefault(record, record)
        except TypeError:  # a value that has no hash (a nested object of a later format): not shared
            return record
        # equal is not enough: true and 1, 1 and 1.0 compare equal and are written differently
        if known is not record and list(map(type, known._values)) != list(map(type, record._values)):
            return record
        return known

    def adopt(self, manifest: Manifest) -> None:
        """Share the entries of a manifest made or read elsewhere from now on."""
        for section in manifest.files:
            for item in section.get("entries", ()):
                if isinstance(item, Record):
                    self.shared(item)


def _is_entry(item: Mapping[str, Any]) -> bool:
    """A file tree's entry (``clonekit.files.tree``), as a manifest holds it."""
    return (item.get("type") in ENTRY_TYPES and "mode" in item and "mtime_ns" in item and "uid" in item
            and ("path" in item or "path_b64" in item))


class HeadReader:
    """``json.loads``' object hook that reads a manifest's head (``ManifestHead``): a file tree's
    entry is let go as soon as its chunk references are taken, so a manifest of 100,000 files
    never holds 100,000 objects. ``pairs`` is shared by the heads of one repository: a chunk
    referenced by 30 snapshots is one ``(id, size)`` pair, and each head holds a tuple of them."""

    def __init__(self, pairs: dict[tuple[str, int], tuple[str, int]] | None = None) -> None:
        self.pairs = {} if pairs is None else pairs
        self.found: dict[tuple[str, int], None] = {}  # this manifest's references, in order, once each

    def hook(self, item: dict[str, Any]) -> Any:
        if "mtime_ns" not in item or not _is_entry(item):
            return item
        # collect_chunk_refs(item), inlined for the usual entry (scalars and one "chunks" list):
        # a manifest of 100,000 files is read in half the time.
        for key, value in item.items():
            if type(value) in _SCALARS:
                continue
            if key == "chunks" and isinstance(value, (list, tuple)):
                for ref in value:
                    chunk_id = ref.get("id") if isinstance(ref, Mapping) else None
                    if isinstance(chunk_id, str):
                        size = ref["size"] if isinstance(ref.get("size"), int) else -1
                        pair = (chunk_id, size)
                        self.found.setdefault(self.pairs.setdefault(pair, pair))
                    else:
                        self.take(collect_chunk_refs(ref))
            else:
                self.take(collect_chunk_refs(value))
        return None

    def take(self, refs: Mapping[str, int]) -> None:
        for pair in refs.items():
            self.found.setdefault(self.pairs.setdefault(pair, pair))

    def refs(self) -> tuple[tuple[str, int], ...]:
        """The references found, in one order whatever the order of the manifest."""
        return tuple(sorted(self.found))


def new_snapshot_id(source: str, at: datetime) -> str:
    """Readable, sortable within a source, unique: ``prod-20261126-053012-7f3a``."""
    at = at.astimezone(UTC)
    return f"{source}-{at:%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same value always gives the same bytes."""
    return _CANONICAL.encode(value).encode()


def canonical_json_pieces(value: Any) -> Iterator[bytes]:
    """``canonical_json(value)`` in pieces, the same bytes once joined: objects and arrays are
    opened one level at a time, and each leaf (a scalar, a ``Record``, a small object of scalars
    such as a chunk reference) is encoded whole. A large manifest is written without its whole
    text in memory (``Repository.encode_pieces``)."""
    if _is_leaf(value) or (len(value) <= 8 and all(_is_leaf(v) for v in _children(value))):
        yield canonical_json(value)
    elif isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            yield canonical_json(value)  # json's own key conversion and order
            return
        yield b"{"
        for index, key in enumerate(sorted(value)):
            yield (b"," if index else b"") + canonical_json(key) + b":"
            yield from canonical_json_pieces(value[key])
        yield b"}"
    else:
        yield b"["
        for index, item in enumerate(value):
            if index:
                yield b","
            yield from canonical_json_pieces(item)
        yield b"]"


def _is_leaf(value: Any) -> bool:
    return isinstance(value, Record) or not isinstance(value, (Mapping, list, tuple))


def _children(value: Mapping[str, Any] | list[Any] | tuple[Any, ...]) -> Any:
    return value.values() if isinstance(value, Mapping) else value


def _jsonable(value: Any) -> Any:
    if type(value) is Record:  # its chunks tuple is written as the list it was
        return dict(zip(value._at, value._values, strict=True))
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# one encoder for every call (json.dumps with options makes a new one each time: a manifest calls it per file)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _add_refs(refs: Any, found: dict[str, int], stack: list[Any]) -> None:
    for ref in refs:
        if isinstance(ref, Mapping) and isinstance(ref.get("id"), str):
            size = ref.get("size")
            found[ref["id"]] = size if isinstance(size, int) else -1
        else:
            stack.append(ref)


def collect_chunk_refs(value: Any, into: dict[str, int] | None = None) -> dict[str, int]:
    """Every ``{"id", "size"}`` object in a list under a ``"chunks"`` key, at any depth: id -> size."""
    found: dict[str, int] = {} if into is None else into
    stack = [value]
    while stack:
        node = stack.pop()
        if type(node) is Record:  # one per file: its chunks tuple read in place, its scalars skipped
            chunks = node._at.get("chunks")
            for index, child in enumerate(node._values):
                if type(child) in _SCALARS:
                    continue
                if index == chunks and isinstance(child, tuple):
                    _add_refs(child, found, stack)
                elif isinstance(child, (Mapping, list, tuple)):
                    stack.append(child)
        elif isinstance(node, Mapping):
            for key, child in node.items():
                if key == "chunks" and isinstance(child, (list, tuple)):
                    _add_refs(child, found, stack)
                elif isinstance(child, (Mapping, list, tuple)):
                    stack.append(child)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return found


@dataclass(frozen=True, repr=False)
class _Described:
    """What users see of a snapshot, the same whether read whole (``Manifest``) or as its head."""

    id: str
    source: str
    project: str
    created_at: datetime  # UTC
    tool_version: str
    rules_digest: str
    database: Mapping[str, Any] | None
    services: Mapping[str, Any] | None

    _: KW_ONLY  # keyword-only fields with defaults: each kind adds its own fields without one
    stats: Mapping[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError(f"{type(self).__name__}.created_at must be timezone-aware (UTC)")

    def __repr__(self) -> str:  # sections can be large; keep reprs short
        return f"{type(self).__name__}(id={self.id!r}, source={self.source!r}, created_at={_iso(self.created_at)!r})"

    @property
    def file_trees(self) -> int:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """What users see of a snapshot (no chunk lists): ``clonekit snapshot``/``snapshots --json``."""
        tables = (self.database or {}).get("tables") or []
        return {
            "id": self.id,
            "source": self.source,
            "project": self.project,
            "created_at": self.created_at.isoformat(),
            "tool_version": self.tool_version,
            "rules_digest": self.rules_digest,
            "tables": len(tables),
            "file_trees": self.file_trees,
            "services": sorted(((self.services or {}).get("services") or {}).keys()),
            "stats": dict(self.stats),
            "sanitization": self.sanitization(),
        }

    def sanitization(self) -> dict[str, Any]:
        """What sanitization did, as the manifest records it: the rule of each table it changed
        (name and origin only), the rows those tables hold, and the strict-mode verdict."""
        tables = (self.database or {}).get("tables") or []
        changed = [t for t in tables if t.get("policy", "copy") != "copy"]
        emptied = [t for t in changed if t.get("rows_policy") == "none"]
        strict = self.stats.get("strict")
        return {
            "rules": {str(t.get("name")): str(t.get("policy")) for t in changed},
            "tables_sanitized": len(changed) - len(emptied),
            "tables_emptied": len(emptied),
            "rows_transformed": sum(int(t.get("rows") or 0) for t in changed if t not in emptied),
            # Strict mode refuses a snapshot with uncovered personal data: a stored one passed it.
            "strict": "not recorded" if strict is None else "passed" if strict else "off",
        }


@dataclass(frozen=True, repr=False)
class Manifest(_Described):
    files: tuple[Mapping[str, Any], ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "files", tuple(self.files))

    def chunk_ids(self) -> frozenset[str]:
        return frozenset(self.chunk_refs())

    def chunk_refs(self) -> dict[str, int]:
        """id -> plain size (-1 when a reference carries no size) of every chunk referenced."""
        return dict(self._refs)

    def with_stats(self, **stats: int) -> Manifest:
        """This manifest with ``stats`` set, its chunk references kept (not walked again)."""
        out = replace(self, stats={**self.stats, **stats})
        if "_refs" in self.__dict__:
            out.__dict__["_refs"] = self.__dict__["_refs"]
        return out

    @cached_property
    def _refs(self) -> dict[str, int]:  # a walk of every entry: 0.9 s for 100,000 files, once
        found: dict[str, int] = {}
        for section in (self.database, self.services, *self.files):
            if section is not None:
                collect_chunk_refs(section, found)
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "id": self.id,
            "source": self.source,
            "project": self.project,
            "created_at": _iso(self.created_at),
            "tool_version": self.tool_version,
            "rules_digest": self.rules_digest,
            "database": self.database,
            "files": list(self.files),
            "services": self.services,
            "stats": dict(self.stats),
        }

    @property
    def file_trees(self) -> int:
        return len(self.files)

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    def json_pieces(self) -> Iterator[bytes]:
        """``to_json()`` in pieces (``canonical_json_pieces``): the same bytes once joined."""
        return canonical_json_pieces(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str, shared: SharedRecords | None = None) -> Manifest:
        raw = _load_manifest(data, (shared or SharedRecords()).hook)
        return cls(**_described(raw, lambda: {"files": tuple(raw.get("files") or ())}))


@dataclass(frozen=True, repr=False)
class ManifestHead(_Described):
    """A snapshot without its file trees' entries: what listing and retention read (``clonekit
    snapshots``, ``prune``, the dashboard). It holds every chunk the whole manifest references, so
    prune decides from heads alone, in memory that does not grow with the files of a snapshot
    (docs/benchmarks.md). Restoring needs the ``Manifest``: the types keep them apart."""

    trees: int  # file trees in the snapshot
    refs: tuple[tuple[str, int], ...]  # (chunk id, plain size or -1) of the whole manifest, each once, sorted

    @property
    def file_trees(self) -> int:
        return self.trees

    def chunk_ids(self) -> frozenset[str]:
        return frozenset(chunk_id for chunk_id, _ in self.refs)

    def chunk_refs(self) -> dict[str, int]:
        return dict(self.refs)

    @classmethod
    def of(cls, manifest: Manifest, pairs: dict[tuple[str, int], tuple[str, int]] | None = None) -> ManifestHead:
        """The head of a manifest already read whole."""
        reader = HeadReader(pairs)
        reader.take(manifest.chunk_refs())
        common = {f.name: getattr(manifest, f.name) for f in fields(_Described)}
        return cls(**common, trees=len(manifest.files), refs=reader.refs())

    @classmethod
    def from_json(cls, data: bytes | str, pairs: dict[tuple[str, int], tuple[str, int]] | None = None) -> ManifestHead:
        reader = HeadReader(pairs)
        raw = _load_manifest(data, reader.hook)

        def rest() -> dict[str, Any]:
            files = tuple(raw.get("files") or ())
            for section in (raw.get("database"), raw.get("services"), *files):  # what the entries did not hold
                if section is not None:
                    reader.take(collect_chunk_refs(section))
            return {"trees": len(files), "refs": reader.refs()}

        return cls(**_described(raw, rest))


def _load_manifest(data: bytes | str, hook: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    try:
        raw = json.loads(data, object_hook=hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise IntegrityError("manifest is not a JSON object")
    version = raw.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise IntegrityError(f"manifest {raw.get('id')!r} has no valid format_version")
    if version > FORMAT_VERSION:
        raise IntegrityError(
            f"snapshot {raw.get('id')!r} uses format {version}; this clonekit reads up to {FORMAT_VERSION}",
            hint="upgrade clonekit",
        )
    return raw


def _described(raw: dict[str, Any], rest: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A manifest's fields from its parsed JSON, ``rest()`` adding the ones of its kind; a missing
    or mistyped field is an ``IntegrityError``."""
    try:
        return {
            "id": raw["id"],
            "source": raw["source"],
            "project": raw.get("project", ""),
            "created_at": datetime.fromisoformat(raw["created_at"].replace("Z", "+00:00")).astimezone(UTC),
            "tool_version": raw.get("tool_version", ""),
            "rules_digest": raw.get("rules_digest", ""),
            "database": raw.get("database"),
            "services": raw.get("services"),
            "stats": raw.get("stats") or {},
            "format_version": raw["format_version"],
            **rest(),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntegrityError(f"manifest {raw.get('id')!r} is malformed: {exc!r}") from exc
