"""Store-wide advisory locks on both stores: shared for snapshots, exclusive for prune."""

from __future__ import annotations

import threading

import pytest

from clonekit import repository
from clonekit.errors import LockedError
from clonekit.repository import LOCKS_PREFIX, Repository


def _locks(repo: Repository) -> list[str]:
    return [o.key for o in repo.store.list(LOCKS_PREFIX)]


def test_shared_locks_coexist_and_are_removed(store_config):
    repo = Repository.open(store_config)
    with repo.lock(exclusive=False, wait_seconds=0), repo.lock(exclusive=False, wait_seconds=0):
        assert len(_locks(repo)) == 2
    assert _locks(repo) == []


def test_shared_blocks_exclusive_with_a_clear_message(store_config):
    repo = Repository.open(store_config)
    other = Repository.open(store_config)
    with repo.lock(exclusive=False):
        with pytest.raises(LockedError, match=r"locked by another clonekit run \(shared lock of pid \d+") as exc:
            with other.lock(exclusive=True, wait_seconds=0):
                pass
        assert "expires" in str(exc.value)
    assert _locks(repo) == []  # the refused attempt left nothing behind
    with other.lock(exclusive=True, wait_seconds=0):
        pass


def test_exclusive_blocks_everyone(store_config):
    repo = Repository.open(store_config)
    with repo.lock(exclusive=True, wait_seconds=0):
        for exclusive in (False, True):
            with pytest.raises(LockedError, match="exclusive lock"):
                with repo.lock(exclusive=exclusive, wait_seconds=0):
                    pass


def test_waits_for_release(store_config):
    repo = Repository.open(store_config)
    held, release = threading.Event(), threading.Event()

    def holder():
        with repo.lock(exclusive=True, wait_seconds=0):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    with repo.lock(exclusive=False, wait_seconds=30):  # waits until the holder lets go
        assert release.is_set()
    thread.join()


def test_stale_lock_is_ignored(store_config, monkeypatch):
    repo = Repository.open(store_config)
    repo.store.put(f"{LOCKS_PREFIX}exclusive-killedrun.json", b'{"kind": "exclusive", "pid": 1}')
    with pytest.raises(LockedError):
        with repo.lock(exclusive=False, wait_seconds=0):
            pass
    monkeypatch.setattr(repository, "LOCK_STALE_SECONDS", 0)  # as if the killed run's lock were hours old
    with repo.lock(exclusive=False, wait_seconds=0):
        pass


def test_lock_is_refreshed_while_held(store_config, monkeypatch):
    monkeypatch.setattr(repository, "LOCK_STALE_SECONDS", 0.2)  # refresh every 0.05 s
    repo = Repository.open(store_config)
    writes = []
    real_put = repo.store.put
    monkeypatch.setattr(repo.store, "put", lambda key, data: (writes.append(key), real_put(key, data)))
    done = threading.Event()
    with repo.lock(exclusive=False, wait_seconds=0):
        done.wait(0.5)
    assert len(writes) >= 3 and len(set(writes)) == 1
