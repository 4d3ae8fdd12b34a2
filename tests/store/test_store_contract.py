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
    from tests.store.conftest import s3_config

    _multipart_below(monkeypatch)
    store = open_store(s3_config(s3_bucket), retry=False)
    heads = []
    real_head = store._client.head_object
    monkeypatch.setattr(store._client, "head_object", lambda **kw: (heads.append(kw["Key"]), real_head(**kw))[1])
    data = bytes(range(256)) * (11 << 12)  # 11 MiB: three parts
    store.put("big/object", data)
    # RGW's CompleteMultipartUpload answer has an empty ETag: the store confirms the object with a HEAD
    assert heads == (["snapshots/big/object"] if s3_bucket.server == "rgw" else [])
    assert store.get("big/object") == data
    head = s3_bucket.client().head_object(Bucket=s3_bucket.bucket, Key="snapshots/big/object")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag names its part count
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
    if s3_bucket.server == "rgw":  # RGW reports the real "Initiated" time: a fresh upload is not a leftover
        assert store.cleanup(datetime.now(UTC) - timedelta(hours=1)) == 0
    # (moto reports a fixed 2010 "Initiated" date, so there the age cut-off is tested on the folder store)
    assert store.cleanup(datetime.now(UTC) + timedelta(minutes=1)) == 1
    left = {u["UploadId"] for u in client.list_multipart_uploads(Bucket=s3_bucket.bucket).get("Uploads", [])}
    assert mine not in left and other in left  # outside the store's prefix: not ours
    client.abort_multipart_upload(Bucket=s3_bucket.bucket, Key="elsewhere/obj", UploadId=other)


def test_racing_creators_exactly_one_wins(store):
    """config.json and manifests are created with put_if_absent: of racing creators one wins."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [f"creator {n}".encode() * 100 for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda body: store.put_if_absent("snapshots/raced.json", body), bodies))
    assert won.count(True) == 1
    assert store.get("snapshots/raced.json") == bodies[won.index(True)]


def test_overwrite_moves_the_modified_time(store):
    """Lock objects are refreshed by overwriting them; staleness is read from the listing's time."""
    import time

    store.put("locks/shared-x.json", b"1")
    [first] = store.list("locks/")
    while datetime.now(UTC) < first.modified + timedelta(seconds=1.1):  # S3 times have 1 s resolution
        time.sleep(0.1)
    store.put("locks/shared-x.json", b"1")
    [second] = store.list("locks/")
    assert second.modified > first.modified


def _multipart_below(monkeypatch, threshold: int = 6 << 20, part: int = 5 << 20) -> None:
    from clonekit.store import s3

    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD_BYTES", threshold)
    monkeypatch.setattr(s3, "MULTIPART_PART_BYTES", part)


def test_s3_large_object_is_still_created_only_once(s3_bucket, monkeypatch):
    """A manifest above the multipart threshold: one conditional PUT, never a multipart upload
    (RGW ignores If-None-Match on CompleteMultipartUpload, so that could overwrite)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.store.conftest import s3_config

    _multipart_below(monkeypatch)
    store = open_store(s3_config(s3_bucket), retry=False)
    bodies = [bytes([n]) * (7 << 20) for n in range(4)]  # 7 MiB each: above the threshold
    # moto's conditional PUT is not atomic for objects it spools to disk (racing creators get
    # 500s, and more than one may land): on moto the creators take turns; on RGW they race.
    with ThreadPoolExecutor(4 if s3_bucket.server == "rgw" else 1) as pool:
        won = list(pool.map(lambda body: store.put_if_absent("snapshots/big.json", body), bodies))
    assert won.count(True) == 1
    assert store.get("snapshots/big.json") == bodies[won.index(True)]
    head = s3_bucket.client().head_object(Bucket=s3_bucket.bucket, Key="snapshots/snapshots/big.json")
    assert "-" not in head["ETag"]  # a single PUT, not a multipart upload
    assert store.put_if_absent("snapshots/big.json", b"later") is False


def test_s3_listing_pages_return_every_key_once(s3_bucket, monkeypatch):
    from clonekit.store import s3
    from tests.store.conftest import s3_config

    monkeypatch.setattr(s3, "LIST_PAGE_KEYS", 3)
    store = open_store(s3_config(s3_bucket), retry=False)
    keys = [f"chunks/{n:02x}/{n:02x}/obj{n}" for n in range(0, 250, 23)]  # 11 keys over 4 pages
    for key in keys:
        store.put(key, key.encode())
    store.put("chunksX/outside", b"x")
    listed = [o.key for o in store.list("chunks/")]
    assert sorted(listed) == sorted(keys) and len(listed) == len(keys)


def test_s3_server_edge_behaviours(s3_bucket):
    """What the S3 server itself answers where servers differ (docs/format.md, "S3 servers").
    clonekit relies only on the first line; the others pin what it must not rely on."""
    import botocore.exceptions

    client, bucket, key = s3_bucket.client(), s3_bucket.bucket, "edge/object"
    client.put_object(Bucket=bucket, Key=key, Body=b"first")
    # Everywhere: If-None-Match: * on a single PUT refuses an existing key (412) and keeps it.
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first"

    # CompleteMultipartUpload with If-None-Match: * over an existing key.
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"multipart")
    try:
        done = client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        completed_over_existing = True
    except botocore.exceptions.ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        completed_over_existing = False
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored == (b"multipart" if completed_over_existing else b"first")
    # moto (like AWS) refuses with 412; RGW ignores the condition: hence no multipart create-once
    assert completed_over_existing == (s3_bucket.server == "rgw")
    if s3_bucket.server == "rgw":
        assert done.get("ETag", "").strip('"') == ""  # and answers an empty ETag (S3Store HEADs instead)
        head_etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
        assert head_etag.strip('"').endswith("-1")
        # If-Match compares the ETag unquoted: the quoted form S3 returns is refused.
        with pytest.raises(botocore.exceptions.ClientError) as quoted:
            client.put_object(Bucket=bucket, Key=key, Body=b"third", IfMatch=head_etag)
        assert quoted.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        client.put_object(Bucket=bucket, Key=key, Body=b"third", IfMatch=head_etag.strip('"'))
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"third"
