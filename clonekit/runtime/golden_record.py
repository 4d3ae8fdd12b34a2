"""The golden copy record: the one place that reads and writes ``<state_dir>/golden/SNAPSHOT.json``.

A golden copy is a snapshot loaded once on a preview host, then cloned copy-on-write. The database
becomes an image (``clonekit-golden/<project>-db:<snapshot>``) whose layer holds the loaded,
cleanly shut down data directory; file trees a service mounts become an image of that service
(``files_images``) or golden volumes that previews copy inside the engine. The record (0600) says
what exists and holds the golden copy's credentials (a preview re-keys its accounts to fresh ones
at start), and which tables hold a ``previews.replace`` string (``replace_tables``).

``clonekit.golden`` makes and prunes golden copies; ``clonekit.preview`` finds one here
(``find_golden``) and points its compose document at it (``use_files_images``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PreviewError
from ..private_file import write_private
from .compose import DbCredentials, FileVolume
from .docker import DockerEngine

GOLDEN_FOLDER = "golden"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")
DEFAULT_DATADIR = "/var/lib/mysql"


@dataclass(frozen=True)
class GoldenCopy:
    snapshot_id: str
    db_image: str | None  # None: the snapshot has no database
    datadir: str
    db: DbCredentials | None = field(repr=False)
    volumes: Mapping[str, str] = field(default_factory=dict)  # source path -> golden volume name
    # service -> {"image", "paths" (source paths the image holds), "keys" (compose volume keys)}
    files_images: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # previews.replace key -> the tables holding it; None: not known (a full rewrite is needed)
    replace_tables: Mapping[str, Sequence[str]] | None = None
    # the previews.hooks.after_materialize hooks baked into it: {when, service, run, exit_code, seconds}
    hooks: Sequence[Mapping[str, Any]] = ()
    made_at: str = ""  # ISO 8601 UTC
    # table -> {column: [[primary key values], ...]} of the rows holding one of those keys; a
    # table mapped to None is scanned by its clones (no primary key, or too many such rows)
    replace_rows: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id, "db_image": self.db_image, "datadir": self.datadir,
            "db": None if self.db is None else {"user": self.db.user, "password": self.db.password,
                                                 "root_password": self.db.root_password, "database": self.db.database},
            "volumes": dict(self.volumes),
            "files_images": {k: dict(v) for k, v in self.files_images.items()},
            "replace_tables": None if self.replace_tables is None else {k: list(v) for k, v in self.replace_tables.items()},
            "hooks": [dict(h) for h in self.hooks], "made_at": self.made_at,
            "replace_rows": None if self.replace_rows is None else dict(self.replace_rows),
        }

    def summary(self) -> dict[str, Any]:
        """What ``clonekit golden`` shows: everything but the credentials."""
        data = self.to_json()
        data.pop("db")
        if self.replace_rows is not None:  # (up to 100,000 keys a column: their number, not the keys)
            data["replace_rows"] = {table: None if columns is None else {c: len(keys) for c, keys in columns.items()}
                                    for table, columns in self.replace_rows.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GoldenCopy:
        db = data.get("db")
        replace_tables = data.get("replace_tables")
        replace_rows = data.get("replace_rows")
        return cls(snapshot_id=data["snapshot_id"], db_image=data.get("db_image"), datadir=data.get("datadir") or DEFAULT_DATADIR,
                   db=DbCredentials(**db) if db else None, volumes=dict(data.get("volumes") or {}),
                   files_images=dict(data.get("files_images") or {}),
                   replace_tables=dict(replace_tables) if isinstance(replace_tables, Mapping) else None,
                   hooks=tuple(dict(h) for h in data.get("hooks") or ()), made_at=str(data.get("made_at") or ""),
                   replace_rows=dict(replace_rows) if isinstance(replace_rows, Mapping) else None)

    def file_artifacts(self) -> tuple[str, ...]:
        """The files images, then the golden volumes."""
        return (*(str(i["image"]) for i in self.files_images.values()), *self.volumes.values())


def record_path(state_dir: Path, snapshot_id: str) -> Path:
    return state_dir / GOLDEN_FOLDER / f"{snapshot_id}.json"


def read_record(state_dir: Path, snapshot_id: str) -> GoldenCopy | None:
    """The record of ``snapshot_id`` as written (None when there is none); what it names may be gone."""
    path = record_path(state_dir, snapshot_id)
    try:
        return GoldenCopy.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PreviewError(f"cannot read the golden copy record {path}: {type(exc).__name__}") from exc


def list_records(state_dir: Path) -> list[GoldenCopy]:
    """Every golden copy record of the project, by snapshot id (what they name may be gone)."""
    folder = state_dir / GOLDEN_FOLDER
    ids = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    return [record for snapshot_id in ids if (record := read_record(state_dir, snapshot_id)) is not None]


def write_record(state_dir: Path, golden: GoldenCopy) -> None:
    path = record_path(state_dir, golden.snapshot_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, json.dumps(golden.to_json(), indent=2, sort_keys=True))


def is_complete(engine: DockerEngine, golden: GoldenCopy) -> bool:
    """Everything the record names exists on the engine."""
    if golden.db_image and not engine.exists("image", golden.db_image):
        return False
    if not all(engine.exists("image", i["image"]) for i in golden.files_images.values()):
        return False
    return all(engine.exists("volume", v) for v in golden.volumes.values())


def find_golden(state_dir: Path, engine: DockerEngine, snapshot_id: str) -> GoldenCopy | None:
    """The golden copy of ``snapshot_id`` on this engine, when its database image and volumes exist."""
    golden = read_record(state_dir, snapshot_id)
    if golden is None:
        return None
    if golden.db_image and not engine.exists("image", golden.db_image):
        return None
    if any(not engine.exists("volume", v) for v in golden.volumes.values()):
        return None
    return golden


def table_files(golden: GoldenCopy, database: str, tables: Sequence[str]) -> list[str]:
    """The InnoDB files (``DATADIR/DATABASE/TABLE.ibd``) of ``tables`` in the golden data directory,
    for names the server stores as they are (letters, digits, ``_``: others are encoded); a table
    in another engine, or partitioned, has no such file (``copy_up`` passes over it)."""
    if not _PLAIN_NAME.fullmatch(database):
        return []
    return [f"{golden.datadir.rstrip('/')}/{database}/{table}.ibd" for table in tables if _PLAIN_NAME.fullmatch(table)]


def use_files_images(golden: GoldenCopy, document: dict[str, Any], volumes: Sequence[FileVolume]) -> list[FileVolume]:
    """Point a preview's compose document at the golden files images: each such service runs its
    image without the volumes of the trees the image holds. Returns the file volumes that still
    need filling (or a golden volume copied)."""
    remaining = list(volumes)
    for service_name, item in golden.files_images.items():
        spec = document["services"].get(service_name)
        baked = [v for v in remaining if v.service == service_name and v.source_path in item["paths"]]
        if spec is None or not baked:
            continue
        spec["image"] = item["image"]
        keys = {v.key for v in baked}
        entries = [e for e in spec.get("volumes") or [] if e.split(":", 1)[0] not in keys]
        if entries:
            spec["volumes"] = entries
        else:
            spec.pop("volumes", None)
        for key in keys:
            (document.get("volumes") or {}).pop(key, None)
        remaining = [v for v in remaining if v not in baked]
    return remaining
