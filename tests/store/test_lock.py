"""Store-wide advisory locks on both stores: shared for snapshots, exclusive for prune."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from clonekit import repository
from clonekit.errors import LockedError
from clonekit.owner import process_started
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
    writes: list[str] = []
    refreshed = threading.Event()
    real_put = repo.store.put

    def put(key, data):
        writes.append(key)
        real_put(key, data)
        if len(writes) >= 3:  # the first write takes the lock; two more are refreshes
            refreshed.set()

    monkeypatch.setattr(repo.store, "put", put)
    with repo.lock(exclusive=False, wait_seconds=0):
        assert refreshed.wait(60)  # an event, not a duration: the bound only stops a hang
    count = len(writes)
    assert len(set(writes)) == 1  # always the same lock object
    assert _locks(repo) == []
    assert len(writes) == count  # no refresh after the release


def test_lock_records_its_owner_process(store_config):
    repo = Repository.open(store_config)
    with repo.lock(exclusive=True, wait_seconds=0):
        (key,) = _locks(repo)
        owner = json.loads(repo.store.get(key))
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert owner["started"] == process_started(os.getpid())


def test_lock_of_a_gone_local_process_is_taken_over(store_config, caplog):
    """A pid that no longer runs on this host; and a live pid whose start time differs (pid reuse)."""
    repo = Repository.open(store_config)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    reused = {"pid": os.getpid(), "host": socket.gethostname(), "started": "another-boot:1"}
    for name, owner in (("dead", {"pid": dead.pid, "host": socket.gethostname()}), ("reused", reused)):
        repo.store.put(f"{LOCKS_PREFIX}exclusive-{name}.json", json.dumps({"kind": "exclusive", **owner}).encode())
    with repo.lock(exclusive=True, wait_seconds=0):
        pass
    assert _locks(repo) == []
    assert sum("taking over lock" in r.getMessage() for r in caplog.records) == 2


def test_lock_of_another_host_is_not_taken_over(store_config):
    repo = Repository.open(store_config)
    other = {"kind": "exclusive", "pid": 1, "host": "some-other-host", "started": "x:1"}
    repo.store.put(f"{LOCKS_PREFIX}exclusive-remote.json", json.dumps(other).encode())
    with pytest.raises(LockedError, match="pid 1 on some-other-host"):
        with repo.lock(exclusive=False, wait_seconds=0):
            pass
