"""Use case: capture a source into one snapshot (services → database → files), commit last.

Everything that can be checked is checked before the first byte is read: the source exists,
its secrets are set, the rules compile, the store opens. Rows are sanitized in the stream by
the planner; nothing raw is written anywhere. The manifest is committed only once every
chunk is stored, so a crash leaves no visible snapshot and the next run reuses the chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from . import __version__
from .config import Config, Source
from .manifest import Manifest, new_snapshot_id
from .memory import give_back_free_memory
from .progress import ProgressFn, no_progress
from .repository import Repository

if TYPE_CHECKING:
    from .repository import ChunkWriter

log = logging.getLogger("clonekit.snapshot")

PIPELINED_PENDING_BYTES = 24 << 20  # the writer's bound (MAX_PENDING_BYTES: 48 MiB) in a pipelined clone


class CaptureObserver(Protocol):
    """Told of each step of a capture as it happens: a pipelined clone (clonekit.pipeline) builds
    its preview from what is captured while the rest of the snapshot is still being taken."""

    def started(self, snapshot_id: str, services: Mapping[str, Any] | None, writer: ChunkWriter) -> None: ...
    def schema_read(self, tables: list[dict[str, Any]], estimated_bytes: int) -> None: ...
    def table_captured(self, table: dict[str, Any]) -> None: ...
    def database_captured(self, section: Mapping[str, Any] | None) -> None: ...


def take_snapshot(config: Config, repo: Repository, source_name: str, *, progress: ProgressFn = no_progress,
                  observer: CaptureObserver | None = None) -> Manifest:
    from .sanitize import build_planner, rules_digest

    source = config.source(source_name)
    planner = build_planner(config.sanitize)  # compiles the rules: bad rules fail here
    digest = rules_digest(config.sanitize)
    check_source(source)
    previous = _previous_files(repo, source.name)
    started = datetime.now(UTC)
    snapshot_id = new_snapshot_id(source.name, started)

    with ExitStack() as stack:
        ssh = None
        if source.ssh is not None:
            from .transport.ssh import SshSession

            ssh = stack.enter_context(SshSession.connect(source.ssh))
        stack.enter_context(repo.lock(exclusive=False))
        # A pipelined clone loads beside the capture: fewer bytes wait for their upload meanwhile.
        writer = stack.enter_context(repo.writer(**({} if observer is None else {"max_pending_bytes": PIPELINED_PENDING_BYTES})))

        services = None
        if source.containers is not None:
            from .containers import capture_services

            progress("containers", total=None)
            services = capture_services(source.containers, ssh=source.ssh)
        if observer is not None:
            observer.started(snapshot_id, services, writer)

        def capture_trees() -> list[Mapping[str, Any]]:
            from .files import capture_files

            trees: list[Mapping[str, Any]] = []
            for spec in source.files:
                trees.append(capture_files(spec, writer, ssh=ssh, previous=previous.get(spec.path), store=repo,
                                           progress=progress))
                give_back_free_memory()
            return trees

        # A pipelined clone captures the files first: the preview's database loads each table as
        # the capture finishes it, and the files capture's buffers are not held beside the load.
        files = capture_trees() if observer is not None else []
        database = None
        if source.database is not None:
            from .db import capture_database

            endpoint = open_source_database(source, stack, ssh)
            database = capture_database(endpoint, planner, writer, progress=progress,
                                        on_schema=observer.schema_read if observer is not None else None,
                                        on_table=observer.table_captured if observer is not None else None)
            give_back_free_memory()  # the batches' memory, before the files' buffers (memory.py)
        if observer is not None:
            observer.database_captured(database)
        else:
            files = capture_trees()

        writer.close()
        stats = writer.stats
        manifest = Manifest(
            id=snapshot_id,
            source=source.name,
            project=config.project,
            created_at=started,
            tool_version=__version__,
            rules_digest=digest,
            database=database,
            files=tuple(files),
            services=services,
            stats={
                "plain_bytes": 0,  # set below
                "read_bytes": stats.plain_bytes,
                "stored_bytes": stats.stored_bytes,
                "chunks": stats.chunks,
                "new_chunks": stats.new_chunks,
                "new_bytes": stats.new_stored_bytes,
                "seconds": int((datetime.now(UTC) - started).total_seconds()),
                "strict": int(config.sanitize.strict),  # 1: strict mode's scan passed (it refuses otherwise)
            },
        )
        # Logical size: every distinct chunk the snapshot references, re-read or reused (a walk of
        # every entry, which the commit reuses).
        manifest = manifest.with_stats(plain_bytes=sum(manifest.chunk_refs().values()))
        # Still under the shared lock: a prune cannot slip in between upload and commit.
        repo.commit(manifest)
    log.info("snapshot %s of %s committed", manifest.id, source.name)
    return manifest


def check_source(source: Source) -> None:
    """What can be checked with no I/O beyond local files, before the store is even created:
    a missing password variable or SSH key file fails here."""
    if source.database is not None:
        source.database.password()
    if source.ssh is not None:
        from .transport.ssh import check_key_file

        check_key_file(source.ssh)


def database_endpoint(source: Source) -> Any:
    """The direct endpoint of a source database (no tunnel)."""
    from .db import DbEndpoint

    db = source.database
    assert db is not None
    return DbEndpoint(host=db.host, port=db.port, user=db.user, password=db.password(), database=db.name, socket=db.socket)


def open_source_database(source: Source, stack: ExitStack, ssh: Any = None) -> Any:
    """The endpoint to read the source database from: direct, or through the source's SSH host
    (the database address is as that host sees it). ``stack`` owns the tunnel (and the SSH
    session, opened here when the caller has none)."""
    endpoint = database_endpoint(source)
    if source.ssh is None:
        return endpoint
    if ssh is None:
        from .transport.ssh import SshSession

        ssh = stack.enter_context(SshSession.connect(source.ssh))
    host, port = stack.enter_context(ssh.forward(endpoint.host, endpoint.port))
    return replace(endpoint, host=host, port=port, socket=None)


def _previous_files(repo: Repository, source: str) -> Mapping[str, Mapping[str, Any]]:
    """File sections of the source's newest snapshot, by path: unchanged files are not re-read."""
    newest = repo.latest(source)
    if newest is None:
        return {}
    return {section["path"]: section for section in newest.files if "path" in section}
