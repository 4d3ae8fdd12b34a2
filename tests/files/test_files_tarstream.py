"""The minimal tar reader against archives written by GNU tar itself."""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from clonekit.errors import SourceError
from clonekit.files.tarstream import REGULAR, TarReader


def _gnu_tar(root) -> bytes:
    return subprocess.run(
        ["tar", "-C", str(root), "--format=posix", "--pax-option=delete=atime,delete=ctime,delete=mtime",
         "-cf", "-", "."], check=True, capture_output=True,
    ).stdout


def test_reads_every_member_of_a_gnu_tar_archive(awkward_tree):
    archive = _gnu_tar(awkward_tree)
    reader = TarReader(io.BufferedReader(io.BytesIO(archive)))
    contents = {}
    kinds = {}
    for member in reader:
        path = member.path.removeprefix(b"./").rstrip(b"/")
        kinds[path] = member.type
        if member.type in REGULAR:
            contents[path] = reader.read()
    base = os.fsencode(awkward_tree)
    for dirpath, _, names in os.walk(base):
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            if os.path.islink(full) or not os.path.isfile(full) or rel in (b"hl/b", b"hl-c", b"hl/a"):
                continue  # links, the FIFO (tar skips sockets only; FIFOs have no data) and hard links
            with open(full, "rb") as fh:
                assert contents[rel] == fh.read(), rel
    deep = b"/".join(b"d%d" % i for i in range(30)) + b"/bottom.txt"  # longer than 100 bytes: pax path
    assert contents[deep] == b"deep down\n"
    assert contents[b"latin1-\xe9t\xe9.bin"] == b"not utf-8 name"
    assert kinds[b"link-dangling"] == b"2"


def test_damaged_header_and_truncated_data_are_refused(awkward_tree):
    archive = bytearray(_gnu_tar(awkward_tree))
    damaged = bytes(archive[:100]) + b"X" + bytes(archive[101:])
    with pytest.raises(SourceError, match="checksum"):
        list(TarReader(io.BufferedReader(io.BytesIO(damaged))))
    truncated = bytes(archive[: 512 * 3 + 100])
    with pytest.raises(SourceError, match="ended"):
        reader = TarReader(io.BufferedReader(io.BytesIO(truncated)))
        for member in reader:
            if member.type in REGULAR:
                reader.read()
