"""A manifest's file entries held compactly: `Record`, the entries shared between manifests, the
manifest written in pieces. A tree of 100,000 files made a snapshot peak over 300 MiB when each
entry was a dict (docs/benchmarks.md); these tests hold the per-entry budget and the exact bytes."""

from __future__ import annotations

import pickle
import random
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard
from support import make_manifest

from clonekit.config import FileSource, StoreConfig
from clonekit.files import capture_files, iter_entries
from clonekit.manifest import Manifest, Record, SharedRecords, canonical_json, canonical_json_pieces
from clonekit.repository import HEADER_BYTES, Repository

PACK = {"id": "a" * 64, "size": 4_000_000}


def _entry(i: int, **changes: Any) -> dict[str, Any]:
    item = {"type": "file", "mode": 0o100644, "uid": 33, "gid": 33, "mtime_ns": 1_764_000_000_000_000_000 + i,
            "path": f"2024/{i % 12:02d}/photo-{i}-300x200.jpg", "size": 2_000 + i, "ino": 9_000_000 + i,
            "ctime_ns": 1_764_000_000_000_000_000 + i, "sha256": f"{i:064x}", "chunks": [dict(PACK)], "offset": i * 100}
    item.update(changes)
    return item


def _tree_manifest(entries: list[dict[str, Any]], snapshot_id: str = "prod-20261202-010000-aaaa") -> Manifest:
    section = {"kind": "files", "path": "/srv/uploads", "entries": [{"type": "dir", "mode": 0o40755, "uid": 0, "gid": 0,
                                                                      "mtime_ns": 1, "path": "2024"}, *entries]}
    return make_manifest(snapshot_id=snapshot_id, at=datetime(2026, 12, 2, 1, tzinfo=UTC), files=(section,),
                         services={"volumes": [{"type": "volume", "mode": "rw", "path": "/data", "uid": 0, "mtime_ns": 1}]})


def test_a_record_reads_and_compares_as_its_dict():
    item = _entry(7, sparse=True, extra_key_of_a_later_version={"x": [1]})
    record = Record(item)
    assert record == item and item == record and dict(record) == item
    assert list(record) == list(item) and len(record) == len(item)
    assert record["chunks"] == [PACK] and isinstance(record["chunks"], list)
    assert record.get("nope") is None and "offset" in record and "nope" not in record
    assert all(record.get(key) == item.get(key) for key in (*item, "nope"))
    assert record.get("nope", 5) == 5 and isinstance(record.get("chunks"), list)
    assert pickle.loads(pickle.dumps(record)) == item
    assert canonical_json(record) == canonical_json(item)
    assert Record(item) != Record(_entry(8)) and Record(item) != _entry(7)


def test_parsed_entries_are_records_sharing_their_pack_reference_and_nothing_else_changes():
    manifest = _tree_manifest([_entry(i) for i in range(50)])
    data = manifest.to_json()
    parsed = Manifest.from_json(data)
    entries = parsed.files[0]["entries"]
    assert all(isinstance(item, Record) for item in entries)
    assert entries[1]["chunks"][0] is entries[2]["chunks"][0]  # one reference object for the pack
    # an object of another section that merely has "type", "mode" and "path" stays a dict
    assert type(parsed.services["volumes"][0]) is dict  # type: ignore[index]
    assert parsed == manifest and parsed.to_json() == data
    assert parsed.chunk_refs() == manifest.chunk_refs() == {PACK["id"]: PACK["size"]}


def test_shared_records_hold_an_unchanged_entry_once_across_manifests():
    shared = SharedRecords()
    first = Manifest.from_json(_tree_manifest([_entry(i) for i in range(20)]).to_json(), shared)
    changed = [_entry(i) for i in range(20)]
    changed[5] = _entry(5, size=1)
    changed[6] = _entry(6, sparse=1)
    second_manifest = _tree_manifest(changed, "prod-20261203-010000-bbbb")
    second = Manifest.from_json(second_manifest.to_json(), shared)
    a, b = first.files[0]["entries"], second.files[0]["entries"]
    assert a[1] is b[1] and a[20] is b[20]
    assert a[6] is not b[6] and b[6]["size"] == 1
    # true and 1 are equal in Python, not in JSON: never merged
    third = Manifest.from_json(_tree_manifest([_entry(i, sparse=True) for i in range(20)], "prod-20261204-010000-cccc").to_json(), shared)
    assert third.files[0]["entries"][7] is not b[7]
    assert second.to_json() == second_manifest.to_json()
    assert b"\"sparse\":1" in second.to_json() and b"\"sparse\":true" in third.to_json()


