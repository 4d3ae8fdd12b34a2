"""A section's entries kept in tree chunks (``clonekit.files/2``): written and read back through
the real store, cut by content, refused when damaged, and the old format still read."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from clonekit.config import FileSource
from clonekit.errors import IntegrityError
from clonekit.files import TREE_FORMAT, capture_files, iter_entries, iter_tar, restore_files
from clonekit.files.entries import TREE_MAX_BYTES, TREE_MIN_BYTES, EntryWriter
from clonekit.manifest import Manifest, Record, canonical_json, collect_chunk_refs
from clonekit.transport.ssh import SshSession
from tests.files.conftest import damage_chunk


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

    damage_chunk(repo, tree_id)
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
    assert caplog.text.count("cannot be read") == 1 and second["read_files"] == 5  # said once
    restore_files(repo, second, tmp_path / "out")  # the new snapshot is whole: its tree stored again
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"f{i}.jpg" for i in range(5)]


def test_manifests_of_the_first_format_are_still_read(repo):
    manifest = Manifest.from_json(json.dumps({
        "format_version": 1, "id": "prod-20261126-053012-7f3a", "source": "prod", "created_at": "2026-11-26T05:30:12Z",
        "database": None, "services": None,
        "files": [{"kind": "files", "format": "clonekit.files/1", "path": "/srv", "entries": []}]}).encode())
    assert manifest.format_version == 1 and list(iter_entries(manifest.files[0], repo)) == []


@pytest.mark.parametrize("over_ssh", [False, True], ids=["local", "ssh"])
def test_a_tree_captured_in_small_windows_is_the_same_tree(
    repo, awkward_tree, tmp_path, monkeypatch, assert_same_tree, over_ssh, request
):
    """Windows of 3 entries: hard links, packs and reuse cross window boundaries alike."""
    from clonekit.files import capture as capture_module
    from clonekit.files import remote as remote_module
    from clonekit.files import restore as restore_module

    with contextlib.ExitStack() as stack:
        ssh = stack.enter_context(SshSession.connect(request.getfixturevalue("ssh_target"))) if over_ssh else None

        def captured(previous=None):
            with repo.writer() as writer:
                return capture_files(FileSource(str(awkward_tree)), writer, ssh=ssh, previous=previous, store=repo)

        whole = captured()
        monkeypatch.setattr(remote_module.RemoteTree if over_ssh else capture_module._LocalTree, "window", 3)
        monkeypatch.setattr(remote_module, "SORT_RUN_RECORDS", 4)  # the listing over SSH sorted in runs
        windowed = captured()

        def described(section):  # packs close at each window's end: where contents are differs, not what
            return [{k: v for k, v in item.items() if k not in ("chunks", "offset")}
                    for item in iter_entries(section, repo)]

        assert described(windowed) == described(whole) and windowed["files"] == whole["files"]
        again = captured(windowed)
    assert again["read_files"] == 0 and again["tree"] == windowed["tree"]
    # restored two files at a time: a pack chunk and hard links span batches
    monkeypatch.setattr(restore_module, "CONTENT_BATCH_FILES", 2)
    restore_files(repo, again, tmp_path / "out")
    assert_same_tree(awkward_tree, tmp_path / "out")
    (tmp_path / "untarred").mkdir()
    tar = subprocess.run(["tar", "-x", "-p", "--same-owner", "-C", str(tmp_path / "untarred")],
                         input=b"".join(iter_tar(repo, again)), capture_output=True, check=False)
    assert tar.returncode == 0 and tar.stderr == b""
    assert_same_tree(awkward_tree, tmp_path / "untarred")


def test_previous_files_are_found_in_order_and_never_wrongly():
    from clonekit.files.tree import PreviousFiles

    entries = [_entry(i, "a" * 64) for i in range(10)]
    found = PreviousFiles(entries)
    assert found.get(b"2024/000002.jpg") is entries[2]
    assert found.get(b"2024/000002.jpg") is entries[2]  # asked twice: the same answer
    assert found.get(b"2024/000004a.jpg") is None  # not in the previous tree
    assert found.get(b"2024/000007.jpg") is entries[7]
    assert found.get(b"2024/000003.jpg") is None  # out of order: read again, which is safe
    assert found.get(b"2024/000009.jpg") is entries[9] and found.get(b"2025/x.jpg") is None

    errors: list[IntegrityError] = []

    def broken():
        yield entries[0]
        raise IntegrityError("chunk gone")

    found = PreviousFiles(broken(), on_error=errors.append)
    assert found.get(b"2024/000000.jpg") is entries[0]
    assert found.get(b"2024/000001.jpg") is None and found.get(b"2024/000005.jpg") is None
    assert [e.message for e in errors] == ["chunk gone"]


def test_previous_contents_tell_apart_hashes_that_share_a_prefix(repo):
    from clonekit.files.entries import PreviousContents

    def file(path: str, sha: str) -> dict:
        return {**_entry(0, "b" * 64), "path": path, "sha256": sha}

    shared = "abcdef012345"
    first, second = shared + "1" * 52, shared + "2" * 52
    entries = [file("a.jpg", first), file("b.jpg", "9" * 64), file("c.jpg", second)]
    fields = _write(repo, [Record(item) for item in entries])
    section = {"kind": "files", "format": TREE_FORMAT, "path": "/srv", **fields}
    contents = PreviousContents(section, repo)
    assert contents.get(second)["path"] == "c.jpg" and contents.get(first)["path"] == "a.jpg"
    assert contents.get(shared + "3" * 52) is None and contents.get("0" * 64) is None
    old = {"kind": "files", "format": "clonekit.files/1", "path": "/srv", "entries": entries}
    assert PreviousContents(old, None).get(second)["path"] == "c.jpg"


def _numbered_tree(root: Path, count: int) -> Path:
    """``count`` files of a few bytes, 500 a folder."""
    for i in range(count):
        folder = root / f"{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.jpg").write_bytes(b"%d" % i)
    return root


def _small_tree_chunks(monkeypatch) -> None:
    from clonekit.files import entries as entries_module

    monkeypatch.setattr(entries_module, "TREE_MAX_BYTES", 64 * 1024)
    monkeypatch.setattr(entries_module, "TREE_MIN_BYTES", 8 * 1024)


def test_a_nightly_capture_holds_no_more_for_four_times_the_files(repo, tmp_path, monkeypatch):
    """Memory of a capture of an unchanged tree does not grow with its files (tracemalloc peak;
    before the tree chunks and the windows it grew by about 1.1 MiB per 1,000 files). Windows and
    tree chunks are made small here, so that 4,000 files already span many of each."""
    import tracemalloc

    from clonekit.files import capture as capture_module

    monkeypatch.setattr(capture_module._LocalTree, "window", 500)
    _small_tree_chunks(monkeypatch)

    def nightly_peak(count: int) -> int:
        root = _numbered_tree(tmp_path / f"tree-{count}", count)
        with repo.writer() as writer:
            first = capture_files(FileSource(str(root)), writer, store=repo)
        with repo.writer() as writer:
            tracemalloc.start()
            again = capture_files(FileSource(str(root)), writer, previous=first, store=repo)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert again["read_files"] == 0 and again["files"] == count and again["tree"] == first["tree"]
        return peak

    small, large = nightly_peak(4_000), nightly_peak(16_000)
    # 12,000 more entries held at once would be 3.5 MiB or more (300 bytes each at the least)
    assert large - small < 1024 * 1024, (small, large)


def test_a_restore_holds_no_more_for_four_times_the_files(repo, tmp_path, monkeypatch):
    """A tree in chunks is restored as it streams, a batch of files at a time (tracemalloc peak,
    as above). 16,000 one-byte files share one pack chunk: a walk ahead to the next chunk to
    fetch would reach the end of the tree."""
    import tracemalloc

    from clonekit.files import restore as restore_module

    _small_tree_chunks(monkeypatch)
    monkeypatch.setattr(restore_module, "CONTENT_BATCH_FILES", 500)

    def restore_peak(count: int) -> int:
        root = _numbered_tree(tmp_path / f"tree-{count}", count)
        with repo.writer() as writer:
            section = capture_files(FileSource(str(root)), writer, store=repo)
        tracemalloc.start()
        stats = restore_files(repo, section, tmp_path / f"out-{count}")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert stats.files == count
        return peak

    small, large = restore_peak(4_000), restore_peak(16_000)
    assert large - small < 1024 * 1024, (small, large)


def test_a_tree_out_of_order_is_refused(repo, tmp_path):
    entries = [Record({"path": name, "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime_ns": 1})
               for name in ("b", "a")]
    section = {"kind": "files", "format": TREE_FORMAT, "path": "/srv", **_write(repo, entries)}
    with pytest.raises(IntegrityError, match="out of order"):
        restore_files(repo, section, tmp_path / "out")
