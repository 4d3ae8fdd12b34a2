"""Golden copies: a snapshot loaded once on a preview host, then cloned copy-on-write.

The database becomes an image (``clonekit-golden/<project>-db:<snapshot>``) whose layer holds the
loaded, cleanly shut down data directory: a preview's database container starts from it with no
load and writes only to its own container layer. Each file tree becomes a volume that previews
copy (``cp -a`` inside the engine). The golden copy's own credentials are kept in a 0600 file;
a preview re-keys its accounts to fresh ones at start.

This module is what a preview needs of a golden copy: find it (the record written by
``clonekit.golden.materialize``) and copy its volumes. Making and pruning them is ``clonekit.golden``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PreviewError
from .compose import DbCredentials
from .docker import DockerEngine

GOLDEN_FOLDER = "golden"
DEFAULT_DATADIR = "/var/lib/mysql"


@dataclass(frozen=True)
class GoldenCopy:
    snapshot_id: str
    db_image: str | None  # None: the snapshot has no database
    datadir: str
    db: DbCredentials | None = field(repr=False)
    volumes: Mapping[str, str] = field(default_factory=dict)  # source path -> golden volume name

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot_id": self.snapshot_id, "db_image": self.db_image, "datadir": self.datadir,
            "db": None if self.db is None else {"user": self.db.user, "password": self.db.password,
                                                 "root_password": self.db.root_password, "database": self.db.database},
            "volumes": dict(self.volumes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GoldenCopy:
        db = data.get("db")
        return cls(snapshot_id=data["snapshot_id"], db_image=data.get("db_image"), datadir=data.get("datadir") or DEFAULT_DATADIR,
                   db=DbCredentials(**db) if db else None, volumes=dict(data.get("volumes") or {}))


def metadata_path(state_dir: Path, snapshot_id: str) -> Path:
    return state_dir / GOLDEN_FOLDER / f"{snapshot_id}.json"


def find_golden(state_dir: Path, engine: DockerEngine, snapshot_id: str) -> GoldenCopy | None:
    """The golden copy of ``snapshot_id`` on this engine, when it is complete."""
    path = metadata_path(state_dir, snapshot_id)
    try:
        golden = GoldenCopy.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PreviewError(f"cannot read the golden copy record {path}: {exc}") from exc
    if golden.db_image and not engine.exists("image", golden.db_image):
        return None
    if any(not engine.exists("volume", v) for v in golden.volumes.values()):
        return None
    return golden


def copy_volume(engine: DockerEngine, source: str, target: str, *, image: str, volume_labels: Mapping[str, str]) -> None:
    """A preview's own copy of a golden volume, made inside the engine (no bytes cross the client)."""
    engine.create_volume(target, volume_labels)
    args = ["run", "--rm", "--network", "none", "-v", f"{source}:/src:ro", "-v", f"{target}:/dst"]
    for key, value in volume_labels.items():
        args += ["--label", f"{key}={value}"]
    engine.cli([*args, image, "sh", "-c", "cp -a /src/. /dst/"], what=f"copy golden volume {source}")
