"""Content-defined chunking: cut points depend on the bytes only, and an edit moves few of them."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator

from fastcdc import fastcdc

from clonekit.files.cdc import AVG_CHUNK_BYTES, BUFFER_BYTES, MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, iter_chunks


def _chunks(data: bytes) -> list[bytes]:
    return list(iter_chunks(io.BytesIO(data).readinto))


def test_cut_points_do_not_depend_on_read_sizes():
    data = random.Random(1).randbytes(20_000_000)
    whole = _chunks(data)
    rng = random.Random(3)
    source = io.BytesIO(data)

    def dribble(view: memoryview) -> int:
        return source.readinto(view[: rng.randint(1, 300_000)])

    dribbled = list(iter_chunks(dribble))
    assert dribbled == whole and b"".join(whole) == data
    assert all(MIN_CHUNK_BYTES <= len(c) <= MAX_CHUNK_BYTES for c in whole[:-1])


def test_an_insertion_changes_only_nearby_chunks():
    data = random.Random(2).randbytes(20_000_000)  # seeded: the same cut points every run
    before = _chunks(data)
    edited = data[:10_000_000] + b"inserted" + data[10_000_000:]
    after = _chunks(edited)
    assert len(set(after) - set(before)) <= 2


def test_small_and_empty_inputs():
    assert _chunks(b"") == []
    assert _chunks(b"tiny") == [b"tiny"]


def _previous_iter_chunks(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """The chunker as it was before it read into a reused buffer (clonekit 2026-11-29), verbatim
    but for names: snapshots taken with it must deduplicate against new ones."""
    first = _read_full(read, MIN_CHUNK_BYTES)
    if len(first) < MIN_CHUNK_BYTES:
        if first:
            yield first
        return
    buffer = first
    eof = False
    while True:
        if not eof:
            block = _read_full(read, MAX_CHUNK_BYTES)
            eof = len(block) < MAX_CHUNK_BYTES
            buffer = buffer + block if buffer else block
        if eof:
            for chunk in fastcdc(buffer, MIN_CHUNK_BYTES, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES):
                yield buffer[chunk.offset : chunk.offset + chunk.length]
            return
        consumed = 0
        for chunk in fastcdc(buffer, MIN_CHUNK_BYTES, AVG_CHUNK_BYTES, MAX_CHUNK_BYTES):
            if chunk.offset + MAX_CHUNK_BYTES > len(buffer):
                break
            yield buffer[chunk.offset : chunk.offset + chunk.length]
            consumed = chunk.offset + chunk.length
        buffer = buffer[consumed:]


def _read_full(read: Callable[[int], bytes], size: int) -> bytes:
    parts = []
    wanted = size
    while wanted > 0:
        data = read(wanted)
        if not data:
            break
        parts.append(data)
        wanted -= len(data)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _low_entropy(rng: random.Random, size: int) -> bytes:
    """Runs of repeated text and zeros: cut points fall at the min and max sizes, not only the average."""
    out = bytearray()
    while len(out) < size:
        pick = rng.random()
        if pick < 0.3:
            out += bytes(rng.randint(1, 3 * MAX_CHUNK_BYTES))  # longer than the largest chunk
        elif pick < 0.6:
            out += b"lorem ipsum dolor sit amet " * rng.randint(1, 200_000)
        else:
            out += rng.randbytes(rng.randint(1, 2 * MAX_CHUNK_BYTES))
    return bytes(out[:size])


def test_chunks_are_those_of_the_previous_chunker():
    """Same bytes, same chunks (and so the same chunk ids) as before the reused buffer."""
    rng = random.Random(18)
    sizes = [0, 1, MIN_CHUNK_BYTES - 1, MIN_CHUNK_BYTES, MIN_CHUNK_BYTES + 1, MAX_CHUNK_BYTES,
             BUFFER_BYTES - 1, BUFFER_BYTES, BUFFER_BYTES + 1, 2 * BUFFER_BYTES + MIN_CHUNK_BYTES, 45_000_000]
    buffer = bytearray(BUFFER_BYTES)  # reused from input to input, as the storer does
    for n, size in enumerate(sizes):
        data = rng.randbytes(size) if n % 2 else _low_entropy(rng, size)
        previous = list(_previous_iter_chunks(io.BytesIO(data).read))
        now = list(iter_chunks(io.BytesIO(data).readinto, buffer))
        assert now == previous, f"input {n} ({size} bytes): {len(now)} chunks vs {len(previous)} before"
        assert b"".join(now) == data
    assert any(len(c) == MAX_CHUNK_BYTES for c in _chunks(_low_entropy(random.Random(5), 40_000_000)))
