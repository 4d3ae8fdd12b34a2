"""Repository round trip on the folder store (the S3 variants live in the contract suites)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from support import make_manifest

from clonekit.config import StoreConfig
from clonekit.errors import StoreError
from clonekit.repository import Repository


def test_local_round_trip_and_dedup(tmp_path):
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store")))
    payloads = [os.urandom(5000) for _ in range(5)] + [b"x" * 50000]
    with repo.writer() as writer:
        refs = [writer.put(p) for p in payloads]
    assert writer.stats.new_chunks == 6
    now = datetime.now(UTC)
    manifest = make_manifest(project="news", at=now, database={"tables": [{"name": "t", "chunks": [r.to_json() for r in refs]}]})
    repo.commit(manifest)

    again = Repository.open(StoreConfig(url=str(tmp_path / "store")), create=False)
    assert list(again.iter_chunks([r.id for r in refs])) == payloads
    with again.writer() as writer:
        for p in payloads:
            writer.put(p)
    assert writer.stats.new_chunks == 0 and writer.stats.new_stored_bytes == 0
    assert again.resolve("prod@latest") == manifest
    assert again.verify(manifest).ok


def test_wait_stored_returns_once_the_chunks_are_readable_and_fails_after_an_abort(tmp_path):
    """A pipelined clone reads a table's chunks while the rest of the snapshot is still uploading."""
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store")))
    payloads = [os.urandom(300_000) for _ in range(12)]
    writer = repo.writer(workers=2, max_pending_bytes=1 << 20)
    refs = [writer.put(p) for p in payloads]
    writer.wait_stored(r.id for r in refs[:6])  # while the others may still be queued
    assert [repo.get_chunk(r.id) for r in refs[:6]] == payloads[:6]
    writer.close()
    writer.wait_stored(r.id for r in refs)  # all stored: returns at once
    assert list(repo.iter_chunks([r.id for r in refs])) == payloads

    aborted = repo.writer(workers=1, max_pending_bytes=1 << 30)
    late = [aborted.put(os.urandom(100_000)) for _ in range(200)]  # each upload is a write and an fsync
    aborted.abort()  # queued uploads dropped: waiting for them must fail, not hang
    with pytest.raises(StoreError, match="stopped before"):
        aborted.wait_stored(r.id for r in late)
