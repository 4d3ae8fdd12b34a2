"""A manifest's head (`ManifestHead`): what `clonekit snapshots`, `prune` and the dashboard read.
It must name exactly the chunks the whole manifest names (prune deletes what no head names), tell
users the same summary, and hold none of the file entries: with 8 snapshots of 100,000 files,
reading them whole took `snapshots` to 222 MiB and `prune` to 243 MiB (docs/benchmarks.md)."""

from __future__ import annotations

import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import make_manifest

from clonekit.config import StoreConfig
from clonekit.errors import IntegrityError
from clonekit.manifest import FORMAT_VERSION, Manifest, ManifestHead
from clonekit.prune import Retention, plan_prune
from clonekit.repository import Repository

AT = datetime(2026, 12, 3, 1, tzinfo=UTC)


def _ref(rng: random.Random) -> dict[str, Any]:
    n = rng.randrange(40)  # a chunk's size is its content's: one size per id
    return {"id": f"{n:064x}", "size": (1, 2_000, 4_000_000)[n % 3]}


def _entry(i: int, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "file", "mode": 0o100644, "uid": 33, "gid": 33, "mtime_ns": 1_764_000_000_000_000_000 + i,
            "path": f"2024/photo-{i}.jpg", "size": 2_000 + i, "sha256": f"{i:064x}", "chunks": chunks}


def _random_manifest(rng: random.Random, snapshot_id: str, files: int, *, later: bool = True) -> Manifest:
    """References everywhere a manifest may hold them: file entries (one pack shared by many,
    some files with several chunks, some with none), a section's own list, nested deeper in a
    section of a later version, the database's tables and the services."""
    pack = _ref(rng)
    entries: list[dict[str, Any]] = [{"type": "dir", "mode": 0o40755, "uid": 0, "gid": 0, "mtime_ns": 1, "path": "2024"}]
    for i in range(files):
        roll = rng.random()
        chunks: list[Any] = [pack] if roll < 0.6 else [_ref(rng) for _ in range(rng.randrange(0, 4))]
        entry = _entry(i, chunks)
        if later and roll > 0.9:  # what a later version may write: references nested in an entry, a size missing
            chunks.append([_ref(rng), {"chunks": [_ref(rng)]}])
            entry["xattrs"] = {"user.big": {"chunks": [_ref(rng), {"id": f"f{i:063x}"}]}}
            entry["streams"] = [{"chunks": [_ref(rng)]}, 3]
        entries.append(entry)
    sections = ({"kind": "files", "path": "/srv/uploads", "entries": entries, "chunks": [_ref(rng)]},
                {"kind": "later", "deeper": [{"x": {"chunks": [_ref(rng)]}}], "entries": []})
    database = {"tables": [{"name": f"t{i}", "policy": rng.choice(["copy", "sanitized", "empty"]),
                            "rows": rng.randrange(100), "chunks": [_ref(rng)]} for i in range(rng.randrange(1, 6))]}
    services = {"services": {"web": {"image": "drupal"}}, "volumes": [{"path": "/data", "chunks": [_ref(rng)]}]}
    return make_manifest(snapshot_id=snapshot_id, at=AT, database=database, files=sections, services=services,
                         stats={"plain_bytes": rng.randrange(10**9), "new_bytes": 5, "strict": True})


def test_a_head_names_the_chunks_and_tells_the_summary_of_its_whole_manifest():
    rng = random.Random(18)
    pairs: dict[tuple[str, int], tuple[str, int]] = {}
    for n in range(60):
        manifest = _random_manifest(rng, f"prod-20261203-0100{n:02d}-aaaa", rng.randrange(0, 50))
        head = ManifestHead.from_json(manifest.to_json(), pairs)
        assert head.chunk_refs() == manifest.chunk_refs() and head.chunk_ids() == manifest.chunk_ids()
        assert len(head.refs) == len(set(head.refs))
        assert head.summary() == manifest.summary() and head.sanitization() == manifest.sanitization()
        assert head == ManifestHead.of(manifest, pairs)
        assert (head.id, head.source, head.created_at, head.stats) == (manifest.id, manifest.source, AT, manifest.stats)
    # a chunk named by several heads is one pair, held once
    first, second = (ManifestHead.from_json(_random_manifest(random.Random(1), f"prod-20261203-01000{i}-aaaa", 5).to_json(), pairs)
                     for i in (1, 2))
    assert all(a is b for a, b in zip(first.refs, second.refs, strict=True))


