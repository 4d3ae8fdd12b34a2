"""Batches of transformed lines chunked through the compiled join (clonekit/_speedups.c
``join_lines``) give the same chunks as line by line.

``RowChunker.feed_lines`` joins a list of lines in C and finds the rows where a chunk may end
(``python_cut``: the CRC-32 of the line under its length's share) there, then feeds runs of rows
ending at such a row. The chunks must be the same bytes as feeding the lines one at a time (the
snapshot's chunk digests, hence deduplication against older snapshots, depend on it): compared
here on lines around every size limit (tiny, typical, near the minimum, target and maximum chunk
sizes, and bigger than a chunk), in batches cut at random places.
"""

from __future__ import annotations

import random
import zlib

import pytest

from clonekit.db import codec
from clonekit.db.codec import CUT_SCALE, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, RowChunker, python_cut

from ..sanitize.test_phpserialize_compiled import speedups

pytestmark = pytest.mark.skipif(speedups is None, reason="the compiled module did not build "
                                "(tests/sanitize/test_phpserialize_compiled.py fails where a compiler is)")


def _chunks(batches: list[list[bytes]], module: object, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], int]:
    monkeypatch.setattr(codec, "compiled", module)
    out: list[bytes] = []
    chunker = RowChunker(out.append)
    for batch in batches:
        chunker.feed_lines(batch)
    chunker.flush()
    return out, chunker.rows


def _line(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size).replace(b"\n", b"n") + b"\n"


@pytest.mark.parametrize("seed", range(6))
def test_joined_batches_give_the_chunks_of_line_by_line(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    sizes = [1, 2, 40, 300, 5000, MIN_CHUNK_BYTES - 1, MIN_CHUNK_BYTES, 2 << 20, MAX_CHUNK_BYTES - 1,
             MAX_CHUNK_BYTES, MAX_CHUNK_BYTES + 1, 3 * MAX_CHUNK_BYTES // 2]
    lines = [_line(rng, rng.choice(sizes) if rng.random() < 0.01 else rng.randint(0, 3000)) for _ in range(12_000)]
    batches, at = [], 0
    while at < len(lines):
        step = rng.choice([0, 1, 7, 300, 2000])
        batches.append(lines[at:at + step])
        at += step
    compiled, rows = _chunks(batches, speedups, monkeypatch)
    python, python_rows = _chunks([iter(b) for b in batches], None, monkeypatch)  # type: ignore[misc]
    assert rows == python_rows == len(lines)
    assert compiled == python and b"".join(compiled) == b"".join(lines)
    assert len(compiled) > 3  # the data does get cut


def test_join_lines_marks_the_rows_python_cut_marks() -> None:
    rng = random.Random(9)
    lines = [_line(rng, rng.randint(0, 40_000)) for _ in range(2000)]
    joined, cuts = speedups.join_lines(lines, zlib.crc32, CUT_SCALE)
    assert joined == b"".join(lines)
    ends, at = [], 0
    for line in lines:
        at += len(line)
        if python_cut(line):
            ends.append(at)
    assert cuts == ends and ends
