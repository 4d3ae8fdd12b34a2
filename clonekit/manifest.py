"""Snapshot manifests: what a snapshot is made of. A snapshot exists exactly when its manifest does.

Convention for every section (database, files, services): a chunk reference is an object
``{"id": <64 hex>, "size": n}`` inside a list under a key named ``"chunks"``. ``chunk_ids()``
collects them all, so prune and verify need not know the sections' shapes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import IntegrityError

FORMAT_VERSION = 1
CHUNK_ID = re.compile(r"^[0-9a-f]{64}$")
SNAPSHOT_ID = re.compile(r"^[a-z0-9][a-z0-9-]*-\d{8}-\d{6}-[0-9a-f]{4,}$")


def new_snapshot_id(source: str, at: datetime) -> str:
    """Readable, sortable within a source, unique: ``prod-20261126-053012-7f3a``."""
    at = at.astimezone(UTC)
    return f"{source}-{at:%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def collect_chunk_refs(value: Any, into: dict[str, int] | None = None) -> dict[str, int]:
    """Every ``{"id", "size"}`` object in a list under a ``"chunks"`` key, at any depth: id -> size."""
    found: dict[str, int] = {} if into is None else into
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, child in node.items():
                if key == "chunks" and isinstance(child, (list, tuple)):
                    for ref in child:
                        if isinstance(ref, Mapping) and isinstance(ref.get("id"), str):
                            size = ref.get("size")
                            found[ref["id"]] = size if isinstance(size, int) else -1
                        else:
                            stack.append(ref)
                elif isinstance(child, (Mapping, list, tuple)):
                    stack.append(child)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return found


@dataclass(frozen=True)
class Manifest:
    id: str
    source: str
    project: str
    created_at: datetime  # UTC
    tool_version: str
    rules_digest: str
    database: Mapping[str, Any] | None
    files: tuple[Mapping[str, Any], ...]
    services: Mapping[str, Any] | None
    stats: Mapping[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("Manifest.created_at must be timezone-aware (UTC)")
        object.__setattr__(self, "files", tuple(self.files))

    def __repr__(self) -> str:  # sections can be large; keep reprs short
        return f"Manifest(id={self.id!r}, source={self.source!r}, created_at={_iso(self.created_at)!r})"

    def chunk_ids(self) -> frozenset[str]:
        return frozenset(self.chunk_refs())

    def chunk_refs(self) -> dict[str, int]:
        """id -> plain size (-1 when a reference carries no size) of every chunk referenced."""
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
            "file_trees": len(self.files),
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

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
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
        try:
            created = datetime.fromisoformat(raw["created_at"].replace("Z", "+00:00")).astimezone(UTC)
            return cls(
                id=raw["id"],
                source=raw["source"],
                project=raw.get("project", ""),
                created_at=created,
                tool_version=raw.get("tool_version", ""),
                rules_digest=raw.get("rules_digest", ""),
                database=raw.get("database"),
                files=tuple(raw.get("files") or ()),
                services=raw.get("services"),
                stats=raw.get("stats") or {},
                format_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"manifest {raw.get('id')!r} is malformed: {exc!r}") from exc