def test_a_bad_manifest_is_as_unreadable_as_a_head():
    good = _random_manifest(random.Random(3), "prod-20261203-010000-aaaa", 3).to_json()
    for bad in (b"{", b"[]", good.replace(b'"format_version":%d' % FORMAT_VERSION, b'"format_version":99'),
                good.replace(b'"created_at":"', b'"created_at":"x')):
        for kind in (Manifest, ManifestHead):
            with pytest.raises(IntegrityError):
                kind.from_json(bad)


def test_a_head_holds_none_of_the_entries_even_while_it_is_read():
    """20,000 files: read whole, their entries take ~12 MB, and ~26 MB as the dicts json.loads
    makes; a head lets each go as it is read, and keeps its references only."""
    manifest = _random_manifest(random.Random(5), "prod-20261203-010000-aaaa", 20_000, later=False)
    data = manifest.to_json().decode()  # as the repository gives it (its bytes let go)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        head = ManifestHead.from_json(data)
        held, peak = (m - before for m in tracemalloc.get_traced_memory())
        tracemalloc.reset_peak()
        whole = Manifest.from_json(data)
        peak_whole = tracemalloc.get_traced_memory()[1] - before - held
    finally:
        tracemalloc.stop()
    assert head.chunk_refs() == whole.chunk_refs()
    assert held < 100_000, f"a head of 20,000 files holds {held:,} bytes"
    assert peak < 1_000_000, f"reading the head of 20,000 files took {peak:,} bytes at its peak"
    assert peak_whole > 10 * peak  # the measure can tell


def _commit_tree(repo: Repository, snapshot_id: str, files: int, pack: dict[str, Any]) -> Manifest:
    entries = [_entry(i, [pack]) for i in range(files)]
    manifest = make_manifest(snapshot_id=snapshot_id, at=datetime.strptime(snapshot_id[5:20], "%Y%m%d-%H%M%S").replace(tzinfo=UTC),
                             files=({"kind": "files", "path": "/srv", "entries": entries},))
    repo.commit(manifest)
    return manifest


def test_heads_list_the_store_like_the_catalog_and_prune_reads_no_entry(tmp_path: Path):
    config = StoreConfig(url=str(tmp_path / "store"))
    writer = Repository.open(config)
    with writer.writer() as w:
        pack = dict(w.put(b"the bytes of a pack").to_json())
        other = dict(w.put(b"a chunk only the oldest snapshot names").to_json())
    ids = ["prod-20261201-010000-aaaa", "prod-20261202-010000-bbbb", "prod-20261203-010000-cccc"]
    oldest = make_manifest(snapshot_id=ids[0], at=AT - timedelta(days=2),
                           files=({"kind": "files", "path": "/srv", "entries": [_entry(0, [other])]},))
    writer.commit(oldest)
    for snapshot_id in ids[1:]:
        _commit_tree(writer, snapshot_id, 2_000, pack)
    (tmp_path / "store" / "snapshots" / "prod-20261204-010000-dddd.json").write_bytes(b"not a manifest")

    repo = Repository.open(config, create=False)
    heads = repo.heads()
    assert [h.id for h in heads.manifests] == ids
    assert [u.id for u in heads.unreadable] == ["prod-20261204-010000-dddd"]
    assert not repo._manifest_cache  # no manifest was read whole
    assert [h.summary() for h in heads.manifests] == [m.summary() for m in repo.catalog().manifests]

    (tmp_path / "store" / "snapshots" / "prod-20261204-010000-dddd.json").unlink()
    fresh = Repository.open(config, create=False)
    plan = plan_prune(fresh, Retention(keep_last=2, grace_seconds=0), now=datetime.now(UTC))
    assert not fresh._manifest_cache
    assert plan.forget == (ids[0],) and plan.chunks_to_delete == (other["id"],)
    fresh.delete_manifest(ids[0])
    assert [h.id for h in fresh.heads().manifests] == ids[1:]
    assert (other["id"], other["size"]) not in fresh._head_pairs  # let go with the forgotten head


def test_with_stats_sets_stats_and_keeps_the_references_walked_once():
    manifest = _random_manifest(random.Random(7), "prod-20261203-010000-aaaa", 30)
    refs = manifest.chunk_refs()
    counted = manifest.with_stats(plain_bytes=sum(refs.values()))
    assert counted.stats == {**manifest.stats, "plain_bytes": sum(refs.values())}
    assert list(counted.stats) == list(manifest.stats)  # the key keeps its place
    assert counted.chunk_refs() == refs and counted.files == manifest.files and counted.id == manifest.id
    assert counted.__dict__["_refs"] is manifest.__dict__["_refs"]  # not walked again
    assert make_manifest(snapshot_id="prod-20261203-010000-bbbb", at=AT).with_stats(a=1).chunk_refs() == {}
