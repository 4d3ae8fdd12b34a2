"""Capture and restore against the real MariaDB: every column type, awkward data and names."""

from __future__ import annotations

import datetime as dt
import decimal
import os
from collections.abc import Mapping, Sequence

import pytest

from clonekit.db import capture as capture_module
from clonekit.db import capture_database, describe_tables, restore_database, sample_rows, table_checksums
from clonekit.errors import IntegrityError, PolicyError, PreviewError
from clonekit.schema import CopyEverything, Sampler, Table, TablePolicy

AWKWARD = "quote ' double \" backslash \\ tab \t newline \n cr \r nul \0 emoji 😀 literal \\N end"
BIG_BLOB = os.urandom(3 * 1024 * 1024 + 17)

SCHEMA = [
    """CREATE TABLE `select` (
      `id` int NOT NULL AUTO_INCREMENT,
      `order` varchar(300) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
      `naïve col` tinyint, `un``signed` tinyint unsigned, si smallint, mi mediumint, bi bigint unsigned,
      de decimal(65,30), fl float, dbl double, bt bit(17), b1 bit(1), yr year,
      d date, dt datetime(6), ts timestamp(3) NULL DEFAULT NULL, tm time(4),
      c char(10), tt tinytext, tx text, mt mediumtext, lt longtext,
      bn binary(8), vb varbinary(300), tb tinyblob, bl blob, mb mediumblob, lb longblob,
      en enum('a','b','c d'), st set('x','y','z'), js json,
      g geometry, pt point, ls linestring, pg polygon, mpt multipoint, gc geometrycollection,
      l1 varchar(50) CHARACTER SET latin1, asc1 varchar(20) CHARACTER SET ascii,
      u uuid, i6 inet6,
      gen_v bigint AS (bi * 2) VIRTUAL, gen_s int AS (si + 1) STORED,
      PRIMARY KEY (id), UNIQUE KEY `by big` (bi), KEY `order` (`order`(20)), FULLTEXT KEY ft (tx)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    "CREATE TABLE `empty table` (id int PRIMARY KEY, v varchar(10))",
    "CREATE TABLE `odd-name.with dots` (k varchar(40) NOT NULL, n int NOT NULL, v text, PRIMARY KEY (k, n))",
    "CREATE TABLE no_pk (a int, b varchar(20), KEY (a))",
    "CREATE TABLE places (id int PRIMARY KEY, shape geometry NOT NULL, SPATIAL KEY (shape))",
    "CREATE TABLE parent (id int PRIMARY KEY, name varchar(20))",
    """CREATE TABLE child (id int PRIMARY KEY AUTO_INCREMENT, parent_id int, note varchar(20),
       CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE)""",
    "CREATE TABLE audit (id int PRIMARY KEY AUTO_INCREMENT, what varchar(40))",
    """CREATE TABLE docs (id int PRIMARY KEY, title varchar(100), body text, FULLTEXT KEY (title), FULLTEXT KEY (body))
       PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)""",
    "CREATE VIEW `v select` AS SELECT id, `order`, c FROM `select`",
    "CREATE VIEW `v of v` AS SELECT COUNT(*) AS n FROM `v select`",
    """CREATE TRIGGER parent_audit AFTER INSERT ON parent FOR EACH ROW
       INSERT INTO audit (what) VALUES (CONCAT('parent ', NEW.id))""",
    "CREATE FUNCTION twice(x int) RETURNS int DETERMINISTIC RETURN x * 2",
    "CREATE PROCEDURE count_parents(OUT n int) BEGIN SELECT COUNT(*) INTO n FROM parent; END",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM audit WHERE id < 0",
]

ROW_SQL = """INSERT INTO `select` (`order`, `naïve col`, `un``signed`, si, mi, bi, de, fl, dbl, bt, b1, yr, d, dt, ts,
    tm, c, tt, tx, mt, lt, bn, vb, tb, bl, mb, lb, en, st, js, g, pt, ls, pg, mpt, gc, l1, asc1, u, i6) VALUES
    (%s, -128, 255, -32768, -8388608, 18446744073709551615,
     '-12345678901234567890123456789012345.123456789012345678901234567890', 3.14159274, 1.7976931348623157e308,
     b'10101010101010101', b'1', 2155, '0000-00-00', '0000-00-00 00:00:00', '2038-01-19 03:14:07.999',
     '-838:59:59.9999', 'a\\tb', %s, %s, %s, %s, x'00010203', %s, x'00', %s, %s, %s, 'c d', 'x,z',
     '{"k": [1, "a\\\\tb"], "é": null}',
     ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 0))', 4326), POINT(1.5, -2.25),
     ST_GeomFromText('LINESTRING(0 0,1 1,2 1)'), ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'),
     ST_GeomFromText('MULTIPOINT(0 0,1 1)'), ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1))'),
     'café ß', 'plain', '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1')"""


def _build(db) -> None:  # type: ignore[no-untyped-def]
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            for statement in SCHEMA:
                cur.execute(statement)
            cur.execute(ROW_SQL, (AWKWARD, AWKWARD, AWKWARD, AWKWARD, AWKWARD, AWKWARD.encode(), AWKWARD.encode(),
                                  b"\0\\\n\t" * 1000, BIG_BLOB))
            cur.execute("INSERT INTO `select` (`order`, bi) VALUES (NULL, 1), ('', 2), ('\\\\N', 3), ('N', 4)")
            cur.execute("INSERT INTO `select` (`order`, bi, lt) VALUES ('😀😀', 5, REPEAT('long ', 100000))")
            cur.execute("INSERT INTO `odd-name.with dots` VALUES ('k\\ttab', 1, 'x'), ('k', 2, NULL), ('é', 1, '')")
            cur.execute("INSERT INTO no_pk VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL), (2, 'a\\nb')")
            cur.execute("INSERT INTO places VALUES (1, POINT(1, 1)), (2, ST_GeomFromText('LINESTRING(0 0,5 5)'))")
            cur.execute("INSERT INTO parent VALUES (1, 'one'), (2, 'two'), (0, 'zero')")
            cur.execute("INSERT INTO docs VALUES (1, 'a', 'b'), (20, 'c', NULL)")
            cur.execute("INSERT INTO child (parent_id, note) VALUES (1, 'a'), (2, 'b'), (NULL, 'orphan')")
    finally:
        conn.close()


def _capture(source, repo, planner=None, **kwargs):  # type: ignore[no-untyped-def]
    with repo.writer() as writer:
        section = capture_database(source, planner or CopyEverything(), writer, **kwargs)
    return section, writer.stats


def test_round_trip_is_exact_and_the_source_is_untouched(mysql_db, mysql_target_db, source, target, repo):
    _build(mysql_db)
    before = table_checksums(source)
    section, stats = _capture(source, repo, workers=2)
    assert table_checksums(source) == before
    assert section["consistency"] == "flush-tables-with-read-lock"
    assert stats.new_chunks >= 1

    result = restore_database(repo, section, target, workers=2)
    assert table_checksums(target) == before
    assert result.rows == section["rows"] == sum(int(v.split(":")[0]) for v in before.values())
    assert result.objects == 2 + 1 + 2 + 1  # views, trigger, routines, event

    query = "SELECT `order`, tx, lb, HEX(bt), de, js, ST_AsText(g), u, i6, gen_v, gen_s FROM `select` ORDER BY id"
    assert mysql_target_db.query(query) == mysql_db.query(query)
    assert mysql_target_db.query("SELECT lb FROM `select` WHERE id = 1")[0][0] == BIG_BLOB
    assert mysql_target_db.query("SELECT n FROM `v of v`") == [(6,)]
    assert mysql_target_db.query("SELECT twice(21)") == [(42,)]
    # Secondary indexes, foreign keys and triggers are back after the load.
    create = mysql_target_db.query("SHOW CREATE TABLE `select`")[0][1]
    assert "UNIQUE KEY `by big`" in create and "FULLTEXT KEY `ft`" in create
    assert "CONSTRAINT `fk_parent` FOREIGN KEY" in mysql_target_db.query("SHOW CREATE TABLE child")[0][1]
    assert "PARTITION BY RANGE" in mysql_target_db.query("SHOW CREATE TABLE docs")[0][1]
    mysql_target_db.execute("INSERT INTO parent VALUES (3, 'three')")
    assert mysql_target_db.query("SELECT what FROM audit ORDER BY id DESC LIMIT 1") == [("parent 3",)]
    # No DEFINER of the source survives in a way that would need SUPER: the restoring user owns them.
    definers = mysql_target_db.query(
        "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()")
    assert {d for (d,) in definers} == {f"{target.user}@%"}


def test_unchanged_data_stores_nothing_new_and_a_change_few_chunks(mysql_db, source, repo):
    mysql_db.execute(
        "CREATE TABLE big (id int PRIMARY KEY, body text)",
        "INSERT INTO big SELECT seq, CONCAT(seq, ':', REPEAT(MD5(seq), 30)) FROM seq_1_to_12000",
        "CREATE TABLE strkey (k varchar(40) PRIMARY KEY, body text)",
        "INSERT INTO strkey SELECT MD5(seq), REPEAT(SHA1(seq), 20) FROM seq_1_to_8000",
    )
    first, stats1 = _capture(source, repo)
    assert sum(len(t["chunks"]) for t in first["tables"]) >= 6
    second, stats2 = _capture(source, repo)
    assert stats2.new_chunks == 0
    assert second["tables"] == first["tables"]
    mysql_db.execute("UPDATE big SET body = 'changed' WHERE id = 6000", "DELETE FROM strkey WHERE k = MD5(4000)",
                     "INSERT INTO big VALUES (100000, 'appended')")
    _third, stats3 = _capture(source, repo)
    assert 1 <= stats3.new_chunks <= 4


class _Planner:
    def __init__(self, policies: Mapping[str, TablePolicy]) -> None:
        self.policies = policies
        self.seen: list[str] = []

    def plan(self, tables: Sequence[Table], sample: Sampler | None = None) -> Mapping[str, TablePolicy]:
        self.seen = [t.name for t in tables]
        return {t.name: self.policies.get(t.name, TablePolicy(rule="copy")) for t in tables}


def test_policies_transform_where_and_none(mysql_db, mysql_target_db, source, target, repo):
    mysql_db.execute(
        "CREATE TABLE users (uid int PRIMARY KEY, mail varchar(100), name varchar(50) CHARACTER SET latin1, "
        "pass varbinary(20), born date, gen varchar(100) AS (UPPER(mail)) VIRTUAL)",
        "INSERT INTO users (uid, mail, name, pass, born) VALUES (1, 'a@x.org', 'José', x'00ff', '2000-01-01'), "
        "(2, 'b@y.org', 'Zoë', NULL, NULL)",
        "CREATE TABLE log (id int PRIMARY KEY, msg varchar(20))",
        "INSERT INTO log SELECT seq, CONCAT('m', seq) FROM seq_1_to_100",
        "CREATE TABLE cache (cid varchar(20) PRIMARY KEY, data blob)",
        "INSERT INTO cache VALUES ('a', 'secret'), ('b', 'secret')",
    )
    def pseudonymize(row):  # type: ignore[no-untyped-def]
        # Typed values of the data columns (the generated one excluded), as pymysql returns them.
        uid, mail, name, password, born = row
        expected = {1: ("a@x.org", "José", b"\x00\xff", dt.date(2000, 1, 1)), 2: ("b@y.org", "Zoë", None, None)}
        if (mail, name, password, born) != expected[uid]:
            raise PolicyError(f"unexpected row {uid}")
        return (uid, f"user{uid}@example.invalid", name.upper(), b"", born)

    planner = _Planner({
        "users": TablePolicy(transform=pseudonymize, rule="users: mail, pass"),
        "log": TablePolicy(where="id > 90", rule="log: last 10"),
        "cache": TablePolicy(rows="none", rule="cache: schema only"),
    })
    section, _ = _capture(source, repo, planner)
    assert planner.seen == ["cache", "log", "users"]
    tables = {t["name"]: t for t in section["tables"]}
    assert tables["cache"]["chunks"] == [] and tables["cache"]["rows"] == 0
    assert tables["log"]["rows"] == 10
    restore_database(repo, section, target)
    assert mysql_target_db.query("SELECT uid, mail, name, pass, gen FROM users ORDER BY uid") == [
        (1, "user1@example.invalid", "JOSÉ", b"", "USER1@EXAMPLE.INVALID"),
        (2, "user2@example.invalid", "ZOË", b"", "USER2@EXAMPLE.INVALID"),
    ]
    assert mysql_target_db.query("SELECT MIN(id), COUNT(*) FROM log") == [(91, 10)]
    assert mysql_target_db.query("SELECT COUNT(*) FROM cache") == [(0,)]
    assert b"secret" not in b"".join(repo.iter_chunks([c["id"] for t in section["tables"] for c in t["chunks"]]))


def test_describe_and_sample(mysql_db, source):
    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY, mail varchar(80) UNIQUE, data blob, "
                     "g int AS (id + 1) STORED)", "INSERT INTO t (id, mail, data) VALUES (1, 'a@b.c', x'01'), (2, NULL, NULL)")
    [table] = describe_tables(source)
    assert table.name == "t" and table.primary_key == ("id",)
    assert [c.name for c in table.data_columns] == ["id", "mail", "data"]
    mail = table.column("mail")
    assert mail is not None and mail.unique and mail.max_chars == 80 and not mail.binary
    assert table.column("data").binary and table.column("g").generated  # type: ignore[union-attr]
    assert sample_rows(source, table, 1) == [(1, "a@b.c", b"\x01")]


def test_restore_refuses_a_non_empty_target(mysql_db, mysql_target_db, source, target, repo):
    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY)")
    mysql_target_db.execute("CREATE TABLE already (id int)")
    section, _ = _capture(source, repo)
    with pytest.raises(PreviewError, match="not empty"):
        restore_database(repo, section, target)


def _fresh(value):  # type: ignore[no-untyped-def]
    """An equal value in a new object: forces the codec to re-encode it instead of reusing its bytes."""
    if isinstance(value, str):
        return (value + "!")[:-1]
    if isinstance(value, bytes):
        return bytes(bytearray(value))
    if isinstance(value, bool | int):
        return int(str(value)) if abs(value) > 256 else value
    if isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(value))
    if isinstance(value, float):
        return float(repr(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.replace()
    if isinstance(value, dt.timedelta):
        return dt.timedelta(seconds=value.total_seconds())
    return value


def _rebuilt(row: tuple) -> tuple:
    return tuple(_fresh(v) for v in row)


@pytest.mark.parametrize("processes", [True, False], ids=["worker-processes", "in-thread"])
def test_the_sanitizing_path_round_trips_every_type_exactly(mysql_db, mysql_target_db, source, target, repo,
                                                           monkeypatch, processes):
    monkeypatch.setattr(capture_module, "TRANSFORM_PROCESSES", processes)
    handed_over: list[str] = []
    real = capture_module._TransformProcesses.read_typed

    def read_typed(self, conn, part, chunker, emit):  # type: ignore[no-untyped-def]
        handed_over.append(part.info.table.name)
        return real(self, conn, part, chunker, emit)

    monkeypatch.setattr(capture_module._TransformProcesses, "read_typed", read_typed)
    _build(mysql_db)
    names = ("select", "odd-name.with dots", "no_pk", "places", "parent", "docs")
    planner = _Planner({name: TablePolicy(transform=_rebuilt, rule="rebuild") for name in names})
    section, _ = _capture(source, repo, planner)
    restore_database(repo, section, target)
    assert table_checksums(target) == table_checksums(source)
    assert sorted(set(handed_over)) == (sorted(names) if processes else [])


def test_a_corrupt_chunk_fails_the_restore_cleanly(mysql_db, mysql_target_db, source, target, repo, tmp_path):
    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)",
                     "INSERT INTO t SELECT seq, REPEAT(MD5(seq), 50) FROM seq_1_to_5000")
    section, _ = _capture(source, repo)
    chunk_id = section["tables"][0]["chunks"][-1]["id"]
    [stored] = list((tmp_path / "store").rglob(chunk_id))
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        restore_database(repo, section, target)


def test_a_table_loads_in_parallel_groups(mysql_db, mysql_target_db, source, target, repo, monkeypatch):
    from clonekit.db import restore as restore_module

    mysql_db.execute("CREATE TABLE t (id int PRIMARY KEY, v text, KEY (v(10)))",
                     "INSERT INTO t SELECT seq, REPEAT(SHA1(seq), 30) FROM seq_1_to_8000",
                     "CREATE TABLE nokey (v varchar(50))", "INSERT INTO nokey SELECT MD5(seq) FROM seq_1_to_3000")
    section, _ = _capture(source, repo)
    assert len({t["name"]: t for t in section["tables"]}["t"]["chunks"]) >= 3
    monkeypatch.setattr(restore_module, "LOAD_GROUP_BYTES", 1)  # one LOAD DATA per chunk
    result = restore_database(repo, section, target, workers=3)
    assert result.rows == 11000
    assert table_checksums(target) == table_checksums(source)


def test_each_tables_indexes_are_built_once_its_rows_are_in(mysql_db, mysql_target_db, source, target, repo,
                                                            monkeypatch):
    """One loading thread: the biggest table's indexes come before the next table's rows (not all
    indexes after the last row), an empty table's too, and the result is the source's schema."""
    from clonekit.db import restore as restore_module

    mysql_db.execute("CREATE TABLE big (id int PRIMARY KEY, v text, KEY (v(10)))",
                     "INSERT INTO big SELECT seq, REPEAT(SHA1(seq), 30) FROM seq_1_to_8000",
                     "CREATE TABLE small (id int PRIMARY KEY, w varchar(50), UNIQUE KEY (w))",
                     "INSERT INTO small SELECT seq, MD5(seq) FROM seq_1_to_300",
                     "CREATE TABLE nothing (id int PRIMARY KEY, x int, KEY (x))")
    section, _ = _capture(source, repo)
    monkeypatch.setattr(restore_module, "LOAD_GROUP_BYTES", 1)  # several loads of `big`: the last one indexes
    events: list[str] = []
    real_load, real_run = restore_module._load_one, restore_module._run

    def load_one(repo, target, conn, load, *args):  # type: ignore[no-untyped-def]
        events.append(f"load {load.table['name']}")
        return real_load(repo, target, conn, load, *args)

    def run(target, conn, doing, sql, args=None):  # type: ignore[no-untyped-def]
        if doing.startswith("adding indexes"):
            events.append(doing)
        return real_run(target, conn, doing, sql, args)

    monkeypatch.setattr(restore_module, "_load_one", load_one)
    monkeypatch.setattr(restore_module, "_run", run)
    restore_database(repo, section, target, workers=1)
    loads_of_big = events.count("load big")
    assert loads_of_big >= 2
    assert events == ["load big"] * loads_of_big + ["adding indexes to big", "load small", "adding indexes to small",
                                                   "adding indexes to nothing"]
    for table in ("big", "small", "nothing"):
        assert (mysql_target_db.query(f"SHOW CREATE TABLE {table}")[0][1]
                == mysql_db.query(f"SHOW CREATE TABLE {table}")[0][1])
    assert table_checksums(target) == table_checksums(source)
