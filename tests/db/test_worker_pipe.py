"""The frames a transform worker sends its parent: every byte, in order, through writev.

Pure logic on a real pipe: many pieces (more than one writev takes), pieces larger than the
pipe, and a kernel that writes only part of what it is given each time.
"""

from __future__ import annotations

import os
import random
import threading

import pytest

from clonekit.db import capture
from clonekit.fdio import IOV_MAX, write_all


def _through_pipe(pieces: list[bytes | memoryview]) -> bytes:
    read_fd, write_fd = os.pipe()
    capture._widen_pipe(read_fd)
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as incoming:
            received.append(incoming.read())

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        write_all(write_fd, pieces)
    finally:
        os.close(write_fd)
        reader.join()
    return received[0]


def _pieces(seed: int) -> list[bytes | memoryview]:
    rng = random.Random(seed)
    data = rng.randbytes(6 << 20)
    pieces: list[bytes | memoryview] = [memoryview(data)[i:i + 1 + rng.randrange(64)] for i in range(0, 300_000, 100)]
    pieces += [b"", memoryview(data)[300_000:4_000_000], data[4_000_000:], b"tail"]
    return pieces


def test_every_piece_arrives_in_order():
    pieces = _pieces(1)
    assert len(pieces) > IOV_MAX  # more than one writev
    assert _through_pipe(pieces) == b"".join(pieces)


@pytest.mark.parametrize("most", [1, 7, 65_536])
def test_partial_writes_resume_where_they_stopped(monkeypatch, most):
    real = os.writev
    calls = []

    def short_writev(fd, buffers):  # type: ignore[no-untyped-def]
        calls.append(len(buffers))
        taken, room = [], most
        for buffer in buffers:
            if room <= 0:
                break
            piece = memoryview(buffer)[:room]
            taken.append(piece)
            room -= len(piece)
        return real(fd, taken)

    monkeypatch.setattr(os, "writev", short_writev)
    pieces = _pieces(2)
    if most < 100:  # a byte at a time through megabytes would take minutes: the small pieces only
        pieces = [*pieces[:40], b"", b"tail"]
    expected = b"".join(pieces)
    assert _through_pipe(pieces) == expected
    assert len(calls) >= len(expected) // most
