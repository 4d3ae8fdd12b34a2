"""Rows loaded as the parameters of prepared INSERTs (``clonekit.db.bind``): the compiled binder
against its Python definition, and on the real MariaDB the same stored values as LOAD DATA,
through every path of ``restore._bind`` (full statements, smaller powers of two where the size
limit comes first, the end of a load, a row too big for any statement)."""

from __future__ import annotations

import logging
import random

import pytest

from clonekit._compiled import speedups
from clonekit.db import bind, capture_database, restore_database, table_checksums
from clonekit.db import restore as restore_module
from clonekit.db.codec import escape
from clonekit.schema import CopyEverything

pytestmark = pytest.mark.skipif(speedups is None, reason="needs the compiled extension (built by make install)")

NASTY = [b"", b"\\", b"\\\\", b"\\N", b"N", b"a\\", b"\\x", b"tab\\tnew\\nline\\r\\0\\Z\\b", b"\\\\N", b"x" * 300,
         b"y" * 70_000, "é😀".encode(), b"\\" + b"z" * 251]


def _line(rng: random.Random, width: int) -> bytes:
    fields = []
    for _ in range(width):
        pick = rng.random()
        if pick < 0.15:
            fields.append(b"\\N")
        elif pick < 0.5:
            fields.append(rng.choice(NASTY))
        else:
            fields.append(escape(bytes(rng.randrange(256) for _ in range(rng.randrange(40)))))
    return b"\t".join(fields) + b"\n"


def test_the_compiled_binder_is_its_python_definition() -> None:
    assert speedups is not None
    rng = random.Random(7)
    for width in (1, 2, 5, 9):
        data = b"".join(_line(rng, width) for _ in range(60)) + b"partial\tline"
        for rows in (1, 2, 7, 64):
            for limit in (1, 10, 500, 80_000, 1 << 30):
                at = 0
                while True:
                    want = bind.bind_rows_python(data, at, width, rows, limit)
                    assert speedups.bind_rows(data, at, width, rows, limit) == want, (width, rows, limit, at)
                    if want[3] == 0:
                        break
                    at = want[2]
                # the partial line at the end is never taken
                assert at <= data.rindex(b"\n") + 1


def test_the_binder_values_and_bitmap() -> None:
    data = b"1\t\\N\tab\\tc\n\\N\t\\\\N\t" + b"x" * 300 + b"\n"
    values, nulls, end, count, full = bind.bind_rows_python(data, 0, 3, 8, 1 << 20)
    assert (end, count, full) == (len(data), 2, 0)
    assert nulls == bytes([0b0000_1010])  # params 1 (row 0, column 1) and 3 (row 1, column 0)
    assert values == b"\x011" + b"\x04ab\tc" + b"\x02\\N" + b"\xfc\x2c\x01" + b"x" * 300
    # the second row over the limit: one row, full; the first alone over it: none
    assert bind.bind_rows_python(data, 0, 3, 8, 20)[2:] == (data.index(b"\n") + 1, 1, 1)
    assert bind.bind_rows_python(data, 0, 3, 8, 3)[1:] == (b"", 0, 0, 1)
    for binder in (bind.bind_rows_python, speedups.bind_rows):
        with pytest.raises(ValueError, match="a row has 2 fields, not 3"):
            binder(b"1\t2\n", 0, 3, 8, 1 << 20)
        with pytest.raises(ValueError, match="a row has 4 fields, not 3"):
            binder(b"1\t2\t3\t4\n", 0, 3, 8, 1 << 20)


def test_statement_sizes_are_powers_of_two() -> None:
    assert bind.rows_per_statement(10, 100.0, 1 << 20) == 1024  # 1638 parameters' worth, capped, power of two
    assert bind.rows_per_statement(4, 5000.0, 1 << 20) == 128  # 209 rows of 5 kB
    assert bind.rows_per_statement(3, 50e6, 1 << 20) == 1
    assert bind.rows_per_statement(20_000, 1.0, 1 << 20) == 1  # more columns than parameters: one row anyway
    sql = bind.insert_sql("t`x", ["a", "b", "c"], 2, bit_columns=["b"], convert_columns=["c"])
    assert sql == ("INSERT INTO `t``x` (`a`, `b`, `c`) VALUES (?,CAST(? AS UNSIGNED),CONVERT(? USING utf8mb4)),"
                   "(?,CAST(? AS UNSIGNED),CONVERT(? USING utf8mb4))")


