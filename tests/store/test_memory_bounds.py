"""The store's share of a clone's memory stays bounded by structure, not by luck (issue 18):

- at most one zstd compressor per core exists and compresses at once, whatever the number of
  upload threads (each keeps ~1.3 MiB of working memory, and a compressed copy of its chunk);
- the chunks that pass through the writer and the reader are counted, and free memory is given
  back to the system every ``GIVE_BACK_EVERY_BYTES`` of them (memory.py).
"""

from __future__ import annotations

import os
import threading

import pytest

from clonekit import repository
from clonekit.config import StoreConfig
from clonekit.memory import GIVE_BACK, GIVE_BACK_EVERY_BYTES, FreeMemoryEvery
from clonekit.repository import Repository, _CompressorPool

CHUNK_BYTES = 256 << 10


class _WatchedPool(_CompressorPool):
    """The real pool, recording how many compressors were lent at once."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.lent = 0
        self.most_lent = 0
        self._count = threading.Lock()

    def borrow(self, level: int):  # type: ignore[no-untyped-def]
        pool = super().borrow(level)
        outer = self

        class _Counted:
            def __enter__(self):  # type: ignore[no-untyped-def]
                compressor = pool.__enter__()
                with outer._count:
                    outer.lent += 1
                    outer.most_lent = max(outer.most_lent, outer.lent)
                return compressor

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                with outer._count:
                    outer.lent -= 1
                return pool.__exit__(*exc)

        return _Counted()


def _payloads(count: int) -> list[bytes]:
    # compressible (zstd does real work) and distinct (each one is stored), CHUNK_BYTES each
    return [((b"row %06d\t" % i) * (CHUNK_BYTES // 11))[: CHUNK_BYTES - 64] + os.urandom(64) for i in range(count)]


def test_eight_upload_threads_share_one_compressor_per_core(tmp_path, monkeypatch):
    pool = _WatchedPool(2)
    monkeypatch.setattr(repository, "_COMPRESSORS", pool)
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store")))
    payloads = _payloads(48)
    with repo.writer(workers=8) as writer:
        refs = [writer.put(p) for p in payloads]
    assert writer.stats.new_chunks == len(payloads)
    assert 1 <= pool.made <= 2  # not one per upload thread (8)
    assert pool.most_lent <= 2
    assert list(repo.iter_chunks([r.id for r in refs])) == payloads  # the same bytes back


def test_the_process_pool_has_one_compressor_per_usable_core():
    assert repository._COMPRESSORS.size == len(os.sched_getaffinity(0))


def test_a_compressor_made_for_another_level_replaces_the_one_it_displaces():
    pool = _CompressorPool(1)
    with pool.borrow(1) as first:
        pass
    with pool.borrow(1) as again:
        assert again is first  # kept and lent again
    with pool.borrow(3) as other:
        assert other is not first
    assert pool.made == 2


@pytest.mark.parametrize("encrypted", [False, True])
def test_stored_and_read_chunks_give_free_memory_back_every_so_many_bytes(tmp_path, monkeypatch, encrypted,
                                                                          request):
    counter = FreeMemoryEvery(every_bytes=1 << 20)
    monkeypatch.setattr(repository, "GIVE_BACK", counter)
    extra = {}
    if encrypted:
        extra = {"encryption_key_env": request.getfixturevalue("encryption_key")}
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store"), **extra))
    payloads = _payloads(16)  # 4 MiB
    with repo.writer(workers=4) as writer:
        refs = [writer.put(p) for p in payloads]
    assert all(len(p) == CHUNK_BYTES for p in payloads)
    assert counter.given_back == len(payloads) * CHUNK_BYTES // (1 << 20)  # once per MiB stored
    assert list(repo.iter_chunks([r.id for r in refs], workers=2)) == payloads
    assert counter.given_back == 2 * len(payloads) * CHUNK_BYTES // (1 << 20)  # and once per MiB read back


def test_the_process_wide_counter_is_the_documented_one():
    assert GIVE_BACK.every_bytes == GIVE_BACK_EVERY_BYTES
    assert 8 << 20 <= GIVE_BACK_EVERY_BYTES <= 64 << 20
