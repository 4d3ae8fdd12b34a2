"""Capture and restore of awkward trees, locally and over the loopback sshd, on a real local store."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from clonekit.config import FileSource
from clonekit.errors import ClonekitError, IntegrityError, SourceError, UsageError
from clonekit.files import capture_files, iter_entries, iter_tar, restore_files
from clonekit.manifest import canonical_json, collect_chunk_refs
from clonekit.transport.ssh import SshSession
from tests.files.conftest import damage_chunk


def capture(repo, root: Path, *, ssh=None, previous=None, exclude=()):
    with repo.writer() as writer:
        section = capture_files(FileSource(str(root), tuple(exclude)), writer, ssh=ssh, previous=previous,
                                store=repo)
    return section, writer.stats


def entries(repo, section):
    return list(iter_entries(section, repo))


MTIME_NS = 1_600_000_000_123_456_789  # what the awkward tree's entries were stamped with


def test_local_round_trip_is_exact(repo, awkward_tree, tmp_path, caplog, assert_same_tree):
    caplog.set_level(logging.WARNING, "clonekit.files")
    section, _ = capture(repo, awkward_tree)
    assert "a-fifo" in caplog.text and section["skipped"] == 1
    # the section survives the manifest's JSON (non-UTF-8 names as base64)
    section = json.loads(canonical_json(section))
    assert any("path_b64" in e for e in entries(repo, section))
    stats = restore_files(repo, section, tmp_path / "out")
    assert_same_tree(awkward_tree, tmp_path / "out")
    assert stats.hardlinks == 2 and stats.symlinks == 4 and stats.files == section["files"]
    restored = os.stat(tmp_path / "out" / "sparse.img")
    assert restored.st_blocks * 512 < 1_000_000  # holes stay holes
    assert os.stat(tmp_path / "out" / "hl" / "a").st_ino == os.stat(tmp_path / "out" / "hl-c").st_ino
    # every chunk is reachable through "chunks" lists (prune and verify rely on it)
    refs = collect_chunk_refs(section)
    assert refs and all(repo.has_chunk(cid) for cid in refs)


def test_big_file_is_split_by_content(repo, awkward_tree):
    section, _ = capture(repo, awkward_tree)
    big = next(e for e in entries(repo, section) if e.get("path") == "big.bin")
    assert len(big["chunks"]) >= 2
    assert sum(ref["size"] for ref in big["chunks"]) == big["size"] == 9_500_000


def test_ssh_capture_equals_local_and_round_trips(repo, awkward_tree, ssh_target, tmp_path, assert_same_tree):
    local, _ = capture(repo, awkward_tree)
    with SshSession.connect(ssh_target) as ssh:
        remote, _ = capture(repo, awkward_tree, ssh=ssh)
    assert remote["host"] == str(ssh_target)
    assert entries(repo, remote) == entries(repo, local)
    assert remote["tree"] == local["tree"]  # the same entries are the same tree chunks
    assert remote["root"] == local["root"]
    restore_files(repo, json.loads(canonical_json(remote)), tmp_path / "out")
    assert_same_tree(awkward_tree, tmp_path / "out")


def test_iter_tar_extracts_to_the_same_tree(repo, awkward_tree, tmp_path, assert_same_tree):
    section, _ = capture(repo, awkward_tree)
    out = tmp_path / "untarred"
    out.mkdir()
    tar = subprocess.Popen(["tar", "-x", "-p", "--same-owner", "-C", str(out)], stdin=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    assert tar.stdin is not None
    for piece in iter_tar(repo, section):
        tar.stdin.write(piece)
    tar.stdin.close()
    assert tar.wait() == 0
    assert tar.stderr is not None and tar.stderr.read() == b""  # no warnings either
    assert_same_tree(awkward_tree, out)


def test_excludes_are_globs_relative_to_the_root(repo, tmp_path, ssh_target):
    root = tmp_path / "files"
    for folder in ("css", "js", "styles/thumb", "inline-images"):
        (root / folder).mkdir(parents=True)
    (root / "css" / "a.css").write_text("x")
    (root / "js" / "a.js").write_text("x")
    (root / "styles" / "thumb" / "p.jpg").write_text("x")
    (root / "inline-images" / "p.jpg").write_text("kept")
    (root / "notes.tmp").write_text("x")
    exclude = ("css/*", "js/*", "styles", "*.tmp")
    local, _ = capture(repo, root, exclude=exclude)
    paths = sorted(e["path"] for e in entries(repo, local))
    assert paths == ["css", "inline-images", "inline-images/p.jpg", "js"]
    with SshSession.connect(ssh_target) as ssh:
        remote, _ = capture(repo, root, ssh=ssh, exclude=exclude)
    assert entries(repo, remote) == entries(repo, local)


def test_missing_root_is_a_clear_source_error(repo, tmp_path, ssh_target):
    with pytest.raises(SourceError, match="does not exist"):
        capture(repo, tmp_path / "nope")
    with SshSession.connect(ssh_target) as ssh, pytest.raises(SourceError, match="No such file"):
        capture(repo, tmp_path / "nope", ssh=ssh)


def test_restore_refuses_a_corrupt_chunk(repo, awkward_tree, tmp_path):
    section, _ = capture(repo, awkward_tree)
    big = next(e for e in entries(repo, section) if e.get("path") == "big.bin")
    damage_chunk(repo, big["chunks"][1]["id"])
    with pytest.raises(IntegrityError):
        restore_files(repo, section, tmp_path / "out")
    with pytest.raises(IntegrityError):
        for _ in iter_tar(repo, section):
            pass


def test_restore_refuses_a_wrong_file_checksum_and_unsafe_paths(repo, awkward_tree, tmp_path):
    section, _ = capture(repo, awkward_tree)
    # the entries as a clonekit.files/1 section holds them, in the manifest: still read
    damaged = {**json.loads(canonical_json(section)), "format": "clonekit.files/1",
               "entries": json.loads(canonical_json(entries(repo, section)))}
    entry = next(e for e in damaged["entries"] if e.get("path") == "dup1")
    entry["sha256"] = "0" * 64
    with pytest.raises(IntegrityError, match="dup1"):
        restore_files(repo, damaged, tmp_path / "out1")
    hostile = {"entries": [{"path": "../escape", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0, "mtime_ns": 1}]}
    with pytest.raises(IntegrityError, match="unsafe"):
        restore_files(repo, hostile, tmp_path / "out2")


def test_restore_refuses_a_non_empty_destination(repo, awkward_tree, tmp_path):
    section, _ = capture(repo, awkward_tree)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        restore_files(repo, section, tmp_path / "busy")


def test_mtimes_keep_nanoseconds(repo, awkward_tree, tmp_path):
    section, _ = capture(repo, awkward_tree)
    restore_files(repo, section, tmp_path / "out")
    assert os.lstat(tmp_path / "out" / "dup1").st_mtime_ns == MTIME_NS + 7 * len(b"dup1")


def test_restore_never_follows_a_restored_symlink(repo, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("do not link me")
    meta = {"mode": 0o755, "uid": os.getuid(), "gid": os.getgid(), "mtime_ns": 1}
    hostile = {"entries": [
        {"path": "a", "type": "symlink", "target": str(outside), **meta},
        {"path": "b", "type": "hardlink", "link": "a/secret", **meta},
    ]}
    with pytest.raises(ClonekitError):
        restore_files(repo, hostile, tmp_path / "out")
    assert os.stat(outside / "secret").st_nlink == 1


def test_a_source_host_without_gnu_find_gets_a_hint(repo, awkward_tree, ssh_target, monkeypatch):
    import clonekit.files.remote as remote_module

    busybox = remote_module.LIST_THEN_TAR.replace('find -H "$root"', 'busybox find -H "$root"')
    monkeypatch.setattr(remote_module, "LIST_THEN_TAR", busybox)
    with SshSession.connect(ssh_target) as ssh, pytest.raises(SourceError) as info:
        capture(repo, awkward_tree, ssh=ssh)
    assert "GNU find" in str(info.value)


def test_a_file_read_as_listed_keeps_its_listed_entry_and_a_changed_one_gets_its_own(tmp_path):
    from dataclasses import replace

    from clonekit.files.local import iter_local, read_local, read_small
    from clonekit.files.tree import Excluder

    (tmp_path / "small.jpg").write_bytes(b"x" * 300)
    (tmp_path / "large.bin").write_bytes(os.urandom(600_000))
    for listed in list(iter_local(str(tmp_path), Excluder([]), [])):
        read = read_small if listed.size < 1000 else (lambda root, e: read_local(root, e, lambda r: r.read(1 << 20)))
        assert read(str(tmp_path), listed)[0] is listed  # the tree's entries are not held twice
        older = replace(listed, mtime_ns=listed.mtime_ns - 10**9)  # it changed between listing and reading
        fresh = read(str(tmp_path), older)[0]
        assert fresh is not older and fresh == listed
