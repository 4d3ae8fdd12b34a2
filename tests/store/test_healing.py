"""Healing at the repository level, on the folder store and the real S3 server (issue 14)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clonekit.errors import IntegrityError
from clonekit.repository import Repository, bad_key, chunk_key, manifest_key
from clonekit.store import open_store
from tests.store.conftest import hours_ago, make_manifest, payloads


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_corrupt_chunk_is_set_aside_and_the_next_writer_stores_it_again(store_config, encryption_key, encrypted):
    config = replace(store_config, encryption_key_env=encryption_key) if encrypted else store_config
    repo = Repository.open(config)
    data = payloads(3)
    with repo.writer() as writer:
        refs = [writer.put(p) for p in data]
    raw = open_store(config)
    victim = refs[1].id
    blob = bytearray(raw.get(chunk_key(victim)))
    blob[-3] ^= 0x40
    raw.put(chunk_key(victim), bytes(blob))

    with pytest.raises(IntegrityError) as failure:
        repo.get_chunk(victim)
    assert bad_key(victim) in str(failure.value)
    assert raw.get(bad_key(victim)) == bytes(blob) and not raw.exists(chunk_key(victim))
    assert set(repo.quarantined()) == {victim}

    again = Repository.open(config, create=False)  # the next run
    with again.writer() as writer:
        assert not writer.has(victim) and writer.has(refs[0].id)
        for p in data:
            writer.put(p)
    assert writer.stats.new_chunks == 1
    assert again.get_chunk(victim) == data[1]
    assert again.quarantined() == {}


def test_a_good_copy_is_never_set_aside(store_config):
    repo = Repository.open(store_config)
    with repo.writer() as writer:
        ref = writer.put(payloads(1)[0])
    assert repo.quarantine(ref.id) is False  # re-checked first: a good object stays
    assert repo.quarantine("0" * 64) is False  # a missing one is nothing to move
    assert repo.quarantined() == {} and repo.has_chunk(ref.id)


def test_catalog_names_unreadable_manifests_by_key(store_config):
    repo = Repository.open(store_config)
    with repo.writer() as writer:
        refs = [writer.put(p) for p in payloads(2)]
    good = make_manifest(refs[:1], at=hours_ago(3))
    damaged = make_manifest(refs[1:], at=hours_ago(2))
    other = make_manifest(refs[1:], source="staging", at=hours_ago(1))
    for m in (good, damaged, other):
        repo.commit(m)
    raw = open_store(store_config)
    raw.put(manifest_key(damaged.id), b"CK\x01\x00{not json")
    raw.put(manifest_key(other.id), b"garbage")

    fresh = Repository.open(store_config, create=False)
    catalog = fresh.catalog()
    assert [m.id for m in catalog.manifests] == [good.id]
    assert [(u.id, u.key) for u in catalog.unreadable] == sorted(
        [(damaged.id, manifest_key(damaged.id)), (other.id, manifest_key(other.id))]
    )
    assert "not valid JSON" in catalog.unreadable[[u.id for u in catalog.unreadable].index(damaged.id)].reason
    assert [u.id for u in fresh.catalog("prod").unreadable] == [damaged.id]  # the id names its source
    assert fresh.latest("prod") == good  # the newer, unreadable one is passed over
    assert fresh.latest("staging") is None
    with pytest.raises(IntegrityError, match=manifest_key(damaged.id)):
        fresh.resolve(damaged.id)
