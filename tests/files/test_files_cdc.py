"""Content-defined chunking: cut points depend on the bytes only, and an edit moves few of them."""

from __future__ import annotations

import io
import random

from clonekit.files.cdc import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, iter_chunks


def test_cut_points_do_not_depend_on_read_sizes():
    data = random.Random(1).randbytes(20_000_000)
    whole = list(iter_chunks(io.BytesIO(data).read))
    rng = random.Random(3)
    source = io.BytesIO(data)
    dribbled = list(iter_chunks(lambda n: source.read(min(n, rng.randint(1, 300_000)))))
    assert dribbled == whole and b"".join(whole) == data
    assert all(MIN_CHUNK_BYTES <= len(c) <= MAX_CHUNK_BYTES for c in whole[:-1])


def test_an_insertion_changes_only_nearby_chunks():
    data = random.Random(2).randbytes(20_000_000)  # seeded: the same cut points every run
    before = list(iter_chunks(io.BytesIO(data).read))
    edited = data[:10_000_000] + b"inserted" + data[10_000_000:]
    after = list(iter_chunks(io.BytesIO(edited).read))
    assert len(set(after) - set(before)) <= 2


def test_small_and_empty_inputs():
    assert list(iter_chunks(io.BytesIO(b"").read)) == []
    assert list(iter_chunks(io.BytesIO(b"tiny").read)) == [b"tiny"]
