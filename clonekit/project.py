"""The Python API: every CLI command is one call on ``Project``.

    from clonekit import Project
    project = Project.load("clonekit.yml")
    snap = project.snapshot("prod")
    preview = project.restore(snap, name="feature-x")
    print(preview.url)
    project.clone("prod", name="feature-y", max_age="6h")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, check_name, load_config, parse_duration
from .errors import ClonekitError, ConfigError, UsageError
from .oplog import OperationLog
from .progress import ProgressFn, no_progress

if TYPE_CHECKING:
    from .golden import GoldenResult
    from .leaks import LeakReport
    from .manifest import Manifest, ManifestHead
    from .preview import Preview
    from .repository import Catalog, Repository, UnreadableManifest, VerifyReport
    from .runtime.proxy import Proxy, ProxyStatus
    from .sanitize import ScanReport

log = logging.getLogger("clonekit")

DEFAULT_EXTEND_SECONDS = 7 * 86400  # `extend` without --by when previews.ttl is not set


@dataclass(frozen=True)
class RefreshReport:
    refreshed: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"refreshed {n}" for n in self.refreshed]
        lines += [f"FAILED {n}: {msg}" for n, msg in self.failed.items()]
        lines.append(f"{len(self.refreshed)} refreshed, {len(self.failed)} failed")
        return "\n".join(lines)


@dataclass(frozen=True)
class PruneReport:
    dry_run: bool
    forgotten_snapshots: tuple[str, ...]
    kept_snapshots: tuple[str, ...]
    deleted_chunks: int
    deleted_bytes: int
    expired_previews: tuple[str, ...]
    removed_images: tuple[str, ...] = ()
    unreadable: tuple[UnreadableManifest, ...] = ()  # while any, no chunk is deleted

    def describe(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"UNREADABLE snapshot {u.id} ({u.key}): {u.reason}" for u in self.unreadable]
        if self.unreadable:
            lines.append("no stored chunk deleted while a manifest is unreadable (it may reference any of them): "
                         "restore or remove it, see docs/operations.md")
        lines += [f"{verb} snapshot {s}" for s in self.forgotten_snapshots]
        lines += [f"{verb} expired preview {p}" for p in self.expired_previews]
        lines += [f"{verb} golden image {i}" for i in self.removed_images]
        lines.append(
            f"{verb} {len(self.forgotten_snapshots)} snapshot(s), {self.deleted_chunks} chunk(s) "
            f"({self.deleted_bytes} bytes), {len(self.expired_previews)} preview(s); kept {len(self.kept_snapshots)} snapshot(s)"
        )
        return "\n".join(lines)


class Project:
    """A clonekit.yml and everything it describes: sources, the store, previews."""

    def __init__(self, config: Config, *, log_file: str | Path | None = None) -> None:
        self.config = config
        self.oplog = OperationLog(log_file, project=config.project, on_failure=self._notify_failure)

    @classmethod
    def load(cls, path: str | Path | None = None, *, log_file: str | Path | None = None) -> Project:
        """Load and validate ``clonekit.yml`` (searched upwards from the current folder when path is None)."""
        return cls(load_config(path), log_file=log_file)

    @cached_property
    def repository(self) -> Repository:
        """The store as it is. Reading never creates one: a mistyped path says "no store" (exit 2)."""
        from .repository import Repository

        return Repository.open(self.config.store, create=False)

    def _repository_to_write(self) -> Repository:
        """The store, created on first use: only commands that write a snapshot may make one."""
        if "repository" not in self.__dict__:
            from .repository import Repository

            self.__dict__["repository"] = Repository.open(self.config.store, create=True)
        return self.repository

    # -- snapshots ----------------------------------------------------------------------------

    def snapshot(self, source: str, *, progress: ProgressFn = no_progress) -> Manifest:
        """Capture, sanitize and store a snapshot of ``source``; returns its manifest."""
        from .snapshot import check_source, take_snapshot

        self.config.source(source)
        with self.oplog.operation("snapshot", source=source) as record:
            check_source(self.config.source(source))  # before the store is created (and logged, notified)
            manifest = take_snapshot(self.config, self._repository_to_write(), source, progress=progress)
            record.update(snapshot=manifest.id, **{k: v for k, v in manifest.stats.items() if isinstance(v, int)})
        if self.config.previews.prewarm:
            self.materialize(manifest, progress=progress)
        return manifest

    def snapshots(self, source: str | None = None) -> list[Manifest]:
        """Snapshots in the store, oldest first; only ``source``'s when given."""
        if source is not None:
            self.config.source(source)
        return self.repository.manifests(source)

    def catalog(self, source: str | None = None) -> Catalog[Manifest]:
        """Like ``snapshots``, and also every unreadable manifest, named (id, key, reason)."""
        if source is not None:
            self.config.source(source)
        return self.repository.catalog(source)

    def heads(self, source: str | None = None) -> Catalog[ManifestHead]:
        """``catalog`` without the file trees' entries (``ManifestHead``): what a listing needs, in
        memory that does not grow with the files of each snapshot."""
        if source is not None:
            self.config.source(source)
        return self.repository.heads(source)

    def resolve(self, snapshot: str | Manifest) -> Manifest:
        """An id, a unique prefix, ``latest`` or ``SOURCE@latest`` → the manifest."""
        if not isinstance(snapshot, str):
            return snapshot
        return self.repository.resolve(snapshot)

    def verify(self, snapshot: str | Manifest, *, progress: ProgressFn = no_progress) -> VerifyReport:
        """Re-read every stored object of a snapshot; the report names any bad one."""
        manifest = self.resolve(snapshot)
        with self.oplog.operation("verify", snapshot=manifest.id) as record:
            report = self.repository.verify(manifest, progress=progress)
            record.update(ok=report.ok)
        return report

    def verifications(self) -> dict[str, dict[str, Any]]:
        """The last ``verify`` of each snapshot id as the operation log (``--log-file``) recorded it:
        time, status ("ok"/"failed") and ``ok`` (every object good); empty without a log file."""
        return self.oplog.last_records("verify", "snapshot")

    def find_leaks(self, snapshot: str | Manifest, values_file: str | Path) -> LeakReport:
        """Every place in a snapshot (table rows, files, manifest) where a value of ``values_file``
        (known personal values, one a line) appears; the report names lines and places, never values."""
        from .leaks import find_leaks, read_values

        values, skipped = read_values(values_file)
        manifest = self.resolve(snapshot)
        with self.oplog.operation("verify-leaks", snapshot=manifest.id) as record:
            report = find_leaks(self.repository, manifest, values, skipped, str(values_file))
            record.update(ok=report.ok, leaks=len(report.leaks))
        return report

    def suggest_rules(self, report: ScanReport) -> str:
        """YAML rules for the columns ``report`` found uncovered, to paste under ``sanitize.tables``."""
        from .sanitize import suggest_rules

        return suggest_rules(report)

    def violates_policy(self, report: ScanReport) -> bool:
        """Strict mode is on and ``report`` found personal data no rule covers (the CLI exits 3)."""
        return bool(report.uncovered) and self.config.sanitize.strict

    def scan(self, source: str) -> ScanReport:
        """Columns of ``source``'s database that look like personal data, with the rule covering each."""
        from .db import describe_tables, open_sampler
        from .sanitize import scan
        from .snapshot import open_source_database

        src = self.config.source(source)
        if src.database is None:
            raise ConfigError(f"{self.config.path}: source {source!r} has no database to scan")
        with ExitStack() as stack:
            endpoint = open_source_database(src, stack)
            tables = describe_tables(endpoint)
            sample = stack.enter_context(open_sampler(endpoint))
            return scan(tables, sample, self.config.sanitize)

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Apply retention, remove unreferenced chunks (after a grace period) and expired previews."""
        from .prune import execute_prune, plan_prune

        now = datetime.now(UTC)
        expired = [p.name for p in self._expired_previews(now)]
        with self.oplog.operation("prune", dry_run=dry_run) as record:
            plan = plan_prune(self.repository, self.config.retention, now=now)
            removed_images: tuple[str, ...] = ()
            deleted_chunks, deleted_bytes = len(plan.chunks_to_delete), plan.bytes_to_free
            unreadable = plan.unreadable
            if not dry_run:
                for name in expired:
                    self.destroy(name)
                result = execute_prune(self.repository, plan)
                deleted_chunks, deleted_bytes, unreadable = result.deleted_chunks, result.freed_bytes, result.unreadable
                # A golden copy of an unreadable snapshot may be all that is left of it: kept.
                removed_images = self._prune_golden_images(plan.keep + tuple(u.id for u in unreadable))
            report = PruneReport(
                dry_run=dry_run,
                forgotten_snapshots=plan.forget,
                kept_snapshots=plan.keep,
                deleted_chunks=deleted_chunks,
                deleted_bytes=deleted_bytes,
                expired_previews=tuple(expired),
                removed_images=removed_images,
                unreadable=unreadable,
            )
            record.update(unreadable=len(unreadable), forgotten=len(report.forgotten_snapshots), chunks=deleted_chunks, bytes=deleted_bytes)
        if unreadable and not dry_run:  # cron: nobody reads the output, and the store stops shrinking
            names = ", ".join(u.key for u in unreadable)
            self._notify(f"clonekit prune in project {self.config.project}: no stored data deleted while a snapshot "
                         f"manifest is unreadable ({names}); see docs/operations.md")
        return report

    # -- previews -----------------------------------------------------------------------------

    def restore(
        self,
        snapshot: str | Manifest,
        *,
        name: str,
        keep_on_failure: bool = False,
        progress: ProgressFn = no_progress,
        build: Sequence[str] = (),
        image: Sequence[str] = (),
        mount: Sequence[str] = (),
    ) -> Preview:
        """Create preview ``name`` from a snapshot; returns once it answers.

        ``build``: ``SERVICE=PATH[:DOCKERFILE]`` (that service runs an image built from PATH);
        ``image``: ``SERVICE=REF`` (it runs REF); ``mount``: ``SERVICE=HOST:CONTAINER`` (a live
        working tree, local engine only); all add to ``previews.services``."""
        check_name("preview", name)
        from .preview import create_preview

        code = self._code_requests(build, image, mount=mount)
        manifest = self.resolve(snapshot)
        with self.oplog.operation("restore", preview=name, snapshot=manifest.id) as record:
            preview = create_preview(
                self.config, self.repository, manifest, name, keep_on_failure=keep_on_failure, progress=progress,
                code=code,
            )
            record.update(url=preview.url, path_taken=preview.restore_path)
        self._notify(f"Preview {name} of {manifest.source} is ready: {preview.url} (snapshot {manifest.id})")
        return preview

    def clone(
        self,
        source: str,
        *,
        name: str,
        max_age: str | int | None = None,
        keep_on_failure: bool = False,
        progress: ProgressFn = no_progress,
        build: Sequence[str] = (),
        image: Sequence[str] = (),
        mount: Sequence[str] = (),
    ) -> Preview:
        """Snapshot ``source`` (or reuse one younger than ``max_age``) and restore it as ``name``.

        A new snapshot and the preview are made together (``_clone_pipelined``, docs/previews.md)."""
        check_name("preview", name)
        self.config.source(source)
        self._code_requests(build, image, mount=mount)  # bad flags and missing folders before the snapshot
        max_age_seconds = _max_age_seconds(max_age)  # a bad --max-age is refused before the store is touched
        self._repository_to_write()  # a first clone creates the store its snapshot goes to
        manifest = self._recent_snapshot(source, max_age_seconds)
        if manifest is None:
            self._refuse_existing_preview(name)  # before the expensive snapshot
            if self._pipelined(source):
                return self._clone_pipelined(source, name, keep_on_failure=keep_on_failure, progress=progress,
                                             build=build, image=image, mount=mount)
            manifest = self.snapshot(source, progress=progress)
        return self.restore(manifest, name=name, keep_on_failure=keep_on_failure, progress=progress, build=build, image=image,
                            mount=mount)

    def previews(self) -> list[Preview]:
        """This project's previews, from the Docker engine's labels."""
        from .preview import list_previews

        return list_previews(self.config)

    def refresh(self, name: str, *, progress: ProgressFn = no_progress, code: bool = False,
                build: Sequence[str] = (), image: Sequence[str] = (), hooks: bool = False) -> Preview:
        """Reload preview ``name`` from the newest snapshot of its source; keeps its name, URL and code.

        ``code=True``: keep its data, rebuild its overridden services (recorded inputs, or
        ``build``/``image``) and restart them; ``hooks`` then runs the after_restore hooks."""
        check_name("preview", name)
        from .preview import refresh_preview

        if code:
            from .previews.refresh import refresh_code

            requests = self._code_requests(build, image, with_config=False)
            with self.oplog.operation("refresh-code", preview=name):
                return refresh_code(self.config, self.repository, name, requests, hooks=hooks, progress=progress)  # type: ignore[no-any-return]
        if build or image or hooks:
            raise UsageError("--build, --image and --hooks go with --code (a data refresh keeps the preview's code)")
        preview = self._preview(name)
        manifest = self.repository.resolve(f"{preview.source}@latest")
        with self.oplog.operation("refresh", preview=name, snapshot=manifest.id):
            return refresh_preview(self.config, self.repository, name, manifest, progress=progress)

    def refresh_all(self, *, progress: ProgressFn = no_progress) -> RefreshReport:
        """Refresh every preview; goes on past failures (cron): the report lists them."""
        refreshed: list[str] = []
        failed: dict[str, str] = {}
        for preview in self.previews():
            try:
                self.refresh(preview.name, progress=progress)
                refreshed.append(preview.name)
            except ClonekitError as exc:
                failed[preview.name] = exc.message
        report = RefreshReport(tuple(refreshed), failed)
        if failed:
            self._notify(f"clonekit refresh --all: {len(failed)} preview(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
        return report

    def extend(self, name: str, by: str | int | None = None) -> Preview:
        """Push preview ``name``'s expiry ``by`` a duration (default ``previews.ttl``, else 7d) past
        now, or past its current expiry when that is later."""
        from .preview import extend_preview

        check_name("preview", name)
        seconds = _duration_seconds("--by", by) if by is not None else self.config.previews.ttl_seconds or DEFAULT_EXTEND_SECONDS
        with self.oplog.operation("extend", preview=name, seconds=seconds) as record:
            preview = extend_preview(self.config, name, seconds)
            record.update(expires_at=preview.expires_at.isoformat() if preview.expires_at else "")
        return preview

    def exec(self, name: str, argv: Sequence[str], *, service: str | None = None) -> int:
        """Run ``argv`` in a service of preview ``name`` (default: its HTTP service); its exit code."""
        from .previews.access import exec_in

        return exec_in(self.config, name, argv, service=service)

    def logs(self, name: str, *, service: str | None = None, follow: bool = False, tail: int | None = None) -> int:
        """Print (``follow``: and follow) the log of a service of preview ``name``."""
        from .previews.access import show_logs

        return show_logs(self.config, name, service=service, follow=follow, tail=tail)

    def db(self, name: str, *, execute: str | None = None) -> int:
        """The database client of preview ``name``: interactive, or run ``execute`` and print."""
        from .previews.access import db_client

        return db_client(self.config, name, execute=execute)

    def destroy(self, name: str) -> None:
        """Remove preview ``name`` and everything labelled with it."""
        check_name("preview", name)
        from .preview import destroy_preview

        with self.oplog.operation("destroy", preview=name):
            destroy_preview(self.config, name)

    def destroy_all(self, names: Sequence[str] | None = None) -> list[str]:
        """Destroy every preview of the project (only ``names`` when given, e.g. the ones a person
        confirmed); returns the names destroyed, in order."""
        names = [p.name for p in self.previews()] if names is None else list(names)
        for name in names:
            self.destroy(name)
        return names

    def materialize(self, snapshot: str | Manifest, *, progress: ProgressFn = no_progress) -> GoldenResult:
        """Load a snapshot once into golden images on the preview host (instant clones)."""
        from .golden import materialize

        manifest = self.resolve(snapshot)
        with self.oplog.operation("materialize", snapshot=manifest.id):
            return materialize(self.config, self.repository, manifest, progress=progress)

    def golden_copies(self) -> list[dict[str, Any]]:
        """The golden copies on the preview host (no credentials): snapshot, images, volumes, the
        ``after_materialize`` hooks baked in, and whether everything they name still exists."""
        from .runtime import golden_record as gr
        from .runtime.docker import DockerEngine

        engine = DockerEngine.for_previews(self.config.previews)
        return [{**g.summary(), "complete": gr.is_complete(engine, g)} for g in gr.list_records(self.config.state_dir)]

    # -- the HTTPS proxy of the preview host (shared by every project on it) -----------------

    def _proxy(self) -> Proxy:
        from .runtime.docker import DockerEngine
        from .runtime.proxy import Proxy

        return Proxy(DockerEngine.for_previews(self.config.previews))

    def proxy_status(self) -> ProxyStatus:
        """Whether the proxy runs, its ports, its routes (preview host -> upstream) and certificates."""
        return self._proxy().status()

    def proxy_ca(self) -> str:
        """The proxy's internal CA certificate (PEM), to trust in a browser or curl (tls: internal)."""
        return self._proxy().ca_certificate()

    def proxy_stop(self) -> bool:
        """Stop and remove the proxy container (its volume keeps routes, certificates and CA)."""
        with self.oplog.operation("proxy_stop"):
            return self._proxy().stop()

    # -- internals ----------------------------------------------------------------------------

    def _code_requests(self, build: Sequence[str], image: Sequence[str], *, with_config: bool = True,
                       mount: Sequence[str] = ()) -> list[Any]:
        """``--build``/``--image``/``--mount`` (and, ``with_config``, ``previews.services``) checked before any side effect."""
        from .previews import code as pc

        flags = ([pc.parse_build_flag(b) for b in build] + [pc.parse_image_flag(i) for i in image]
                 + [pc.parse_mount_flag(m) for m in mount])
        requests = pc.merge_requests(pc.from_config(self.config.previews.services) if with_config else [], flags)
        problems = [p for r in requests if r.build is not None for p in pc.rb.check_inputs(r.build, f"--build {r.service}")]
        problems += [p for r in requests for p in pc.check_mounts(self.config, r)]
        if problems:
            raise UsageError("cannot build the preview's code", problems=problems)
        return requests

    def _pipelined(self, source: str) -> bool:
        """A cold clone builds its preview while its snapshot is captured (clonekit.pipeline):
        when the source has a database, no golden copy is to be made of the new snapshot
        (``previews.prewarm``: the clone then starts from it), and CLONEKIT_CLONE_PIPELINE is not 0."""
        return (self.config.source(source).database is not None and not self.config.previews.prewarm
                and os.environ.get("CLONEKIT_CLONE_PIPELINE", "1") != "0")

    def _clone_pipelined(self, source: str, name: str, *, keep_on_failure: bool, progress: ProgressFn,
                         build: Sequence[str], image: Sequence[str], mount: Sequence[str]) -> Preview:
        """Capture on a thread, build the preview from what is captured (clonekit.pipeline). A
        failed capture leaves no snapshot and no preview, and its error is raised; a failed preview
        leaves the snapshot committed (the capture goes on to its end) and no preview."""
        from .pipeline import SnapshotFeed, capture_thread, loading_progress
        from .preview import create_preview
        from .snapshot import check_source, take_snapshot

        code = self._code_requests(build, image, mount=mount)
        repo = self._repository_to_write()
        feed = SnapshotFeed(self.config.source(source))

        def capture() -> Manifest:
            with self.oplog.operation("snapshot", source=source) as record:
                check_source(self.config.source(source))
                manifest = take_snapshot(self.config, repo, source, progress=progress, observer=feed)
                record.update(snapshot=manifest.id, pipelined=True,
                              **{k: v for k, v in manifest.stats.items() if isinstance(v, int)})
            return manifest

        thread, outcome = capture_thread(capture, feed)
        try:
            pending = feed.pending_manifest()
            with self.oplog.operation("restore", preview=name, snapshot=pending.id) as record:
                preview = create_preview(self.config, repo, pending, name, keep_on_failure=keep_on_failure,
                                         progress=loading_progress(progress), code=code, feed=feed)
                record.update(url=preview.url, path_taken=preview.restore_path, pipelined=True)
        except Exception:  # a ClonekitError of the preview, or SnapshotAborted
            thread.join()  # a failed preview: the capture finishes and commits its (valid) snapshot
            if isinstance(outcome[0], BaseException):
                raise outcome[0] from None  # the capture's failure is the clone's (its message, its exit code)
            raise
        thread.join()
        self._notify(f"Preview {name} of {source} is ready: {preview.url} (snapshot {pending.id})")
        return preview

    def _recent_snapshot(self, source: str, seconds: int | None) -> Manifest | None:
        if seconds is None:
            return None
        newest = self.repository.latest(source)
        if newest is not None and datetime.now(UTC) - newest.created_at <= timedelta(seconds=seconds):
            return newest
        return None

    def _preview(self, name: str) -> Preview:
        from .errors import NotFoundError

        for preview in self.previews():
            if preview.name == name:
                return preview
        raise NotFoundError(f"no preview named {name!r} in project {self.config.project}", hint="`clonekit list` shows them")

    def _refuse_existing_preview(self, name: str) -> None:
        from .errors import PreviewError

        if any(p.name == name for p in self.previews()):
            raise PreviewError(
                f"a preview named {name!r} already exists", hint=f"`clonekit refresh {name}` or `clonekit destroy {name}` first"
            )

    def _expired_previews(self, now: datetime) -> list[Preview]:
        from .preview import expired_previews

        return expired_previews(self.config, now)

    def _prune_golden_images(self, keep: tuple[str, ...]) -> tuple[str, ...]:
        from .golden import prune_golden_images

        return tuple(prune_golden_images(self.config, keep=list(keep)))

    def _notify(self, text: str) -> None:
        from .notify import send_webhook

        send_webhook(self.config.notify, text)

    def _notify_failure(self, operation: str, exc: ClonekitError) -> None:
        # Only the jobs that run unattended page the team.
        if operation in ("snapshot", "refresh", "restore", "prune"):
            self._notify(f"clonekit {operation} failed in project {self.config.project}: {exc.message}")


def _max_age_seconds(max_age: str | int | None) -> int | None:
    return None if max_age is None else _duration_seconds("--max-age", max_age)


def _duration_seconds(option: str, value: str | int) -> int:
    try:
        return parse_duration(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected a duration such as 30m, 6h or 2d (at most 100 years)") from None
