"""Awkward trees and a fresh local repository for the files tests."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clonekit.config import SshTarget, StoreConfig
from clonekit.repository import Repository

MTIME_NS = 1_600_000_000_123_456_789


def build_awkward_tree(root: Path) -> Path:
    """Every kind of awkwardness the capture must survive, small enough for a fast test."""
    root.mkdir(parents=True, exist_ok=True)
    b = os.fsencode(root)
    (root / "empty").mkdir()
    deep = root.joinpath(*[f"d{i}" for i in range(30)])
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"deep down\n")
    (root / "with space & 'quote' \"dq\".txt").write_bytes(b"spaces and quotes")
    (root / "new\nline").write_bytes(b"newline in the name")
    with open(os.path.join(b, b"latin1-\xe9t\xe9.bin"), "wb") as fh:
        fh.write(b"not utf-8 name")
    os.mkdir(os.path.join(b, b"dir-\xff"))
    with open(os.path.join(b, b"dir-\xff", b"inner"), "wb") as fh:
        fh.write(b"inside a non-utf-8 folder")
    (root / "-starts-with-dash").write_bytes(b"dash")
    (root / "CK-END-OF-LISTING").write_bytes(b"named like the remote listing's end marker")
    (root / "unicode-é-😀.txt").write_text("unicode name")
    # hard links, one of them in another folder
    (root / "hl").mkdir()
    (root / "hl" / "a").write_bytes(b"shared inode" * 100)
    os.link(root / "hl" / "a", root / "hl" / "b")
    os.link(root / "hl" / "a", root / "hl-c")
    # a sparse file: 20 MB of holes around a little data
    with open(root / "sparse.img", "wb") as fh:
        fh.seek(10_000_000)
        fh.write(b"island")
        fh.truncate(20_000_000)
    # a file over 8 MB (several content-defined chunks)
    (root / "big.bin").write_bytes(os.urandom(9_500_000))
    # symlinks: relative, absolute, dangling, to a folder
    os.symlink("big.bin", root / "link-to-big")
    os.symlink("/etc/hostname", root / "link-absolute")
    os.symlink("does/not/exist", root / "link-dangling")
    os.symlink("hl", root / "link-to-dir")
    # permissions and times
    (root / "exec.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "exec.sh", 0o755)
    (root / "readonly").write_bytes(b"r")
    os.chmod(root / "readonly", 0o400)
    (root / "setuid").write_bytes(b"s")
    os.chmod(root / "setuid", 0o4750)
    (root / "locked-dir").mkdir()
    (root / "locked-dir" / "f").write_bytes(b"in a read-only folder")
    (root / "empty-file").write_bytes(b"")
    (root / "dup1").write_bytes(b"same content")
    (root / "dup2").write_bytes(b"same content")
    os.mkfifo(root / "a-fifo")  # special: skipped with a warning
    for dirpath, dirnames, filenames in os.walk(b, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            os.utime(path, ns=(MTIME_NS, MTIME_NS + 7 * len(name)), follow_symlinks=False)
    os.chmod(root / "locked-dir", 0o555)
    os.utime(root / "locked-dir", ns=(MTIME_NS, MTIME_NS + 5))
    os.utime(root, ns=(MTIME_NS, MTIME_NS + 3))
    return root


def describe(root: Path, *, owners: bool = True) -> dict[bytes, tuple]:
    """Everything that must survive a round trip, by relative path (bytes)."""
    base = os.fsencode(root)
    out: dict[bytes, tuple] = {}
    inodes: dict[int, bytes] = {}
    top = os.lstat(base)
    out[b"."] = ("root", stat.S_IMODE(top.st_mode), top.st_mtime_ns)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            key: tuple
            if stat.S_ISLNK(st.st_mode):
                key = ("link", os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                key = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    data = fh.read()
                group = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else None
                key = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, data, group)
            else:
                continue  # special files are not copied
            if owners:
                key += (st.st_uid, st.st_gid)
            out[rel] = key
    return out


@pytest.fixture
def awkward_tree(tmp_path) -> Path:
    return build_awkward_tree(tmp_path / "source")


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.open(StoreConfig(url=str(tmp_path / "store")))


@pytest.fixture
def ssh_target(ssh_server) -> SshTarget:
    return SshTarget(host=ssh_server.host, user=ssh_server.user, port=ssh_server.port,
                     known_hosts=ssh_server.known_hosts, key_file=ssh_server.key_file)


@pytest.fixture
def describe_tree():
    """describe(root) -> everything that must survive a round trip, by relative path."""
    return describe


@pytest.fixture
def assert_same_tree(describe_tree):
    def check(a: Path, b: Path) -> None:
        left, right = describe_tree(a), describe_tree(b)
        assert sorted(left) == sorted(right)
        for key in left:
            assert left[key] == right[key], key

    return check


def damage_chunk(repo, chunk_id: str, at: int = -10) -> None:
    """Flip one byte of a stored chunk, as a failing disk would."""
    from clonekit.repository import chunk_key

    stored = Path(repo.url) / chunk_key(chunk_id)
    blob = bytearray(stored.read_bytes())
    blob[at] ^= 0xFF
    os.chmod(stored, 0o600)
    stored.write_bytes(bytes(blob))
