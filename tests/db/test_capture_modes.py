"""Capture consistency, privilege fallbacks, bounded memory, SSH tunnel and error mapping."""

from __future__ import annotations

import os
import threading
import uuid

import pymysql
import pytest

from clonekit.config import SshTarget
from clonekit.db import DbEndpoint, capture_database, restore_database, table_checksums
from clonekit.db import capture as capture_module
from clonekit.errors import PolicyError, SourceError, TransientSourceError
from clonekit.schema import CopyEverything, TablePolicy
from clonekit.transport.ssh import SshSession


def _capture(source, repo, **kwargs):  # type: ignore[no-untyped-def]
    with repo.writer(max_pending_bytes=kwargs.pop("max_pending_bytes", 64 << 20)) as writer:
        return capture_database(source, CopyEverything(), writer, **kwargs)


def test_all_workers_read_one_snapshot_while_the_site_keeps_writing(mysql_db, source, repo):
    mysql_db.execute(
        "CREATE TABLE a_big (id int PRIMARY KEY, body text)",
        "INSERT INTO a_big SELECT seq, REPEAT('x', 2000) FROM seq_1_to_3000",
        "CREATE TABLE z_small (id int PRIMARY KEY AUTO_INCREMENT, v int)",
        "INSERT INTO z_small (v) VALUES (1), (2)",
    )
    writes = []

    def site_writes(task: str, advance: int = 0, total: int | None = None) -> None:
        # The first stored chunk of a_big: the site inserts, deletes rows not read yet, and commits.
        if advance and not writes:
            mysql_db.execute("INSERT INTO z_small (v) VALUES (3)", "DELETE FROM a_big WHERE id > 2990")
            writes.append(task)

    section = _capture(source, repo, workers=1, progress=site_writes)
    rows = {t["name"]: t["rows"] for t in section["tables"]}
    assert writes == ["database"]
    assert mysql_db.query("SELECT COUNT(*) FROM a_big") == [(2990,)]
    assert rows == {"a_big": 3000, "z_small": 2}


@pytest.fixture
def limited_user(mysql_db):  # type: ignore[no-untyped-def]
    """A read-only account without RELOAD; ``grant('LOCK TABLES')`` adds more."""
    name = f"cktest_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    mysql_db.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'",
                     f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON `{mysql_db.name}`.* TO '{name}'@'%'")
    server = mysql_db.server

    def grant(privileges: str) -> None:
        mysql_db.execute(f"GRANT {privileges} ON `{mysql_db.name}`.* TO '{name}'@'%'")

    try:
        yield DbEndpoint(server.host, server.port, name, password, mysql_db.name), grant
    finally:
        mysql_db.execute(f"DROP USER IF EXISTS '{name}'@'%'")


def test_without_reload_lock_tables_then_one_connection(mysql_db, mysql_target_db, target, repo, limited_user):
    endpoint, grant = limited_user
    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(10))", "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
                     "CREATE VIEW v AS SELECT id FROM t")
    section = _capture(endpoint, repo, workers=2)
    assert section["consistency"] == "single-connection" and section["workers"] == 1
    grant("LOCK TABLES")
    section = _capture(endpoint, repo, workers=2)
    assert section["consistency"] == "lock-tables-read" and section["workers"] == 2
    restore_database(repo, section, target)
    assert table_checksums(target) == table_checksums(endpoint)


def test_memory_stays_flat_while_streaming_a_table_many_chunks_long(mysql_db, mysql_target_db, source, target, repo):
    mysql_db.execute("CREATE TABLE big (id int PRIMARY KEY, body mediumtext)",
                     "INSERT INTO big SELECT seq, REPEAT(MD5(seq), 128) FROM seq_1_to_12000")  # ~50 MB
    peak = _PeakRss()
    with peak:
        section = _capture(source, repo, workers=1, max_pending_bytes=8 << 20)
    table_bytes = section["tables"][0]["bytes"]
    assert table_bytes > 40 << 20 and len(section["tables"][0]["chunks"]) >= 6
    assert peak.growth < 40 << 20, f"capture grew RSS by {peak.growth >> 20} MiB for a {table_bytes >> 20} MiB table"
    with peak:
        restore_database(repo, section, target, workers=2)
    assert peak.growth < 48 << 20, f"restore grew RSS by {peak.growth >> 20} MiB"
    assert table_checksums(target) == table_checksums(source)


class _PeakRss:
    def __enter__(self) -> _PeakRss:
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class UsersPlanner:
    """Module-level, so that it can be sent to the worker processes (as RulePlanner is)."""

    def plan(self, tables, sample=None):  # type: ignore[no-untyped-def]
        return {t.name: TablePolicy(transform=_fake_mail if t.name == "users" else None) for t in tables}


