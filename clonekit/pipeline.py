"""A pipelined cold clone: the preview is built from a snapshot while that snapshot is captured.

``clonekit clone`` without a recent snapshot to reuse used to capture, commit, then restore. Here
the capture runs on a thread and tells a ``SnapshotFeed`` what it has done (``CaptureObserver``);
the preview reads from the feed (``restore.TableFeed``):

- once the source's services are captured: the preview's plan, network, volumes and database
  container (they wait for nothing else);
- once every table's definition is read: the tables are created in the preview's database;
- once a table's rows are captured and its chunks stored: that table is loaded, from the store
  (the same sanitized bytes the snapshot holds: nothing else reaches the preview), then its
  secondary indexes are built;
- once the database is captured: the foreign keys, views, triggers...;
- once the snapshot is committed: the file volumes are filled and the services started.

So a preview never runs before its snapshot exists. A capture that fails at any point fails the
feed: the preview waiting on it is removed and the capture's error is the one raised (no
snapshot, no preview). A preview that fails leaves the capture to finish: its snapshot is
committed (it is valid) and the preview is removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import __version__
from .config import Source
from .manifest import Manifest
from .progress import ProgressFn

if TYPE_CHECKING:
    from .repository import ChunkWriter

LOAD_TASK_PREFIX = "load "  # the preview's progress tasks, beside the capture's own ("database")


class SnapshotAborted(Exception):  # noqa: N818 - a signal between two threads, never shown to a user
    """The capture feeding a preview failed: the preview stops. Not a ClonekitError on purpose:
    the capture's own error is the one the clone raises (its message, its exit code)."""


class SnapshotFeed:
    """What a running capture has done so far, for the preview built from it. Thread-safe: the
    capture's threads write, the preview's threads wait and read."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.file_paths: tuple[str, ...] = tuple(spec.path for spec in source.files)
        self._cond = threading.Condition()
        self._pending: Manifest | None = None
        self._writer: ChunkWriter | None = None
        self._schema: tuple[list[Mapping[str, Any]], int] | None = None
        self._tables: list[Mapping[str, Any]] = []
        self._section: Mapping[str, Any] | None = None
        self._database_done = False
        self._manifest: Manifest | None = None
        self._failed = False

    # -- the capture's side (CaptureObserver) ---------------------------------------------------

    def started(self, snapshot_id: str, services: Mapping[str, Any] | None, writer: ChunkWriter) -> None:
        database = self.source.database
        pending = Manifest(id=snapshot_id, source=self.source.name, project="", created_at=datetime.now(UTC),
                           tool_version=__version__, rules_digest="",
                           database={"database": database.name} if database is not None else None,
                           files=(), services=services)
        self._set(_pending=pending, _writer=writer)

    def schema_read(self, tables: list[dict[str, Any]], estimated_bytes: int) -> None:
        self._set(_schema=(tables, estimated_bytes))

    def table_captured(self, table: dict[str, Any]) -> None:
        with self._cond:
            self._tables.append(table)
            self._cond.notify_all()

    def database_captured(self, section: Mapping[str, Any] | None) -> None:
        self._set(_section=section, _database_done=True)

    def committed(self, manifest: Manifest) -> None:
        self._set(_manifest=manifest)

    def failed(self) -> None:
        self._set(_failed=True)

    # -- the preview's side -------------------------------------------------------------------

    def pending_manifest(self) -> Manifest:
        """The snapshot as far as a preview's plan needs it (id, source, services), once the
        services are captured. Its database and files sections come from the feed."""
        self._wait(lambda: self._pending is not None)
        assert self._pending is not None
        return self._pending

    def schema(self) -> tuple[list[Mapping[str, Any]], int]:
        self._wait(lambda: self._schema is not None)
        assert self._schema is not None
        return self._schema

    def tables(self) -> Iterator[Mapping[str, Any]]:
        """Each table once captured and its chunks are in the store; ends with the database."""
        given = 0
        while True:
            self._wait(lambda n=given: len(self._tables) > n or self._database_done)  # type: ignore[misc]
            with self._cond:
                if given == len(self._tables):
                    return
                table = self._tables[given]
            given += 1
            assert self._writer is not None
            self._writer.wait_stored(ref["id"] for ref in table.get("chunks", []))
            self._check()
            yield table

    def section(self) -> Mapping[str, Any]:
        self._wait(lambda: self._database_done)
        assert self._section is not None
        return self._section

    def manifest(self) -> Manifest:
        """The committed snapshot: the preview's files come from it, and no service starts before it."""
        self._wait(lambda: self._manifest is not None)
        assert self._manifest is not None
        return self._manifest

    def _set(self, **values: Any) -> None:
        with self._cond:
            for key, value in values.items():
                setattr(self, key, value)
            self._cond.notify_all()

    def _check(self) -> None:
        if self._failed:
            raise SnapshotAborted(f"the snapshot of {self.source.name} failed")

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._cond:
            while not self._failed and not ready():
                self._cond.wait()
            self._check()


def loading_progress(progress: ProgressFn) -> ProgressFn:
    """The preview's progress tasks renamed where the capture has its own of the same name (the
    ``database`` load beside the capture's, the ``files PATH`` fills)."""

    def update(task: str, advance: int = 0, total: int | None = None) -> None:
        shared = task == "database" or task.startswith("files ")
        progress(LOAD_TASK_PREFIX + task if shared else task, advance=advance, total=total)

    return update


def file_sections(feed: SnapshotFeed | None, manifest: Any) -> Callable[[], Mapping[str, Mapping[str, Any]]]:
    """The snapshot's file sections by path, when they are known (a feed: once committed)."""
    return lambda: {str(s.get("path")): s for s in (feed.manifest() if feed is not None else manifest).files}


def capture_thread(run: Callable[[], Manifest], feed: SnapshotFeed) -> tuple[threading.Thread, list[Any]]:
    """Start ``run`` (the capture) on a thread that tells ``feed`` how it ended; the list gets the
    manifest or the exception once the thread is done."""
    outcome: list[Any] = []

    def capture() -> None:
        try:
            manifest = run()
        except BaseException as exc:  # noqa: BLE001 - raised by the clone's thread (Project.clone)
            outcome.append(exc)
            feed.failed()
        else:
            outcome.append(manifest)
            feed.committed(manifest)

    thread = threading.Thread(target=capture, name="ck-clone-capture", daemon=True)
    thread.start()
    return thread, outcome


__all__: Sequence[str] = ("SnapshotAborted", "SnapshotFeed", "capture_thread", "file_sections", "loading_progress")
