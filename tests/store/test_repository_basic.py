"""Repository round trip on the folder store (the S3 variants live in the contract suites)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from support import make_manifest

from clonekit.config import StoreConfig
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
