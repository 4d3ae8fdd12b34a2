"""A section's entries kept in tree chunks (``clonekit.files/2``): written and read back through
the real store, cut by content, refused when damaged, and the old format still read."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from clonekit.config import FileSource
from clonekit.errors import IntegrityError
from clonekit.files import TREE_FORMAT, capture_files, iter_entries, restore_files
from clonekit.files.entries import TREE_MAX_BYTES, TREE_MIN_BYTES, EntryWriter
from clonekit.manifest import Manifest, Record, canonical_json, collect_chunk_refs
from clonekit.repository import chunk_key


def _entry(i: int, pack: str) -> Record:
    return Record({"path": f"2024/{i:06d}.jpg", "type": "file", "mode": 0o644, "uid": 33, "gid": 33,
                   "mtime_ns": 1_700_000_000_000_000_000 + i, "size": 1000 + i, "ino": 5000 + i, "ctime_ns": 7 + i,
                   "sha256": f"{i:064x}", "chunks": [{"id": pack, "size": 4_000_000}], "offset": i * 1000})


def _write(repo, entries) -> dict:
    with repo.writer() as writer:
        out = EntryWriter(writer)
        for item in entries:
            out.add(item)
        return out.finish()


def test_entries_round_trip_through_tree_chunks_cut_by_content(repo):
    packs = [f"{p:064x}" for p in range(1, 21)]
    entries = [_entry(i, packs[i // 1000]) for i in range(20_000)]
    fields = _write(repo, entries)
    section = {"kind": "files", "format": TREE_FORMAT, "path": "/srv/files", **fields}
    assert list(iter_entries(section, repo)) == entries
    assert all(isinstance(item, Record) for item in iter_entries(section, repo))
    # every chunk a snapshot needs is under a "chunks" key: prune and verify see them unread
    assert sorted(collect_chunk_refs(section)) == sorted([*packs, *(ref["id"] for ref in fields["tree"]["chunks"])])
    sizes = [ref["size"] for ref in fields["tree"]["chunks"]]
    assert len(sizes) >= 3 and all(size <= TREE_MAX_BYTES for size in sizes)
    assert all(size >= TREE_MIN_BYTES for size in sizes[:-1])

    # a file added in the middle changes the chunk it lands in, not the chunks after it
    added = Record({**_entry(10_000, packs[0]), "path": "2024/009999a.jpg"})
    grown = [*entries[:10_000], added, *entries[10_000:]]
    after = _write(repo, grown)
    before_ids = [ref["id"] for ref in fields["tree"]["chunks"]]
    after_ids = [ref["id"] for ref in after["tree"]["chunks"]]
    assert len(set(after_ids) - set(before_ids)) <= 2 and len(set(before_ids) & set(after_ids)) >= len(before_ids) - 2


def test_a_damaged_or_unknown_tree_is_refused_and_a_first_format_section_still_read(repo, tmp_path):
    root = tmp_path / "site"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.txt").write_text("hello")
    with repo.writer() as writer:
        section = json.loads(canonical_json(capture_files(FileSource(str(root)), writer, store=repo)))
    assert section["format"] == TREE_FORMAT and "entries" not in section
    tree_id = section["tree"]["chunks"][0]["id"]

    # the manifest of clonekit.files/1 held its entries: still restored the same
    old = {**{k: v for k, v in section.items() if k not in ("tree", "content")}, "format": "clonekit.files/1",
           "entries": json.loads(canonical_json(list(iter_entries(section, repo))))}
    restore_files(repo, old, tmp_path / "old")
    assert (tmp_path / "old" / "a" / "x.txt").read_text() == "hello"

    newer = {**section, "format": "clonekit.files/9"}
    with pytest.raises(IntegrityError, match="clonekit.files/9") as caught:
        restore_files(repo, newer, tmp_path / "newer")
    assert caught.value.hint == "upgrade clonekit"
    with pytest.raises(IntegrityError, match="tree chunk"):
        restore_files(repo, {**section, "tree": {"chunks": "nope"}}, tmp_path / "garbled")

    stored = Path(repo.url) / chunk_key(tree_id)
    blob = bytearray(stored.read_bytes())
    blob[-5] ^= 0xFF
    os.chmod(stored, 0o600)
    stored.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        restore_files(repo, section, tmp_path / "damaged")


def test_a_previous_tree_that_cannot_be_read_means_every_file_is_read_again(repo, tmp_path, caplog):
    root = tmp_path / "site"
    root.mkdir()
    for i in range(5):
        (root / f"f{i}.jpg").write_bytes(os.urandom(3000))
    with repo.writer() as writer:
        first = capture_files(FileSource(str(root)), writer, store=repo)
    for ref in first["tree"]["chunks"]:
        repo.delete_chunk(ref["id"])  # deleted by hand or by a lifecycle rule
    with caplog.at_level(logging.WARNING, logger="clonekit.files"), repo.writer() as writer:
        second = capture_files(FileSource(str(root)), writer, previous=first, store=repo)
    assert "cannot be read" in caplog.text and second["read_files"] == 5
    restore_files(repo, second, tmp_path / "out")  # the new snapshot is whole: its tree stored again
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"f{i}.jpg" for i in range(5)]


def test_manifests_of_the_first_format_are_still_read(repo):
    manifest = Manifest.from_json(json.dumps({
        "format_version": 1, "id": "prod-20261126-053012-7f3a", "source": "prod", "created_at": "2026-11-26T05:30:12Z",
        "database": None, "services": None,
        "files": [{"kind": "files", "format": "clonekit.files/1", "path": "/srv", "entries": []}]}).encode())
    assert manifest.format_version == 1 and list(iter_entries(manifest.files[0], repo)) == []