SCHEMA = """CREATE TABLE mixed (
  id int PRIMARY KEY, n bigint unsigned, d decimal(20,6), at datetime(3), b bit(9), flag bit(1),
  t text, l varchar(40) CHARACTER SET latin1, v varbinary(400), big longblob, j json, KEY (n)
) DEFAULT CHARSET=utf8mb4"""


def _seed(db) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute(SCHEMA)
        rows = []
        for i in range(1, 700):
            rows.append((i, rng.choice([None, 0, 2**64 - 1, rng.randrange(10**9)]),
                         rng.choice([None, "-12345678901234.123456", "0.000001"]),
                         rng.choice([None, "2024-02-29 23:59:59.999", "0000-00-00 00:00:00"]),
                         rng.randrange(512), rng.randrange(2),
                         rng.choice([None, "", "quote ' tab \t nl \n cr \r nul \0 bs \\ \\N 😀", "é" * rng.randrange(300)]),
                         rng.choice([None, "façade", "\\N"]),
                         bytes(rng.randrange(256) for _ in range(rng.randrange(400))),
                         # one row far over the statements' limit in the test below: LOAD DATA takes it
                         b"\x00\\\t\n" * 60_000 if i == 650 else rng.choice([None, b"", b"\\N"]),
                         rng.choice([None, '{"k": "v\\n", "n": [1, 2]}'])))
        cur.executemany("INSERT INTO mixed VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    conn.close()


def test_bound_rows_are_stored_as_load_data_stores_them(source, target, repo, mysql_db, mysql_target_db, monkeypatch,
                                                        caplog) -> None:
    _seed(mysql_db)
    with repo.writer() as writer:
        section = capture_database(source, CopyEverything(), writer)
    want = table_checksums(source)

    monkeypatch.setattr(restore_module, "LOAD_MODE", "data")
    restore_database(repo, section, target)
    assert table_checksums(target) == want
    mysql_target_db.execute("DROP TABLE mixed")

    monkeypatch.setattr(restore_module, "LOAD_MODE", "bind")
    bound: list[int] = []
    execute = bind.execute

    def counting(conn, statement, nulls, values):  # type: ignore[no-untyped-def]
        bound.append(statement.parameters // 11)
        return execute(conn, statement, nulls, values)

    monkeypatch.setattr(bind, "execute", counting)
    restore_database(repo, section, target)
    assert table_checksums(target) == want
    assert sum(bound) == 699 and bound[0] > 1 and all(n & (n - 1) == 0 for n in bound)
    mysql_target_db.execute("DROP TABLE mixed")

    # Statements of at most 3 kB: smaller powers of two where the limit comes first, and the row
    # of 240 kB with every row after it by LOAD DATA.
    bound.clear()
    monkeypatch.setattr(restore_module, "BIND_PACKET_MAX", 3000)
    with caplog.at_level(logging.INFO, logger="clonekit.db.restore"):
        stats = restore_database(repo, section, target, workers=1)
    assert table_checksums(target) == want and stats.rows == 699
    assert "a row too big for a bound statement" in caplog.text
    assert 1 < sum(bound) < 650 and len(set(bound)) > 2


def test_lines_cut_between_chunks_and_a_last_line_without_newline(source, target, repo, mysql_db) -> None:
    """A store written otherwise (chunks not ending at line ends, no final newline): the same rows."""
    _seed(mysql_db)
    with repo.writer() as writer:
        section = capture_database(source, CopyEverything(), writer)
    table = next(t for t in section["tables"] if t["name"] == "mixed")
    data = b"".join(repo.iter_chunks([c["id"] for c in table["chunks"]]))
    assert data.endswith(b"\n")
    rng = random.Random(5)
    cuts = sorted(rng.sample(range(1, len(data) - 1), 40))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data) - 1], strict=True)]  # the last newline left out
    conn = restore_module._open(target)
    try:
        with conn.cursor() as cur:
            cur.execute(table["create"])
        rows, codes = restore_module._bind(target, conn, table, iter(pieces))
    finally:
        conn.close()
    assert (rows, codes) == (699, [])
    assert table_checksums(target)["mixed"] == table_checksums(source)["mixed"]
