"""Golden copies: a snapshot loaded once on a preview host, then cloned copy-on-write.

The database becomes an image (``clonekit-golden/<project>-db:<snapshot>``) whose layer holds the
loaded, cleanly shut down data directory: a preview's database container starts from it with no
load and writes only to its own container layer. Each file tree becomes a volume that previews
copy (``cp -a`` inside the engine). The golden copy's own credentials are kept in a 0600 file;
a preview re-keys its accounts to fresh ones at start.

This module keeps the engine side (names, metadata, image and volume housekeeping); the
``materialize`` use case is in ``clonekit.restore``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PreviewError
from .compose import LABEL_PROJECT, LABEL_SNAPSHOT, DbCredentials
from .docker import DockerEngine

LABEL_GOLDEN = "clonekit.golden"  # "db" | "files" | "build"
GOLDEN_REPOSITORY = "clonekit-golden"
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


def db_image_tag(project: str, snapshot_id: str) -> str:
    return f"{GOLDEN_REPOSITORY}/{project}-db:{snapshot_id}"


def volume_name(project: str, snapshot_id: str, key: str) -> str:
    return f"ck-golden-{project}-{snapshot_id}-{key}"


def build_container_name(project: str, snapshot_id: str) -> str:
    return f"ck-golden-{project}-{snapshot_id}-build"


def labels(project: str, snapshot_id: str, kind: str) -> dict[str, str]:
    return {LABEL_PROJECT: project, LABEL_SNAPSHOT: snapshot_id, LABEL_GOLDEN: kind}


def metadata_path(state_dir: Path, snapshot_id: str) -> Path:
    return state_dir / GOLDEN_FOLDER / f"{snapshot_id}.json"


def write_metadata(state_dir: Path, golden: GoldenCopy) -> None:
    path = metadata_path(state_dir, golden.snapshot_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(golden.to_json(), handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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


def datadir_in_volume(image: Mapping[str, Any], datadir: str) -> bool:
    """An image that declares a VOLUME over the data directory cannot keep it in a layer."""
    volumes = (image.get("Config") or {}).get("Volumes") or {}
    return any(datadir == v.rstrip("/") or datadir.startswith(v.rstrip("/") + "/") for v in volumes)


def copy_volume(engine: DockerEngine, source: str, target: str, *, image: str, volume_labels: Mapping[str, str]) -> None:
    """A preview's own copy of a golden volume, made inside the engine (no bytes cross the client)."""
    engine.create_volume(target, volume_labels)
    args = ["run", "--rm", "--network", "none", "-v", f"{source}:/src:ro", "-v", f"{target}:/dst"]
    for key, value in volume_labels.items():
        args += ["--label", f"{key}={value}"]
    engine.cli([*args, image, "sh", "-c", "cp -a /src/. /dst/"], what=f"copy golden volume {source}")


def remove_golden(engine: DockerEngine, state_dir: Path, project: str, keep: set[str]) -> list[str]:
    """Remove golden copies of snapshots not in ``keep``; an image a container still uses is kept."""
    removed: list[str] = []
    used_images = {c.get("Image") for c in engine.containers({})}
    for line in engine.cli(["image", "ls", "-q", "--no-trunc", "--filter", f"label={LABEL_PROJECT}={project}",
                            "--filter", f"label={LABEL_GOLDEN}=db"], what="list golden images").split():
        [info] = engine.inspect("image", [line]) or [{}]
        snapshot = ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_SNAPSHOT, "")
        if snapshot in keep or line in used_images:
            continue
        tags = list(info.get("RepoTags") or [])
        engine.cli(["image", "rm", *(tags or [line])], what=f"remove golden image of {snapshot}")
        removed.extend(tags or [line])
        _forget(state_dir, snapshot)
    for name in engine.ids("volume", {LABEL_PROJECT: project, LABEL_GOLDEN: "files"}):
        [info] = engine.inspect("volume", [name]) or [{}]
        snapshot = (info.get("Labels") or {}).get(LABEL_SNAPSHOT, "")
        if snapshot not in keep:
            engine.remove("volume", [name])
            _forget(state_dir, snapshot)
    return removed


def _forget(state_dir: Path, snapshot_id: str) -> None:
    if snapshot_id:
        metadata_path(state_dir, snapshot_id).unlink(missing_ok=True)
