"""Small files are packed into shared chunks, yet deduplicated by content across snapshots."""

from __future__ import annotations

import os

from clonekit.config import FileSource
from clonekit.files import capture_files, iter_entries, iter_tar, restore_files
from clonekit.files.storer import PACK_TARGET_BYTES
from clonekit.manifest import collect_chunk_refs


def capture(repo, root, *, previous=None):
    with repo.writer() as writer:
        section = capture_files(FileSource(str(root)), writer, previous=previous, store=repo)
    return section, writer.stats


def content_bytes(section, stats) -> int:
    """The bytes handed to the store for the files' contents: all but the tree chunks'."""
    return stats.plain_bytes - sum(ref["size"] for ref in section["tree"]["chunks"])


def test_many_small_files_share_few_chunks(repo, tmp_path, describe_tree):
    root = tmp_path / "thumbs"
    root.mkdir()
    for i in range(300):
        (root / f"t{i:03d}.jpg").write_bytes(os.urandom(20_000 + i))
    section, stats = capture(repo, root)
    entries = list(iter_entries(section, repo))
    total = sum(e["size"] for e in entries)
    chunks = collect_chunk_refs(section["content"])
    assert len(chunks) <= total // PACK_TARGET_BYTES + 1  # 300 files, 2 store objects
    assert all("offset" in e for e in entries)
    assert stats.new_chunks == len(chunks) + len(section["tree"]["chunks"])
    restore_files(repo, section, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")
    assert len(b"".join(iter_tar(repo, section))) > total


def test_moved_and_copied_files_are_not_stored_again(repo, tmp_path, describe_tree):
    root = tmp_path / "uploads"
    (root / "2024").mkdir(parents=True)
    photo = os.urandom(50_000)
    (root / "2024" / "photo.jpg").write_bytes(photo)
    (root / "other.jpg").write_bytes(os.urandom(30_000))
    first, _ = capture(repo, root)
    (root / "2025").mkdir()
    os.rename(root / "2024" / "photo.jpg", root / "2025" / "renamed.jpg")  # moved
    (root / "copy.jpg").write_bytes(photo)  # copied
    (root / "twin-a.bin").write_bytes(b"twins" * 1000)  # the same new bytes twice: stored once
    (root / "twin-b.bin").write_bytes(b"twins" * 1000)
    second, stats = capture(repo, root, previous=first)
    assert second["read_files"] == 4
    assert content_bytes(second, stats) == 5000  # only one twin went to the store
    restore_files(repo, second, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")


def test_files_are_read_in_bounded_groups_in_their_order():
    from clonekit.files.capture import BATCH_BYTES, BATCH_FILES, _batches
    from clonekit.files.storer import PACK_FILE_BYTES
    from clonekit.files.tree import FILE, Entry

    sizes = [10] * (BATCH_FILES + 3) + [PACK_FILE_BYTES] + [PACK_FILE_BYTES - 1] * 9 + [0, PACK_FILE_BYTES * 3, 5]
    entries = [Entry(f"f{i:04d}".encode(), FILE, 0o644, 0, 0, 0, size=size) for i, size in enumerate(sizes)]
    groups = _batches(entries)
    assert [e for g in groups for e in g] == entries  # every file once, in path order: the same packs
    for group in groups:
        if any(e.size >= PACK_FILE_BYTES for e in group):
            assert len(group) == 1  # a large file is read in pieces by itself
        else:
            assert len(group) <= BATCH_FILES and (len(group) == 1 or sum(e.size for e in group) <= BATCH_BYTES)
    assert [len(g) for g in groups[:2]] == [BATCH_FILES, 3]


def test_short_reads_of_small_files_are_read_to_their_end(repo, tmp_path, monkeypatch, describe_tree):
    """A network file system may return fewer bytes than asked before the end of a file."""
    from clonekit.files import local

    root = tmp_path / "nfs"
    root.mkdir()
    for i in range(40):
        (root / f"f{i}").write_bytes(os.urandom(i * 997))
    original = os.read
    monkeypatch.setattr(local.os, "read", lambda fd, size: original(fd, min(size, 333)))
    section, _ = capture(repo, root)
    monkeypatch.undo()
    assert section["read_files"] == 40
    restore_files(repo, section, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")


def test_moved_files_whose_old_pack_is_gone_are_stored_again(repo, tmp_path, describe_tree):
    root = tmp_path / "uploads"
    root.mkdir()
    photo = os.urandom(40_000)
    (root / "photo.jpg").write_bytes(photo)
    first, _ = capture(repo, root)
    for chunk_id in collect_chunk_refs(first["content"]):  # deleted by hand or by a lifecycle rule
        repo.delete_chunk(chunk_id)
    os.rename(root / "photo.jpg", root / "moved.jpg")
    (root / "copy.jpg").write_bytes(photo)
    second, stats = capture(repo, root, previous=first)
    assert second["read_files"] == 2
    assert content_bytes(second, stats) == len(photo)  # stored again, once for both paths
    restore_files(repo, second, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")


def test_the_same_bytes_in_a_later_pack_are_not_stored_again(repo):
    from clonekit.files.storer import Storer

    photo = os.urandom(30_000)
    with repo.writer() as writer:
        storer = Storer(writer)
        storer.small(b"a.jpg", photo)
        storer.small(b"b.jpg", os.urandom(100))
        first = storer.take()  # a window's end: the pack is closed
        storer.small(b"copy.jpg", photo)
        storer.small(b"other.jpg", os.urandom(200))
        second = storer.take()
    assert storer.packs == 2 and storer.reused == 1
    assert second[b"copy.jpg"] == first[b"a.jpg"]  # the same chunk and offset, not a second copy
    assert second[b"other.jpg"].chunks != first[b"a.jpg"].chunks
