"""Batches of transformed lines chunked at the cuts the compiled row loop finds give the same
chunks as line by line.

``_RowTransformer.batch`` (clonekit/_speedups.c ``transform_batch``) joins a batch's transformed
lines and finds the rows where a chunk may end (``python_cut``: the CRC-32 of the line under its
length's share) with its own CRC-32; ``RowChunker.feed_runs`` then feeds runs of rows ending at
such a row. The chunks must be the same bytes as feeding the lines one at a time (the snapshot's
chunk digests, hence deduplication against older snapshots, depend on it): compared here on
lines around every size limit (tiny, typical, near the minimum, target and maximum chunk sizes,
and bigger than a chunk), in batches cut at random places.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from clonekit.db import capture
from clonekit.db.capture import _RowTransformer
from clonekit.db.codec import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, RowChunker, python_cut
from clonekit.schema import Column, TablePolicy

from ..sanitize.test_phpserialize_compiled import speedups

pytestmark = pytest.mark.skipif(speedups is None, reason="the compiled module did not build "
                                "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")

ONE_BLOB = (Column("data", "longblob", "longblob", binary=True),)


def _line(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size).replace(b"\n", b"n").replace(b"\t", b"t") + b"\n"


def _line_by_line(lines: list[bytes]) -> tuple[list[bytes], int]:
    out: list[bytes] = []
    chunker = RowChunker(out.append)
    for line in lines:
        chunker.feed_runs(line, [len(line)] if python_cut(line) else [], 1)
    chunker.flush()
    return out, chunker.rows


def _batched(batches: list[list[bytes]], module: object, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], int]:
    monkeypatch.setattr(capture, "compiled", module)
    rows = _RowTransformer(TablePolicy(transform=lambda row: row, reads=frozenset()), ONE_BLOB)
    out: list[bytes] = []
    chunker = RowChunker(out.append)
    for batch in batches:
        chunker.feed_runs(*rows.batch(b"".join(batch)))
    chunker.flush()
    return out, chunker.rows


@pytest.mark.parametrize("seed", range(6))
def test_batches_give_the_chunks_of_line_by_line(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    sizes = [1, 2, 40, 300, 5000, MIN_CHUNK_BYTES - 1, MIN_CHUNK_BYTES, 2 << 20, MAX_CHUNK_BYTES - 1,
             MAX_CHUNK_BYTES, MAX_CHUNK_BYTES + 1, 3 * MAX_CHUNK_BYTES // 2]
    lines = [_line(rng, rng.choice(sizes) if rng.random() < 0.01 else rng.randint(0, 3000)) for _ in range(12_000)]
    batches, at = [], 0
    while at < len(lines):
        step = rng.choice([0, 1, 7, 300, 2000])
        batches.append(lines[at:at + step])
        at += step
    reference, reference_rows = _line_by_line(lines)
    compiled, rows = _batched(batches, speedups, monkeypatch)
    python, python_rows = _batched(batches, None, monkeypatch)
    assert rows == python_rows == reference_rows == len(lines)
    assert compiled == python == reference and b"".join(compiled) == b"".join(lines)
    assert len(compiled) > 3  # the data does get cut


def test_the_batch_marks_the_rows_python_cut_marks() -> None:
    rng = random.Random(9)
    lines = [_line(rng, rng.randint(0, 40_000)) for _ in range(2000)]
    rows = _RowTransformer(TablePolicy(transform=lambda row: row, reads=frozenset()), ONE_BLOB)
    joined, cuts, count = rows.batch(b"".join(lines))
    assert joined == b"".join(lines) and count == len(lines)
    ends, at = [], 0
    for line in lines:
        at += len(line)
        if python_cut(line):
            ends.append(at)
    assert cuts == ends and ends


CRC_CHECK = """
import random, sys, zlib
from clonekit import _speedups as speedups
rng = random.Random(3)
data = rng.randbytes(5000)
for start in range(17):  # every alignment of the eight-byte steps and of the 16-byte folds
    for size in [*range(0, 200), 255, 256, 257, 1000, 4000, 4095]:  # folds of 64 and of 16, and the tails
        piece = data[start:start + size]
        assert speedups.crc32(piece) == zlib.crc32(piece), (speedups.crc32_impl, start, size)
print(speedups.crc32_impl)
"""


@pytest.mark.parametrize("no_fold", ["", "1"])
def test_the_compiled_crc32_is_zlibs(no_fold: str) -> None:
    """Both forms: the carry-less multiplication folds where the CPU has them, and the tables
    (CLONEKIT_NO_PCLMUL=1, and every CPU without them)."""
    env = {**os.environ, "CLONEKIT_NO_PCLMUL": no_fold}
    done = subprocess.run([sys.executable, "-c", CRC_CHECK], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    if no_fold:
        assert done.stdout.strip() == "tables"
