"""Retention and garbage collection: plan (pure, read-only), then execute under the exclusive lock.

Kept: per source, the ``keep_last`` newest snapshots, the newest of each of the ``keep_daily``
most recent days and of the ``keep_weekly`` most recent ISO weeks that have snapshots. With no
rule set at all, everything is kept. A chunk is deleted only when no kept snapshot references
it AND it is older than ``retention.grace_seconds``, so chunks of a snapshot being written (not
yet committed) survive; execute re-reads the manifests under the lock before deleting.

An unreadable manifest might reference any chunk: while one is in the store, retention still
applies to the readable snapshots but no chunk is deleted, and the result names it.
Chunks set aside as corrupt (``bad/<id>``; the snapshot that stores a good copy removes its
own) go once no kept snapshot references them and they are older than the grace period.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Retention
from .manifest import Manifest, ManifestHead
from .repository import Repository, UnreadableManifest

log = logging.getLogger("clonekit.prune")


@dataclass(frozen=True)
class SnapshotDecision:
    id: str
    source: str
    created_at: datetime
    keep: bool
    reasons: tuple[str, ...]  # e.g. ("last 7", "daily 2026-11-25"); empty when forgotten


@dataclass(frozen=True)
class PrunePlan:
    decisions: tuple[SnapshotDecision, ...]
    chunks_to_delete: tuple[str, ...]
    bytes_to_free: int  # stored bytes
    chunks_kept_in_grace: int  # unreferenced but too young to delete
    now: datetime
    grace_seconds: int
    unreadable: tuple[UnreadableManifest, ...] = ()  # while any: no chunk is deleted
    quarantined_to_delete: tuple[str, ...] = ()  # bad/<id> objects no longer needed as evidence

    @property
    def forget(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.decisions if not d.keep)

    @property
    def keep(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.decisions if d.keep)

    def to_json(self) -> dict[str, Any]:
        return {
            "keep": [{"id": d.id, "source": d.source, "reasons": list(d.reasons)} for d in self.decisions if d.keep],
            "forget": [{"id": d.id, "source": d.source} for d in self.decisions if not d.keep],
            "chunks_to_delete": len(self.chunks_to_delete),
            "bytes_to_free": self.bytes_to_free,
            "chunks_kept_in_grace": self.chunks_kept_in_grace,
            "unreadable": [u.to_json() for u in self.unreadable],
        }


@dataclass(frozen=True)
class PruneResult:
    forgotten: tuple[str, ...]
    deleted_chunks: int
    freed_bytes: int
    skipped_chunks: int  # in the plan but referenced by a snapshot committed since
    leftovers_removed: int = 0  # temp files / unfinished multipart uploads of killed runs
    unreadable: tuple[UnreadableManifest, ...] = ()  # found under the lock: no chunk was deleted

    def to_json(self) -> dict[str, Any]:
        return {
            "forgotten": list(self.forgotten),
            "deleted_chunks": self.deleted_chunks,
            "freed_bytes": self.freed_bytes,
            "skipped_chunks": self.skipped_chunks,
            "leftovers_removed": self.leftovers_removed,
            "unreadable": [u.to_json() for u in self.unreadable],
        }


def apply_retention(manifests: Sequence[Manifest | ManifestHead], retention: Retention) -> list[SnapshotDecision]:
    """Pure: which snapshots each rule keeps, per source. No rule set: keep everything."""
    no_rule = retention.keep_last is None and retention.keep_daily is None and retention.keep_weekly is None
    by_source: dict[str, list[Manifest | ManifestHead]] = {}
    for m in manifests:
        by_source.setdefault(m.source, []).append(m)
    decisions = []
    for source in sorted(by_source):
        newest_first = sorted(by_source[source], key=lambda m: (m.created_at, m.id), reverse=True)
        reasons: dict[str, list[str]] = {m.id: [] for m in newest_first}
        if no_rule:
            for m in newest_first:
                reasons[m.id].append("no retention rule")
        for m in newest_first[: retention.keep_last or 0]:
            reasons[m.id].append(f"last {retention.keep_last}")
        _keep_buckets(newest_first, retention.keep_daily, lambda at: at.strftime("%Y-%m-%d"), "daily", reasons)
        _keep_buckets(newest_first, retention.keep_weekly, lambda at: f"{at.isocalendar()[0]}-W{at.isocalendar()[1]:02d}", "weekly", reasons)
        for m in newest_first:
            decisions.append(SnapshotDecision(m.id, m.source, m.created_at, bool(reasons[m.id]), tuple(reasons[m.id])))
    return sorted(decisions, key=lambda d: (d.created_at, d.id))


def _keep_buckets(newest_first: list[Manifest | ManifestHead], count: int | None, bucket_of: Any, label: str, reasons: dict[str, list[str]]) -> None:
    """Keep the newest snapshot of each of the ``count`` most recent buckets (days, weeks) that have one."""
    if not count:
        return
    seen: set[str] = set()
    for m in newest_first:
        bucket = bucket_of(m.created_at)
        if bucket in seen:
            continue
        if len(seen) >= count:
            break
        seen.add(bucket)
        reasons[m.id].append(f"{label} {bucket}")


def plan_prune(repo: Repository, retention: Retention, *, now: datetime) -> PrunePlan:
    """Read-only: what prune would forget and delete at ``now``."""
    catalog = repo.heads()  # retention and references need no file entries
    manifests = catalog.manifests
    decisions = apply_retention(manifests, retention)
    keep_ids = {d.id for d in decisions if d.keep}
    referenced: set[str] = set()
    for m in manifests:
        if m.id in keep_ids:
            referenced |= m.chunk_ids()
    to_delete, freed, in_grace = [], 0, 0
    chunks = repo.list_chunks()
    for chunk_id, (size, modified) in sorted(chunks.items()):
        if chunk_id in referenced:
            continue
        if (now - modified).total_seconds() < retention.grace_seconds:
            in_grace += 1
            continue
        to_delete.append(chunk_id)
        freed += size
    # A bad/<id> still needed tells the next snapshot not to trust chunks/.../<id>: it stays.
    bad = [
        chunk_id
        for chunk_id, (_size, modified) in sorted(repo.quarantined().items())
        if chunk_id not in referenced and (now - modified).total_seconds() >= retention.grace_seconds
    ]
    if catalog.unreadable:
        to_delete, freed, bad = [], 0, []
    return PrunePlan(
        tuple(decisions), tuple(to_delete), freed, in_grace, now, retention.grace_seconds, catalog.unreadable, tuple(bad)
    )


def execute_prune(repo: Repository, plan: PrunePlan, *, workers: int | None = None, wait_seconds: float | None = None) -> PruneResult:
    """Forget the plan's snapshots, then delete its chunks, under the exclusive store lock.

    Manifests are re-read under the lock: a chunk referenced by any snapshot still present
    (including one committed after the plan was made) is never deleted, and nothing is
    deleted while any manifest is unreadable.
    """
    forget = set(plan.forget)
    with repo.lock(exclusive=True, wait_seconds=wait_seconds):
        for snapshot_id in sorted(forget):
            repo.delete_manifest(snapshot_id)
            log.info("forgot snapshot %s", snapshot_id)
        catalog = repo.heads()
        still_referenced: set[str] = set()
        for m in catalog.manifests:
            still_referenced |= m.chunk_ids()
        present = repo.list_chunks()
        doomed = [c for c in plan.chunks_to_delete if c not in still_referenced and c in present]
        if catalog.unreadable:
            doomed = []
            for bad in catalog.unreadable:
                log.warning("snapshot %s is unreadable (%s): no chunk deleted", bad.id, bad.key)
        skipped = len(plan.chunks_to_delete) - len(doomed)
        if doomed:
            with ThreadPoolExecutor(workers or repo.workers, thread_name_prefix="ck-prune") as pool:
                list(pool.map(repo.delete_chunk, doomed))
        freed = sum(present[c][0] for c in doomed)
        if not catalog.unreadable:
            for chunk_id in plan.quarantined_to_delete:
                if chunk_id not in still_referenced:
                    repo.delete_quarantined(chunk_id)
        leftovers = repo.store.cleanup(datetime.now(UTC) - timedelta(seconds=plan.grace_seconds))
    log.info("prune: forgot %d snapshots, deleted %d chunks (%d bytes), %d leftovers", len(forget), len(doomed), freed, leftovers)
    return PruneResult(tuple(sorted(forget)), len(doomed), freed, skipped, leftovers, catalog.unreadable)
