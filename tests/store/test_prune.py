"""Retention (pure) and plan-then-execute garbage collection on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clonekit.config import Retention
from clonekit.errors import LockedError
from clonekit.manifest import Manifest
from clonekit.prune import apply_retention, execute_prune, plan_prune
from clonekit.repository import Repository, chunk_key
from tests.store.conftest import hours_ago, make_manifest, payloads

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


def _snap(source: str, at: datetime) -> Manifest:
    return make_manifest([], source=source, at=at)


def _kept(decisions) -> set[str]:
    return {d.id for d in decisions if d.keep}


def test_no_rule_keeps_everything():
    snaps = [_snap("prod", T0 - timedelta(days=i)) for i in range(5)]
    assert _kept(apply_retention(snaps, Retention())) == {s.id for s in snaps}


def test_keep_last_is_per_source():
    prod = [_snap("prod", T0 - timedelta(hours=i)) for i in range(5)]
    staging = [_snap("staging", T0 - timedelta(days=9))]
    kept = _kept(apply_retention(prod + staging, Retention(keep_last=2)))
    assert kept == {prod[0].id, prod[1].id, staging[0].id}


def test_keep_daily_keeps_newest_of_each_recent_day():
    # three snapshots a day for four days
    snaps = [_snap("prod", T0 - timedelta(days=d, hours=h)) for d in range(4) for h in (0, 2, 4)]
    decisions = apply_retention(snaps, Retention(keep_daily=3))
    kept = [d for d in decisions if d.keep]
    assert {d.id for d in kept} == {snaps[0].id, snaps[3].id, snaps[6].id}
    assert all(d.reasons[0].startswith("daily ") for d in kept)


def test_keep_weekly_and_reasons_combine():
    snaps = [_snap("prod", T0 - timedelta(weeks=w)) for w in range(4)]
    decisions = {d.id: d for d in apply_retention(snaps, Retention(keep_last=1, keep_weekly=2))}
    assert decisions[snaps[0].id].reasons == ("last 1", "weekly 2026-W48")
    assert decisions[snaps[1].id].keep and not decisions[snaps[2].id].keep


def _two_snapshots(repo: Repository):
    old_only, shared, new_only = payloads(2, seed=b"o"), payloads(2, seed=b"s"), payloads(2, seed=b"n")
    with repo.writer() as writer:
        old_refs = [writer.put(p) for p in old_only + shared]
        new_refs = [writer.put(p) for p in shared + new_only]
    old = make_manifest(old_refs, at=hours_ago(48))
    new = make_manifest(new_refs, at=hours_ago(1))
    repo.commit(old)
    repo.commit(new)
    return old, new, old_refs[:2]


def test_plan_respects_grace_then_execute_deletes(store_config):
    repo = Repository.open(store_config)
    old, new, old_only = _two_snapshots(repo)
    retention = Retention(keep_last=1, grace_seconds=3600)

    plan = plan_prune(repo, retention, now=datetime.now(UTC))  # the chunks were written seconds ago
    assert plan.forget == (old.id,) and plan.keep == (new.id,)
    assert plan.chunks_to_delete == () and plan.chunks_kept_in_grace == 2

    plan = plan_prune(repo, retention, now=datetime.now(UTC) + timedelta(hours=2))
    assert set(plan.chunks_to_delete) == {r.id for r in old_only} and plan.bytes_to_free > 0
    assert len(repo.manifests()) == 2  # planning (the dry run) changes nothing

    result = execute_prune(repo, plan, wait_seconds=0)
    assert result.forgotten == (old.id,) and result.deleted_chunks == 2 and result.freed_bytes == plan.bytes_to_free
    assert [m.id for m in repo.manifests()] == [new.id]
    assert not any(repo.has_chunk(r.id) for r in old_only)
    assert repo.verify(new).ok
    assert plan_prune(repo, retention, now=datetime.now(UTC) + timedelta(hours=2)).chunks_to_delete == ()


def test_prune_waits_for_a_running_snapshot(store_config):
    repo = Repository.open(store_config)
    _two_snapshots(repo)
    plan = plan_prune(repo, Retention(keep_last=1, grace_seconds=0), now=datetime.now(UTC))
    writer_repo = Repository.open(store_config)
    with writer_repo.lock(exclusive=False):  # a snapshot in progress
        with pytest.raises(LockedError):
            execute_prune(repo, plan, wait_seconds=0)
    assert len(repo.manifests()) == 2


def test_chunk_reused_by_a_snapshot_committed_after_the_plan_survives(store_config):
    repo = Repository.open(store_config)
    old, _, old_only = _two_snapshots(repo)
    plan = plan_prune(repo, Retention(keep_last=1, grace_seconds=0), now=datetime.now(UTC))
    assert {r.id for r in old_only} <= set(plan.chunks_to_delete)

    # Meanwhile another run deduplicates against one of those chunks and commits.
    other = Repository.open(store_config)
    with other.writer() as writer:
        reused = writer.put(other.get_chunk(old_only[0].id))
    assert writer.stats.new_chunks == 0
    late = make_manifest([reused], source="staging")
    other.commit(late)

    result = execute_prune(repo, plan, wait_seconds=0)
    assert result.skipped_chunks == 1 and result.deleted_chunks == len(plan.chunks_to_delete) - 1
    assert repo.has_chunk(old_only[0].id) and not repo.has_chunk(old_only[1].id)
    assert repo.verify(late).ok


def test_uncommitted_chunks_within_grace_survive(store_config):
    repo = Repository.open(store_config)
    with repo.writer() as writer:  # a snapshot still being written: no manifest yet
        refs = [writer.put(p) for p in payloads(3)]
    plan = plan_prune(repo, Retention(keep_last=1, grace_seconds=3600), now=datetime.now(UTC))
    execute_prune(repo, plan, wait_seconds=0)
    assert all(repo.store.exists(chunk_key(r.id)) for r in refs)
