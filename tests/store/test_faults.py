"""Fault injection: a proxy in front of the real S3 server breaks a share of the requests."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clonekit import retry
from clonekit.errors import IntegrityError, StoreError
from clonekit.repository import Repository
from clonekit.store import open_store
from tests.store.conftest import make_manifest, payloads, s3_config
from tests.store.faultproxy import FaultProxy


@pytest.fixture
def proxy(s3_bucket):
    with FaultProxy(s3_bucket.endpoint_url) as p:
        yield p


def test_snapshot_completes_through_retries(s3_bucket, proxy):
    direct = s3_config(s3_bucket)
    through = replace(direct, endpoint_url=proxy.endpoint_url)
    proxy.failure_rate = 0.3
    repo = Repository.open(through)
    data = payloads(30, size=20000)
    with repo.writer(workers=4) as writer:
        refs = [writer.put(p) for p in data]
    manifest = make_manifest(refs)
    repo.commit(manifest)
    assert list(repo.iter_chunks([r.id for r in refs], workers=4)) == data
    assert repo.verify(manifest).ok
    # every fault mode really happened, and the result is whole as seen without the proxy
    assert all(proxy.counts[m] > 0 for m in ("500", "503", "slowdown", "reset", "drop", "truncate")), proxy.counts
    clean = Repository.open(direct, create=False)
    assert [m.id for m in clean.manifests()] == [manifest.id]
    assert clean.verify(manifest).ok


def test_total_failure_is_clean_and_nothing_is_visible(s3_bucket, proxy, monkeypatch):
    monkeypatch.setattr(retry, "MAX_ATTEMPTS", 3)
    direct = s3_config(s3_bucket)
    repo = Repository.open(replace(direct, endpoint_url=proxy.endpoint_url))
    proxy.failure_rate = 1.0
    with pytest.raises(StoreError, match="gave up after 3 attempts") as exc:
        writer = repo.writer(workers=2)
        for p in payloads(5):
            writer.put(p)
        writer.close()
    assert "chunks/" in str(exc.value) and "Traceback" not in str(exc.value)
    repo._chunk_index = {}  # as if the listing had worked: now the uploads themselves fail
    writer = repo.writer(workers=2)
    writer.put(b"x" * 1000)
    with pytest.raises(StoreError, match="cannot write chunks/"):
        writer.close()
    with pytest.raises(StoreError):
        repo.commit(make_manifest([]))
    raw = open_store(direct)
    assert list(raw.list("snapshots/")) == []
    assert Repository.open(direct).manifests() == []
    assert proxy.counts["requests"] >= 3


def test_corrupted_transfer_is_read_again_and_persistent_corruption_refused(s3_bucket):
    repo = Repository.open(s3_config(s3_bucket))
    with repo.writer() as writer:
        ref = writer.put(payloads(1, size=50000)[0])
    with FaultProxy(s3_bucket.endpoint_url, failure_rate=1.0, modes=("corrupt",), max_faults=1) as once:
        through = Repository.open(replace(s3_config(s3_bucket), endpoint_url=once.endpoint_url))
        assert through.get_chunk(ref.id) == repo.get_chunk(ref.id)
        assert once.counts["corrupt"] == 1
    with FaultProxy(s3_bucket.endpoint_url, failure_rate=1.0, modes=("corrupt",)) as always:
        through = Repository.open(replace(s3_config(s3_bucket), endpoint_url=always.endpoint_url))
        with pytest.raises(IntegrityError, match=ref.id):
            through.get_chunk(ref.id)


def test_provider_without_conditional_writes(s3_bucket):
    with FaultProxy(s3_bucket.endpoint_url, reject_conditional=True) as proxy:
        config = replace(s3_config(s3_bucket), endpoint_url=proxy.endpoint_url)
        store = open_store(config)
        assert store.put_if_absent("a", b"1") is True
        assert store.put_if_absent("a", b"2") is False
        assert store.get("a") == b"1"
        repo = Repository.open(config)
        with repo.writer() as writer:
            ref = writer.put(b"z" * 1000)
        repo.commit(make_manifest([ref]))
        assert len(repo.manifests()) == 1
        assert proxy.counts["501"] == 2  # refused once per store object, then HEAD + PUT
