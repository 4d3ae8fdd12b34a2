"""Repository behaviour on both stores: round trip, dedup, commit, resolve, corruption, encryption."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from dataclasses import replace

import pytest

from clonekit.errors import ConfigError, IntegrityError, NotFoundError, StoreError
from clonekit.repository import Repository, chunk_key, manifest_key
from clonekit.store import open_store
from tests.store.conftest import hours_ago, make_manifest, payloads


def test_round_trip_and_stats(store_config):
    repo = Repository.open(store_config)
    data = payloads(12)
    with repo.writer(workers=4) as writer:
        refs = [writer.put(p) for p in data]
        writer.put(data[0])  # duplicate within the run
    stats = writer.stats
    assert [r.id for r in refs] == [hashlib.sha256(p).hexdigest() for p in data]
    assert stats.chunks == 13 and stats.new_chunks == 12
    assert stats.plain_bytes == sum(map(len, data)) + len(data[0])
    assert 0 < stats.new_stored_bytes < sum(map(len, data))  # compressed
    assert list(repo.iter_chunks([r.id for r in reversed(refs)], workers=3)) == list(reversed(data))
    assert repo.get_chunk(refs[5].id) == data[5]

    manifest = make_manifest(refs)
    repo.commit(manifest)
    fresh = Repository.open(store_config, create=False)
    [loaded] = fresh.manifests()
    assert loaded == manifest and loaded.chunk_ids() == {r.id for r in refs}
    assert fresh.verify(loaded).ok


def test_dedup_second_put_stores_nothing(store_config):
    data = payloads(6)
    with Repository.open(store_config).writer() as first:
        for p in data:
            first.put(p)
    with Repository.open(store_config).writer() as second:  # a new process: dedup against the store
        for p in data:
            second.put(p)
    assert second.stats.new_chunks == 0 and second.stats.new_stored_bytes == 0
    assert second.stats.stored_bytes == first.stats.new_stored_bytes


def test_config_written_once(store_config):
    one = Repository.open(store_config)
    two = Repository.open(store_config)
    assert one.config.repository_id == two.config.repository_id
    raw = json.loads(open_store(store_config).get("config.json"))
    assert raw["format_version"] == 1 and raw["encryption"] is None


def test_open_without_create_on_empty_store(store_config):
    with pytest.raises(NotFoundError, match="no clonekit store"):
        Repository.open(store_config, create=False)


@pytest.mark.parametrize("check", ["head", "listing"])
def test_commit_refuses_missing_chunks_and_writes_nothing(store_config, monkeypatch, check):
    # a few reused chunks are checked with a HEAD each, many with one listing: same verdict
    monkeypatch.setattr("clonekit.repository.HEAD_CHECK_LIMIT", 100 if check == "head" else 1)
    repo = Repository.open(store_config)
    with repo.writer() as writer:
        refs = [writer.put(p) for p in payloads(3)]
    repo.store.delete(chunk_key(refs[1].id))
    other = Repository.open(store_config)  # did not upload them itself, so it checks
    manifest = make_manifest(refs)
    with pytest.raises(IntegrityError, match=refs[1].id):
        other.commit(manifest)
    assert other.manifests() == []
    assert not other.store.exists(manifest_key(manifest.id))


def test_aborted_writer_leaves_no_snapshot_and_chunks_are_reused(store_config):
    repo = Repository.open(store_config)
    data = payloads(5)
    with pytest.raises(RuntimeError), repo.writer() as writer:
        for p in data:
            writer.put(p)
        raise RuntimeError("crash before commit")
    assert repo.manifests() == []
    with Repository.open(store_config).writer() as again:
        for p in data:
            again.put(p)
    assert again.stats.new_chunks + writer.stats.new_chunks == 5


def test_killed_process_leaves_no_snapshot(store_config):
    """A real SIGKILL in the middle of a snapshot: nothing visible, chunks reused by the next run."""
    script = f"""
import os, signal
from clonekit.config import StoreConfig
from clonekit.repository import Repository
repo = Repository.open(StoreConfig(**{store_config.__dict__!r}))
writer = repo.writer(workers=2)
for i in range(8):
    writer.put(bytes([i]) * 50000)
