"""The Store contract, run against the folder store and the S3 store on the real loopback server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clonekit.errors import StoreError
from clonekit.store import MissingObjectError, open_store


@pytest.fixture
def store(store_config):
    s = open_store(store_config, retry=False)
    yield s
    s.close()


def test_put_get_overwrite(store):
    store.put("a/b/obj", b"one")
    assert store.get("a/b/obj") == b"one"
    store.put("a/b/obj", b"two")
    assert store.get("a/b/obj") == b"two"
    store.put("empty", b"")
    assert store.get("empty") == b""


def test_put_if_absent_writes_once(store):
    assert store.put_if_absent("cfg.json", b"first") is True
    assert store.put_if_absent("cfg.json", b"second") is False
    assert store.get("cfg.json") == b"first"


def test_missing_object(store):
    assert store.exists("nope/x") is False
    with pytest.raises(MissingObjectError, match="nope/x"):
        store.get("nope/x")
    store.delete("nope/x")  # deleting a missing key is fine


def test_list_prefix_sizes_times(store):
    before = datetime.now(UTC) - timedelta(minutes=5)
    store.put("chunks/aa/bb/1", b"x" * 10)
    store.put("chunks/aa/cc/2", b"y" * 20)
    store.put("chunksX/3", b"z")
    store.put("snapshots/s.json", b"{}")
    found = {o.key: o for o in store.list("chunks/")}
    assert set(found) == {"chunks/aa/bb/1", "chunks/aa/cc/2"}
    assert found["chunks/aa/cc/2"].size == 20
    assert all(o.modified.tzinfo is not None and o.modified > before for o in found.values())
    assert {o.key for o in store.list("snapshots/")} == {"snapshots/s.json"}
    assert list(store.list("nothing-here/")) == []


def test_delete(store):
    store.put("k", b"v")
    assert store.exists("k")
    store.delete("k")
    assert not store.exists("k")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_invalid_keys_refused(store, key):
    with pytest.raises(StoreError):
        store.put(key, b"v")


def test_local_temp_files_are_invisible(tmp_path):
    from clonekit.config import StoreConfig

    store = open_store(StoreConfig(url=f"file://{tmp_path}/s"), retry=False)
    store.put("chunks/x", b"1")
    (tmp_path / "s" / "chunks" / ".tmp-deadbeef").write_bytes(b"partial")  # what a kill mid-write leaves
    assert [o.key for o in store.list("chunks/")] == ["chunks/x"]


def test_s3_multipart_for_large_objects(s3_bucket, monkeypatch):
    from clonekit.store import s3
    from tests.store.conftest import s3_config

    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD_BYTES", 6 << 20)
    monkeypatch.setattr(s3, "MULTIPART_PART_BYTES", 5 << 20)
    store = open_store(s3_config(s3_bucket), retry=False)
    data = bytes(range(256)) * (11 << 12)  # 11 MiB: three parts
    store.put("big/object", data)
    assert store.get("big/object") == data
    head = s3_bucket.client().head_object(Bucket=s3_bucket.bucket, Key="snapshots/big/object")
    assert "-3" in head["ETag"]  # a multipart ETag names its part count
    assert store.put_if_absent("big/object", data) is False


def test_cleanup_removes_only_old_leftovers(tmp_path):
    import os

    from clonekit.config import StoreConfig

    store = open_store(StoreConfig(url=str(tmp_path / "s")), retry=False)
    store.put("chunks/ab/cd/obj", b"kept")
    folder = tmp_path / "s" / "chunks" / "ab" / "cd"
    old, fresh = folder / ".tmp-old", folder / ".tmp-fresh"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"being written")
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    os.utime(old, (an_hour_ago.timestamp() - 60,) * 2)
    assert store.cleanup(an_hour_ago) == 1
    assert not old.exists() and fresh.exists() and store.get("chunks/ab/cd/obj") == b"kept"


def test_s3_cleanup_aborts_unfinished_multipart_uploads(s3_bucket):
    from tests.store.conftest import s3_config

    client = s3_bucket.client()
    mine = client.create_multipart_upload(Bucket=s3_bucket.bucket, Key="snapshots/chunks/aa/bb/killed")["UploadId"]
    other = client.create_multipart_upload(Bucket=s3_bucket.bucket, Key="elsewhere/obj")["UploadId"]
    store = open_store(s3_config(s3_bucket))
    # (moto reports a fixed 2010 "Initiated" date, so the age cut-off is tested on the folder store)
    assert store.cleanup(datetime.now(UTC) + timedelta(minutes=1)) == 1
    left = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=s3_bucket.bucket).get("Uploads", [])}
    assert mine not in left and other in left  # outside the store's prefix: not ours
    client.abort_multipart_upload(Bucket=s3_bucket.bucket, Key="elsewhere/obj", UploadId=other)