def _fake_mail(row):  # type: ignore[no-untyped-def]
    return (row[0], f"u{row[0]}@x.invalid")


def _broken(row):  # type: ignore[no-untyped-def]
    raise PolicyError("rule x cannot handle this value")


class BrokenPlanner:
    def plan(self, tables, sample=None):  # type: ignore[no-untyped-def]
        return {"a": TablePolicy(transform=_broken), "b": TablePolicy()}


def test_capture_through_an_ssh_tunnel(mysql_db, mysql_target_db, source, target, repo, ssh_server):
    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)",
                     "INSERT INTO t SELECT seq, REPEAT('é\\t', seq) FROM seq_1_to_500")
    ssh = SshTarget(host=ssh_server.host, user=ssh_server.user, port=ssh_server.port,
                    known_hosts=ssh_server.known_hosts, key_file=ssh_server.key_file)
    mysql_db.execute("CREATE TABLE users (uid int PRIMARY KEY, mail varchar(80))",
                     "INSERT INTO users SELECT seq, CONCAT('person', seq, '@example.org') FROM seq_1_to_300")

    # A transform too: the worker process reads through the tunnel as well, while its threads run.
    with SshSession.connect(ssh) as session, session.forward(source.host, source.port) as (host, port):
        with repo.writer() as writer:
            section = capture_database(source.with_address(host, port), UsersPlanner(), writer, workers=2)
    assert section["rows"] == 800
    restore_database(repo, section, target)
    assert table_checksums(target)["t"] == table_checksums(source)["t"]
    assert mysql_target_db.query("SELECT mail FROM users WHERE uid = 7") == [("u7@x.invalid",)]


def test_errors_are_clonekit_errors_without_the_password(source):
    wrong = DbEndpoint(source.host, source.port, source.user, "not-the-password", source.database)
    with pytest.raises(SourceError) as denied:
        _capture_nothing(wrong)
    assert not isinstance(denied.value, TransientSourceError)
    assert "not-the-password" not in str(denied.value) and "not-the-password" not in repr(wrong)
    assert isinstance(denied.value.__cause__, pymysql.MySQLError)
    closed = DbEndpoint("127.0.0.1", 1, "u", "p", "d")
    with pytest.raises(TransientSourceError):
        _capture_nothing(closed)


def _capture_nothing(endpoint: DbEndpoint) -> None:
    class Never:
        def put(self, data: bytes):  # type: ignore[no-untyped-def]
            raise AssertionError("no data expected")

    capture_database(endpoint, CopyEverything(), Never())


def test_tables_without_mvcc_are_read_under_the_write_freeze(mysql_db, mysql_target_db, source, target, repo,
                                                             monkeypatch):
    mysql_db.execute("CREATE TABLE m (id int PRIMARY KEY, v text) ENGINE=MyISAM",
                     "INSERT INTO m SELECT seq, REPEAT('m', seq) FROM seq_1_to_300",
                     "CREATE TABLE a (id int PRIMARY KEY, v text) ENGINE=Aria",
                     "INSERT INTO a VALUES (1, 'aria')",
                     "CREATE TABLE i (id int PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO i VALUES (1)")
    seen = []
    read_part = capture_module._read_part

    def recording(endpoint, conn, part, writer, progress, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(part.info.table.name)
        read_part(endpoint, conn, part, writer, progress, **kwargs)

    monkeypatch.setattr(capture_module, "_read_part", recording)
    section = _capture(source, repo, workers=1)
    assert section["consistency"] == "flush-tables-with-read-lock"
    assert set(seen[:2]) == {"m", "a"} and seen[2] == "i"
    restore_database(repo, section, target)
    assert table_checksums(target) == table_checksums(source)
    assert "ENGINE=MyISAM" in mysql_target_db.query("SHOW CREATE TABLE m")[0][1]


def test_a_failing_table_stops_the_capture_with_its_own_error(mysql_db, source, repo):
    mysql_db.execute("CREATE TABLE a (id int PRIMARY KEY, v text)", "INSERT INTO a SELECT seq, 'x' FROM seq_1_to_100",
                     "CREATE TABLE b (id int PRIMARY KEY, v text)", "INSERT INTO b SELECT seq, 'y' FROM seq_1_to_100")

    with pytest.raises(PolicyError, match="rule x"), repo.writer() as writer:  # raised in a worker process
        capture_database(source, BrokenPlanner(), writer, workers=2)
