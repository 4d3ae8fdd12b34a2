"""Transforms run in worker processes that are never forked from this threaded process.

A stress test: many captures with transformed tables while other threads hold a lock the
transform needs, log without pause and refresh a store lock. A child forked from this process
would inherit that lock held (by a thread that does not exist in the child) and wait forever;
a worker started by the fork server gets a fresh one. The guard only stops a hang: the test
asserts that every capture finished, with the right rows, through the worker processes.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from clonekit import repository
from clonekit.db import capture as capture_module
from clonekit.db import capture_database, restore_database, table_checksums
from clonekit.schema import TablePolicy

CAPTURES = 8
GUARD_SECONDS = 900

_HELD = threading.Lock()  # held by a background thread nearly all the time


def _guarded(row):  # type: ignore[no-untyped-def]
    with _HELD:  # in a child forked while the holder had it, this would never return
        return (row[0], f"user{row[0]}@example.invalid", *row[2:])


class GuardedPlanner:
    """Module-level (it is sent to the worker processes): every table through ``_guarded``."""

    def plan(self, tables, sample=None):  # type: ignore[no-untyped-def]
        return {t.name: TablePolicy(transform=_guarded, rule="guarded") for t in tables}


@pytest.fixture
def busy_threads(repo, monkeypatch):
    """Threads that hold _HELD, log, and keep a store lock refreshed, until the test ends."""
    monkeypatch.setattr(repository, "LOCK_STALE_SECONDS", 0.4)  # refreshed every 0.1 s
    stop = threading.Event()
    chatty = logging.getLogger("clonekit.test.busy")

    def hold() -> None:
        while not stop.is_set():
            with _HELD:
                time.sleep(0.005)
            time.sleep(0)  # let a waiter in now and then

    def talk() -> None:
        while not stop.is_set():
            chatty.debug("busy")

    def keep_store_lock() -> None:
        with repo.lock(exclusive=False, wait_seconds=0):
            stop.wait()

    threads = [threading.Thread(target=fn, daemon=True) for fn in (hold, talk, talk, keep_store_lock)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join()


def test_many_captures_with_busy_threads(mysql_db, mysql_target_db, source, target, repo, busy_threads, monkeypatch):
    mysql_db.execute(
        "CREATE TABLE users (uid int PRIMARY KEY, mail varchar(100), name varchar(50))",
        "INSERT INTO users SELECT seq, CONCAT('person', seq, '@real.example'), CONCAT('name ', seq) FROM seq_1_to_3000",
        "CREATE TABLE comments (cid int PRIMARY KEY, mail varchar(100), body text)",
        "INSERT INTO comments SELECT seq, CONCAT('c', seq, '@real.example'), REPEAT('x', seq % 200) FROM seq_1_to_3000",
    )
    handed_over: list[str] = []
    real = capture_module._TransformProcesses.read_typed

    def read_typed(self, conn, part, chunker, emit):  # type: ignore[no-untyped-def]
        handed_over.append(part.info.table.name)
        return real(self, conn, part, chunker, emit)

    monkeypatch.setattr(capture_module._TransformProcesses, "read_typed", read_typed)
    sections: list[dict] = []
    failures: list[BaseException] = []
    finished = threading.Event()

    def captures() -> None:
        try:
            for _ in range(CAPTURES):
                with repo.writer() as writer:
                    sections.append(capture_database(source, GuardedPlanner(), writer, workers=2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            finished.set()

    threading.Thread(target=captures, daemon=True).start()
    assert finished.wait(GUARD_SECONDS), "a capture hung (a worker waiting on a lock it inherited?)"
    assert failures == []
    assert len(sections) == CAPTURES and {s["rows"] for s in sections} == {6000}
    assert handed_over.count("users") == CAPTURES and handed_over.count("comments") == CAPTURES
    assert len({str(s["tables"]) for s in sections}) == 1  # the same chunks every time: deterministic
    restore_database(repo, sections[-1], target)
    assert mysql_target_db.query("SELECT mail FROM users WHERE uid = 7") == [("user7@example.invalid",)]
    assert table_checksums(target)["comments"] != table_checksums(source)["comments"]
