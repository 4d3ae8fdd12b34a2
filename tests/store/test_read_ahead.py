"""iter_chunks reads ahead in parallel, within a byte budget: chunks in order, and never more
fetched and not yet consumed than the budget allows (by the mean chunk size seen so far)."""

from __future__ import annotations

import threading
import time

from clonekit.repository import Repository


class _Chunks:
    """get_chunk returns ``size`` bytes starting with the id; records how far fetching got ahead
    of the consumer once ``settled`` chunks were consumed (the window adapts to the sizes seen)."""

    def __init__(self, size: int, settled: int) -> None:
        self.size = size
        self.settled = settled
        self.fetched = 0
        self.consumed = 0
        self.most_ahead = 0
        self.lock = threading.Lock()

    def get_chunk(self, chunk_id: str) -> bytes:
        with self.lock:
            self.fetched += 1
            if self.consumed >= self.settled:
                self.most_ahead = max(self.most_ahead, self.fetched - self.consumed)
        return chunk_id.encode().ljust(self.size, b".")

    def read(self, ids: list[str], **kwargs: int) -> list[bytes]:
        out = []
        for data in Repository.iter_chunks(self, ids, **kwargs):  # type: ignore[arg-type]
            out.append(data.rstrip(b"."))
            time.sleep(0.005)  # a slow consumer: the fetchers go as far ahead as they may
            with self.lock:
                self.consumed += 1
        return out


def test_small_chunks_at_most_two_per_worker() -> None:
    chunks = _Chunks(1024, settled=0)
    ids = [f"c{i}" for i in range(60)]
    assert chunks.read(ids, workers=4) == [i.encode() for i in ids]
    assert chunks.most_ahead <= 8


def test_large_chunks_stay_within_the_read_ahead_budget() -> None:
    chunks = _Chunks(8 << 20, settled=6)
    ids = [f"c{i}" for i in range(20)]
    assert chunks.read(ids, workers=8, read_ahead_bytes=24 << 20) == [i.encode() for i in ids]
    # 24 MiB of 8 MiB chunks: 3 held, and the one being fetched (16 without the budget)
    assert chunks.most_ahead <= 4