writer.close()
print("uploaded", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "uploaded" in proc.stdout, proc.stderr
    repo = Repository.open(store_config)
    assert repo.manifests() == []
    with repo.writer() as writer:
        refs = [writer.put(bytes([i]) * 50000) for i in range(8)]
    assert writer.stats.new_chunks == 0
    repo.commit(make_manifest(refs))
    assert len(repo.manifests()) == 1


def test_resolve_rules(store_config):
    repo = Repository.open(store_config)
    with repo.writer() as writer:
        refs = [writer.put(p) for p in payloads(2)]
    old = make_manifest(refs, source="prod", at=hours_ago(30))
    mid = make_manifest(refs, source="staging", at=hours_ago(20))
    new = make_manifest(refs, source="prod", at=hours_ago(10))
    for m in (new, old, mid):
        repo.commit(m)
    assert [m.id for m in repo.manifests()] == [old.id, mid.id, new.id]
    assert [m.id for m in repo.manifests("prod")] == [old.id, new.id]
    assert repo.resolve("latest") == new
    assert repo.resolve("staging@latest") == mid
    assert repo.resolve(old.id) == old
    assert repo.resolve(mid.id[:10]) == mid  # "staging-2" is unique
    with pytest.raises(NotFoundError, match="ambiguous") as exc:
        repo.resolve("prod-")
    assert old.id in str(exc.value) and new.id in str(exc.value)
    with pytest.raises(NotFoundError, match="'dev'.*prod, staging"):
        repo.resolve("dev@latest")
    with pytest.raises(NotFoundError, match="no snapshot matches 'zzz'"):
        repo.resolve("zzz")
    assert NotFoundError.exit_code == 2


def test_resolve_empty_store(store_config):
    with pytest.raises(NotFoundError, match="no snapshots"):
        Repository.open(store_config).resolve("latest")


def _flip_bit(store_config, key: str) -> None:
    raw = open_store(store_config)
    blob = bytearray(raw.get(key))
    blob[len(blob) // 2] ^= 0x10
    raw.put(key, bytes(blob))


def test_flipped_bit_caught_by_verify_and_get_chunk(store_config):
    repo = Repository.open(store_config)
    with repo.writer() as writer:
        refs = [writer.put(p) for p in payloads(4)]
    manifest = make_manifest(refs)
    repo.commit(manifest)
    _flip_bit(store_config, chunk_key(refs[2].id))
    report = repo.verify(manifest)
    assert not report.ok and report.chunks_checked == 4
    assert [b.key for b in report.bad] == [chunk_key(refs[2].id)]
    with pytest.raises(IntegrityError, match=refs[2].id):
        repo.get_chunk(refs[2].id)
    with pytest.raises(IntegrityError):
        list(repo.iter_chunks([r.id for r in refs]))
    assert repo.get_chunk(refs[1].id)  # the others still read


def test_verify_names_missing_chunk_and_tracks_progress(store_config):
    repo = Repository.open(store_config)
    with repo.writer() as writer:
        refs = [writer.put(p) for p in payloads(3)]
    manifest = make_manifest(refs)
    repo.commit(manifest)
    repo.store.delete(chunk_key(refs[0].id))
    seen = []
    report = repo.verify(manifest, progress=lambda task, advance=0, total=None: seen.append((advance, total)))
    assert [b.key for b in report.bad] == [chunk_key(refs[0].id)] and "missing" in report.bad[0].reason
    assert seen[0] == (0, sum(r.size for r in refs))
    assert sum(a for a, _ in seen) == sum(r.size for r in refs)


def test_writer_memory_is_bounded(tmp_path):
    """The writer never holds more than max_pending_bytes waiting for upload."""
    from clonekit.config import StoreConfig
    from clonekit.store.local import LocalStore

    class SlowStore(LocalStore):
        def __init__(self, root):
            super().__init__(root)
            self.gate = threading.Semaphore(0)

        def put_if_absent(self, key, data):
            if key.startswith("chunks/"):
                self.gate.acquire()
            return super().put_if_absent(key, data)

    store = SlowStore(tmp_path / "s")
    repo = Repository.open(store)
    writer = repo.writer(workers=4, max_pending_bytes=100_000)
    blocked = threading.Event()

    def feed():
        for i in range(6):
            writer.put(bytes([i]) * 40_000)
        blocked.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    feeder.join(timeout=1.0)
    assert feeder.is_alive() and not blocked.is_set()  # 3 x 40 kB > 100 kB: the third put waits
    assert writer._pending_bytes <= 100_000
    for _ in range(6):
        store.gate.release()
    feeder.join()
    writer.close()
    assert writer.stats.new_chunks == 6
    assert StoreConfig  # imported for the reader: open() also takes a Store


def test_writer_error_surfaces(tmp_path):
    from clonekit.store.local import LocalStore

    class FullDisk(LocalStore):
        def put_if_absent(self, key, data):
            if key.startswith("chunks/"):
                raise StoreError("disk full")
            return super().put_if_absent(key, data)

    repo = Repository.open(FullDisk(tmp_path / "s"))
    writer = repo.writer()
    writer.put(b"a" * 100)
    with pytest.raises(StoreError, match="disk full"):
        writer.close()


def test_encryption(store_config, encryption_key):
    enc_config = replace(store_config, encryption_key_env=encryption_key)
    repo = Repository.open(enc_config)
    secret = b"jane.doe@example.org " * 200
    with repo.writer() as writer:
        ref = writer.put(secret)
    assert ref.id != hashlib.sha256(secret).hexdigest()  # keyed: the provider cannot test for known content
    manifest = make_manifest([ref], source="prodsecret")
    repo.commit(manifest)
    raw = open_store(store_config)
    blob = raw.get(chunk_key(ref.id))
    assert b"jane.doe" not in blob
    assert b"\x28\xb5\x2f\xfd" not in blob[:40]  # no visible zstd frame: sealed, not merely compressed
    assert b"prodsecret" not in raw.get(manifest_key(manifest.id))
    assert json.loads(raw.get("config.json"))["encryption"]["algorithm"] == "AES-256-GCM"

    again = Repository.open(enc_config)
    assert again.resolve("latest") == manifest and again.get_chunk(ref.id) == secret
    assert again.verify(manifest).ok
    _flip_bit(store_config, chunk_key(ref.id))
    with pytest.raises(IntegrityError, match=f"{ref.id}: authentication failed"):
        again.get_chunk(ref.id)
    assert [b.key for b in again.verify(manifest).bad] == [chunk_key(ref.id)]


def test_encryption_refuses_wrong_or_missing_key(store_config, encryption_key, monkeypatch):
    enc_config = replace(store_config, encryption_key_env=encryption_key)
    Repository.open(enc_config)
    monkeypatch.setenv(encryption_key, "11" * 32)
    with pytest.raises(ConfigError, match="does not open the store"):
        Repository.open(enc_config)
    with pytest.raises(ConfigError, match="is encrypted"):
        Repository.open(store_config)
    monkeypatch.setenv(encryption_key, "short")
    with pytest.raises(ConfigError, match="32 bytes"):
        Repository.open(enc_config)
    monkeypatch.delenv(encryption_key)
    with pytest.raises(ConfigError, match="is not set"):
        Repository.open(enc_config)


def test_plain_store_refuses_a_key(store_config, encryption_key):
    Repository.open(store_config)
    with pytest.raises(ConfigError, match="without encryption"):
        Repository.open(replace(store_config, encryption_key_env=encryption_key))


def test_base64_key_accepted(tmp_path, monkeypatch):
    import base64

    from clonekit.config import StoreConfig

    monkeypatch.setenv("CK_B64_KEY", base64.b64encode(bytes(range(32))).decode())
    repo = Repository.open(StoreConfig(url=str(tmp_path / "s"), encryption_key_env="CK_B64_KEY"))
    assert repo.encrypted


def test_open_without_create_leaves_no_folder(tmp_path):
    from clonekit.config import StoreConfig

    with pytest.raises(NotFoundError, match="no clonekit store"):
        Repository.open(StoreConfig(url=str(tmp_path / "absent")), create=False)
    assert not (tmp_path / "absent").exists()


def test_put_is_thread_safe(store_config):
    repo = Repository.open(store_config)
    shared = payloads(10, size=2000, seed=b"shared")
    own = [payloads(5, size=2000, seed=bytes([t])) for t in range(4)]
    refs: list = []

    def feed(t: int) -> None:
        for p in shared + own[t]:
            refs.append(writer.put(p))

    with repo.writer(workers=3, max_pending_bytes=8000) as writer:
        threads = [threading.Thread(target=feed, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stats = writer.stats
    assert stats.chunks == 60 and stats.new_chunks == 30 and len({r.id for r in refs}) == 30
    assert sorted(repo.list_chunks()) == sorted({r.id for r in refs})


def test_iter_chunks_reads_ahead_a_bounded_window(tmp_path):
    from clonekit.store.local import LocalStore

    class CountingStore(LocalStore):
        gets = 0

        def get(self, key):
            if key.startswith("chunks/"):
                CountingStore.gets += 1
            return super().get(key)

    repo = Repository.open(CountingStore(tmp_path / "s"))
    with repo.writer() as writer:
        ids = [writer.put(p).id for p in payloads(40, size=1000)]
    stream = repo.iter_chunks(ids, workers=3)
    next(stream)
    next(stream)
    assert CountingStore.gets <= 2 * 3 + 2  # not the 40 of them
    stream.close()


def test_compression_level_option_sets_new_stores_and_runs_not_existing_config(store_config):
    """store_options.compression_level: recorded by a new store; on an existing one it only changes
    this run's new chunks (config.json keeps its level), and every level reads back."""
    data = b"clonekit " * 200_000  # compressible: levels differ in size
    high = Repository.open(replace(store_config, compression_level=19))
    assert json.loads(high.store.get("config.json"))["compression"]["level"] == 19
    with high.writer() as writer:
        dense = writer.put(data)
    dense_bytes = writer.stats.new_stored_bytes
    default = Repository.open(replace(store_config, compression_level=None))
    assert default.config.zstd_level == 19  # the store's own level
    fast = Repository.open(replace(store_config, compression_level=1))
    assert json.loads(fast.store.get("config.json"))["compression"]["level"] == 19
    with fast.writer() as writer:
        loose = writer.put(data + b"!")
    assert writer.stats.new_stored_bytes > dense_bytes
    assert fast.get_chunk(dense.id) == data and high.get_chunk(loose.id) == data + b"!"
