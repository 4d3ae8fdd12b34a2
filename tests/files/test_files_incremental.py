"""Second captures: unchanged files are neither read nor sent; a file changing while read is never stored torn."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest

import clonekit.files.local as local_module
import clonekit.files.remote as remote_module
import clonekit.files.storer as storer_module
from clonekit.config import FileSource
from clonekit.errors import SourceError
from clonekit.files import capture_files, iter_entries, restore_files
from clonekit.transport.ssh import SshSession


def capture(repo, root: Path, *, ssh=None, previous=None):
    with repo.writer() as writer:
        section = capture_files(FileSource(str(root)), writer, ssh=ssh, previous=previous, store=repo)
    return section, writer.stats


def _uploads(root: Path, count: int = 200) -> Path:
    """A small uploads tree: many small files and one large. Seeded: the same bytes every run,
    so the content-defined cut points, and the byte counts asserted below, are the same too."""
    rng = random.Random(5)
    for i in range(count):
        folder = root / f"2024-{i % 12 + 1:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img-{i}.jpg").write_bytes(rng.randbytes(2000 + i * 37))
    (root / "video.mp4").write_bytes(rng.randbytes(12_000_000))
    return root


def _change_one_percent(root: Path) -> int:
    """Rewrite 2 small files and patch 1 KB in the middle of the big one; returns bytes changed."""
    rng = random.Random(6)
    (root / "2024-01" / "img-0.jpg").write_bytes(rng.randbytes(3000))
    (root / "2024-02" / "img-1.jpg").write_bytes(rng.randbytes(3000))
    with open(root / "video.mp4", "r+b") as fh:
        fh.seek(6_000_000)
        fh.write(rng.randbytes(1024))
    return 6000 + 1024


class _ReadSpy:
    def __init__(self, monkeypatch) -> None:
        self.paths: list[bytes] = []
        original, original_small = local_module.read_local, local_module.read_small

        def spy(root, entry, consume):
            self.paths.append(entry.path)
            return original(root, entry, consume)

        def spy_small(root, entry):
            self.paths.append(entry.path)
            return original_small(root, entry)

        monkeypatch.setattr(local_module, "read_local", spy)
        monkeypatch.setattr(local_module, "read_small", spy_small)


def test_local_second_capture_reads_nothing_unchanged(repo, tmp_path, monkeypatch, describe_tree):
    root = _uploads(tmp_path / "uploads")
    first, first_stats = capture(repo, root)
    spy = _ReadSpy(monkeypatch)
    again, stats = capture(repo, root, previous=first)
    assert spy.paths == [] and again["read_files"] == 0
    assert stats.new_plain_bytes == 0 and stats.new_chunks == 0
    assert again["tree"] == first["tree"]  # the same entries: the same tree chunks, stored once

    _change_one_percent(root)
    third, stats = capture(repo, root, previous=again)
    assert sorted(spy.paths) == [b"2024-01/img-0.jpg", b"2024-02/img-1.jpg", b"video.mp4"]
    # only what changed is stored: two small files and the content-defined chunk around the patch
    assert stats.new_plain_bytes < 0.25 * first_stats.new_plain_bytes
    assert stats.new_plain_bytes <= 6000 + 3 * 1024 * 1024
    restore_files(repo, third, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")


class _CommandSpy:
    """Counts the commands sent through an SshSession."""

    def __init__(self, ssh: SshSession) -> None:
        self.ssh = ssh
        self.target = ssh.target
        self.commands: list[str] = []

    def run(self, argv, **kwargs):
        self.commands.append(argv[0])
        return self.ssh.run(argv, **kwargs)

    def stream(self, argv, **kwargs):
        self.commands.append("tar" if "tar" in argv else argv[0])
        return self.ssh.stream(argv, **kwargs)


def test_ssh_second_capture_sends_nothing_unchanged(repo, tmp_path, ssh_target, describe_tree):
    root = _uploads(tmp_path / "uploads")
    with SshSession.connect(ssh_target) as ssh:
        spy = _CommandSpy(ssh)
        first, _ = capture(repo, root, ssh=spy)
        assert len(spy.commands) == 1  # one command (listing, then tar), whatever the file count
        spy.commands.clear()
        again, stats = capture(repo, root, ssh=spy, previous=first)
        assert len(spy.commands) == 1 and again["read_files"] == 0 and stats.new_plain_bytes == 0
        assert again["tree"] == first["tree"]  # unchanged entries written as they were read: the same chunks
        _change_one_percent(root)
        spy.commands.clear()
        third, stats = capture(repo, root, ssh=spy, previous=again)
        assert len(spy.commands) == 1
        assert third["read_files"] == 3
        assert stats.new_plain_bytes <= 6000 + 3 * 1024 * 1024
    restore_files(repo, third, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")


def test_ssh_capture_in_windows_sends_each_changed_file_once(repo, tmp_path, ssh_target, monkeypatch, describe_tree):
    """Windows of 40 entries over SSH: the first window's files go to the tar of the listing's
    command, each later window with files to read has a tar of its own, and a window with none
    sends nothing. The tree is the same as one captured whole."""
    root = _uploads(tmp_path / "uploads")  # 12 folders, 200 images, then video.mp4: 213 entries
    with SshSession.connect(ssh_target) as ssh:
        whole, _ = capture(repo, root, ssh=ssh)
        monkeypatch.setattr(remote_module.RemoteTree, "window", 40)
        spy = _CommandSpy(ssh)
        first, _ = capture(repo, root, ssh=spy)
        assert spy.commands == ["sh"] + ["tar"] * 5 and first["read_files"] == 201  # each started a window ahead
        spy.commands.clear()
        again, stats = capture(repo, root, ssh=spy, previous=first)
        assert spy.commands == ["sh"] and again["read_files"] == 0 and again["tree"] == first["tree"]
        _change_one_percent(root)  # two images of the first window, and video.mp4, the last entry
        spy.commands.clear()
        third, stats = capture(repo, root, ssh=spy, previous=again)
        # window 1 reads through the listing's command, which starts a tar that the last window uses
        assert spy.commands == ["sh", "tar"] and third["read_files"] == 3
    def described(section):  # packs close at each window's end: where contents are differs, not what
        return [{k: v for k, v in item.items() if k not in ("chunks", "offset")} for item in iter_entries(section, repo)]

    assert described(first) == described(whole)
    restore_files(repo, third, tmp_path / "out")
    assert describe_tree(root) == describe_tree(tmp_path / "out")


def _mutate_while_reading(monkeypatch, over_ssh: bool, target: Path, times: int) -> None:
    """Append to ``target`` while it is being read (``times`` times): a writer racing the capture."""
    state = {"left": times}

    def touch() -> None:
        if state["left"] > 0:
            state["left"] -= 1
            with open(target, "ab") as fh:
                fh.write(b"+more")

    if over_ssh:
        # The first bytes of the file reached us: the remote tar is still reading the rest
        # (the file is far larger than what the SSH window lets through ahead of us).
        original_large = storer_module.Storer.large

        def large(self, path, readinto):
            def read_and_touch(view):
                got = readinto(view)
                if path == os.fsencode(target.name):
                    touch()
                return got

            return original_large(self, path, read_and_touch)

        monkeypatch.setattr(storer_module.Storer, "large", large)
    else:
        original_read = local_module.read_local

        def read_local(root, entry, consume):
            def consume_then_touch(read):
                result = consume(read)
                if entry.path == os.fsencode(target.name):
                    touch()
                return result

            return original_read(root, entry, consume_then_touch)

        monkeypatch.setattr(local_module, "read_local", read_local)
        # a small file is read whole by one os.read: the writer appends right after it
        original_os_read = os.read

        def os_read(fd, size):
            data = original_os_read(fd, size)
            if os.readlink(f"/proc/self/fd/{fd}") == str(target):
                touch()
            return data

        monkeypatch.setattr(local_module.os, "read", os_read)


@pytest.mark.parametrize("size", [100_000, 3_000_000], ids=["small", "large"])
def test_local_file_changed_while_read_is_read_again(repo, tmp_path, monkeypatch, caplog, size):
    caplog.set_level(logging.WARNING, "clonekit.files")
    root = tmp_path / "src"
    root.mkdir()
    target = root / "log.bin"
    original = os.urandom(size)
    target.write_bytes(original)
    (root / "other").write_bytes(b"quiet")
    _mutate_while_reading(monkeypatch, False, target, times=1)
    section, _ = capture(repo, root)
    assert "changed while it was read" in caplog.text
    restore_files(repo, section, tmp_path / "out")
    assert (tmp_path / "out" / "log.bin").read_bytes() == original + b"+more"


def test_remote_file_changed_after_listing_is_read_again(repo, tmp_path, monkeypatch, caplog, ssh_target):
    caplog.set_level(logging.WARNING, "clonekit.files")
    root = tmp_path / "src"
    root.mkdir()
    target = root / "log.bin"
    original = os.urandom(100_000)
    target.write_bytes(original)
    (root / "other").write_bytes(b"quiet")
    listing = remote_module.read_listing
    listings = []

    def listing_then_write(*args, **kwargs):
        listings.append(listing(*args, **kwargs))
        if len(listings) == 1:
            with open(target, "ab") as fh:  # tar will see another size than the listing said
                fh.write(b"+more")
        return listings[-1]

    monkeypatch.setattr(remote_module, "read_listing", listing_then_write)
    with SshSession.connect(ssh_target) as ssh:
        section, _ = capture(repo, root, ssh=ssh)
    assert "changed while it was read" in caplog.text and len(listings) == 2  # listed again once
    restore_files(repo, section, tmp_path / "out")
    assert (tmp_path / "out" / "log.bin").read_bytes() == original + b"+more"


def test_remote_file_changed_during_tar_is_never_stored_torn(repo, tmp_path, monkeypatch, caplog, ssh_target):
    """A write while the remote tar reads: tar reports it (status 1) and the file goes round again,
    or tar had already read it all and the snapshot holds the version before the write. Either way
    the stored file is one of the two versions, never a mix."""
    caplog.set_level(logging.WARNING, "clonekit.files")
    root = tmp_path / "src"
    root.mkdir()
    target = root / "log.bin"
    original = os.urandom(40_000_000)  # far more than the SSH window: tar is still reading it
    target.write_bytes(original)
    _mutate_while_reading(monkeypatch, True, target, times=1)
    with SshSession.connect(ssh_target) as ssh:
        section, _ = capture(repo, root, ssh=ssh)
    restore_files(repo, section, tmp_path / "out")
    restored = (tmp_path / "out" / "log.bin").read_bytes()
    if "changed while it was read" in caplog.text:
        assert restored == original + b"+more"
    else:
        assert restored == original


@pytest.mark.parametrize("size", [9, 3_000_000], ids=["small", "large"])
def test_file_that_keeps_changing_fails_clearly(repo, tmp_path, monkeypatch, size):
    root = tmp_path / "src"
    root.mkdir()
    target = root / "busy.db"
    target.write_bytes(b"v" * size)
    _mutate_while_reading(monkeypatch, False, target, times=100)
    with pytest.raises(SourceError, match="kept changing") as info:
        capture(repo, root)
    assert "busy.db" in str(info.value)


@pytest.mark.parametrize("window", [None, 2], ids=["one-window", "a-later-window"])
def test_remote_file_that_keeps_changing_fails_clearly(repo, tmp_path, monkeypatch, ssh_target, window):
    """In a later window too, where a tar started ahead waits for the next window's names: the
    failure ends every command at once (a stall would take CLONEKIT_STALL_TIMEOUT to show)."""
    root = tmp_path / "src"
    root.mkdir()
    target = root / "busy.db"
    target.write_bytes(b"version 1")
    for name in ("a1", "a2", "a3", "c1", "c2"):  # windows of 2: busy.db is in the second of three
        (root / name).write_bytes(name.encode())
    monkeypatch.setattr(remote_module.RemoteTree, "window", window)
    monkeypatch.setenv("CLONEKIT_STALL_TIMEOUT", "30")

    def stale(listing):
        def listing_then_write(*args, **kwargs):
            result = listing(*args, **kwargs)
            with open(target, "ab") as fh:  # every listing is stale by the time tar reads the file
                fh.write(b"+more")
            return result

        return listing_then_write

    # the first listing (read from the combined command) and the fresh ones after a change
    monkeypatch.setattr(remote_module, "read_listing", stale(remote_module.read_listing))
    with SshSession.connect(ssh_target) as ssh, pytest.raises(SourceError, match="kept changing") as info:
        capture(repo, root, ssh=ssh)
    assert "busy.db" in str(info.value)


def test_an_awkward_tree_captured_again_reads_nothing_and_lists_in_the_manifest_order(repo, awkward_tree, monkeypatch):
    from clonekit.files.local import iter_local
    from clonekit.files.tree import Excluder, link_hardlinks, order_key

    listed = list(iter_local(str(awkward_tree), Excluder([]), []))
    assert sorted(listed, key=lambda e: order_key(e.path)) == listed
    linked = list(link_hardlinks(listed))
    assert [e.path for e in linked] == [e.path for e in listed] and sum(e.type == "hardlink" for e in linked) == 2
    with pytest.raises(ValueError, match="order"):
        list(link_hardlinks(listed[::-1]))
    first, _ = capture(repo, awkward_tree)
    spy = _ReadSpy(monkeypatch)
    again, _ = capture(repo, awkward_tree, previous=first)
    assert spy.paths == [] and again["read_files"] == 0  # names that are not UTF-8 found too
    assert list(iter_entries(again, repo)) == list(iter_entries(first, repo))


def test_unchanged_files_whose_chunks_are_gone_are_read_again_and_counted_once(repo, tmp_path, caplog):
    from clonekit.manifest import collect_chunk_refs

    root = tmp_path / "uploads"
    root.mkdir()
    for i in range(3):
        (root / f"thumb-{i}.jpg").write_bytes(os.urandom(2000 + i))
    first, _ = capture(repo, root)
    for chunk_id in collect_chunk_refs(first["content"]):  # the files' chunks, not the tree's
        repo.delete_chunk(chunk_id)
    with caplog.at_level(logging.WARNING, logger="clonekit.files"):
        again, stats = capture(repo, root, previous=first)
    assert again["read_files"] == 3 and stats.new_chunks == 1
    assert "3 unchanged file(s) read again" in caplog.text


def test_the_order_key_orders_as_path_components_do():
    from clonekit.files.tree import order_key

    rng = random.Random(3)
    pieces = [b"a", b"b", b".", b"-", b"\xff", b" ", b"0"]
    for _ in range(2000):
        paths = {b"/".join(b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))
                           for _ in range(rng.randint(1, 3))) for _ in range(8)}
        assert sorted(paths, key=order_key) == sorted(paths, key=lambda p: p.split(b"/"))