def test_an_entry_takes_a_fraction_of_a_dict_and_a_shared_one_almost_nothing():
    data = _tree_manifest([_entry(i) for i in range(20_000)]).to_json()
    shared = SharedRecords()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        first = Manifest.from_json(data, shared)
        one = (tracemalloc.get_traced_memory()[0] - before) / 20_000
        second = Manifest.from_json(data, shared)
        both = (tracemalloc.get_traced_memory()[0] - before) / 20_000
    finally:
        tracemalloc.stop()
    assert first == second
    # as dicts from json.loads: about 1,300 bytes each
    assert one < 750, f"{one:.0f} bytes per parsed entry"
    assert both - one < 40, f"{both - one:.0f} more bytes per entry for the second manifest"


def test_a_captured_section_is_made_of_records(tmp_path: Path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    for i in range(300):
        (root / "a" / f"f{i}").write_bytes(b"x" * i)
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store")))
    with repo.writer() as writer:
        section = capture_files(FileSource(str(root)), writer)
    entries = list(iter_entries(section, repo))  # as a restore or the next capture reads them
    files = [item for item in entries if item["type"] == "file"]
    assert len(files) == 300 and all(isinstance(item, Record) for item in entries)
    packed = [item for item in files if "offset" in item]
    assert packed[0]["chunks"][0] is packed[-1]["chunks"][0]  # not a copy per file


def _stored_pack(repo: Repository) -> dict[str, Any]:
    with repo.writer() as writer:
        return dict(writer.put(b"the bytes of a pack").to_json())


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([0, -2, 3.5, "é\"\\\n", None, True, "", 10**20, (1, "t"), frozenset({3}),
                           datetime(2026, 1, 1, tzinfo=UTC)])
    if roll < 0.6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 12))]
    item = {rng.choice(["a", "é", "Z", "type", "chunks", "id", ""]) + str(rng.randrange(20)): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(0, 12))}
    if rng.random() < 0.1:
        return {3: item, 1: "int keys"}
    return Record(item) if rng.random() < 0.3 and all(isinstance(k, str) for k in item) else item


def test_json_in_pieces_is_the_canonical_json():
    rng = random.Random(18)
    for _ in range(1_000):
        value = _random_value(rng)
        assert b"".join(canonical_json_pieces(value)) == canonical_json(value)
    manifest = _tree_manifest([_entry(i) for i in range(100)])
    assert b"".join(manifest.json_pieces()) == manifest.to_json()


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_manifest_stored_in_pieces_reads_back_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encrypted: bool):
    if encrypted:
        monkeypatch.setenv("CK_TEST_KEY", "0f" * 32)
    config = StoreConfig(url=str(tmp_path / "store"), encryption_key_env="CK_TEST_KEY" if encrypted else None)
    repo = Repository.open(config)
    pack = _stored_pack(repo)
    manifest = _tree_manifest([_entry(i, chunks=[pack]) for i in range(2_000)])
    repo.commit(manifest)
    fresh = Repository.open(config, create=False)
    assert fresh.read_manifest(manifest.id).to_json() == manifest.to_json()
    if not encrypted:  # written as a stream: the frame does not know its size, decode reads it in pieces
        stored = (tmp_path / "store" / "snapshots" / f"{manifest.id}.json").read_bytes()
        assert zstandard.frame_content_size(stored[HEADER_BYTES:]) == -1
        assert fresh.decode("snapshots/x", stored) == manifest.to_json()


def test_the_catalog_lets_go_of_the_entries_of_forgotten_snapshots(tmp_path: Path):
    config = StoreConfig(url=str(tmp_path / "store"))
    writer = Repository.open(config)
    pack = _stored_pack(writer)
    old = _tree_manifest([_entry(i, size=1, chunks=[pack]) for i in range(30)], "prod-20261201-010000-aaaa")
    new = _tree_manifest([_entry(i, chunks=[pack]) for i in range(30)], "prod-20261202-010000-bbbb")
    writer.commit(old)
    writer.commit(new)
    repo = Repository.open(config, create=False)
    catalog = repo.catalog()
    assert [m.id for m in catalog.manifests] == [old.id, new.id]
    old_only = [r for r in catalog.manifests[0].files[0]["entries"] if r not in catalog.manifests[1].files[0]["entries"]]
    assert len(old_only) == 30 and all(any(r is h for h in repo._shared.records) for r in old_only)
    repo.delete_manifest(old.id)
    assert [m.id for m in repo.catalog().manifests] == [new.id]
    held = {id(r) for r in repo._shared.records}  # old_only keeps those alive: their ids stay theirs
    assert not any(id(r) in held for r in old_only)
    assert all(id(r) in held for r in repo.catalog().manifests[0].files[0]["entries"])
