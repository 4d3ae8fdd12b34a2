"""The sanitizing path reads batches of rows per key range and decodes only what the transform reads.

The reference is the row-by-row path (one server row per Python row, every column decoded): the
batched path must store the very same chunks, so nightly snapshots keep deduplicating.
"""

from __future__ import annotations

import pytest

from clonekit.db import capture as capture_module
from clonekit.db import capture_database, restore_database
from clonekit.schema import TablePolicy

MIXED_TABLE = (
    "CREATE TABLE mixed (id int PRIMARY KEY, mail varchar(100), note text CHARACTER SET latin1, "
    "amount decimal(10,2), ratio float, seen datetime(3), raw blob, kind varchar(10)) CHARACTER SET utf8mb4"
)
MIXED_ROWS = (
    "INSERT INTO mixed SELECT seq, CONCAT('user', seq, '@example.org'), "
    "IF(seq % 7 = 0, NULL, CONCAT('caf', CHAR(233), ' note\\twith\\nbreaks\\\\ ', seq)), seq / 3, seq / 7, "
    "'2024-01-02 03:04:05.678' + INTERVAL seq SECOND, UNHEX(REPEAT(HEX(seq), 40)), "
    "IF(seq % 2, 'odd', 'even') FROM seq_1_to_3000"
)


def _pseudonymize(row):  # type: ignore[no-untyped-def]
    """Module-level (worker processes import it): replaces the mail of 'odd' rows."""
    if row[7] != "odd":
        return row
    return (row[0], f"u{row[0]}@x.invalid", *row[2:])


class MixedPlanner:
    def __init__(self, reads: frozenset[str] | None, where: str | None = None) -> None:
        self.reads, self.where = reads, where

    def plan(self, tables, sample=None):  # type: ignore[no-untyped-def]
        return {t.name: TablePolicy(transform=_pseudonymize, reads=self.reads, where=self.where, rule="test")
                for t in tables}


def _chunks(source, repo, planner) -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    with repo.writer() as writer:
        section = capture_database(source, planner, writer, workers=2)
    table = section["tables"][0]
    return [c["id"] for c in table["chunks"]], table["rows"]


def _row_by_row(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The reference: every transformed part read row by row, in the capture threads."""
    monkeypatch.setattr(capture_module, "TRANSFORM_PROCESSES", False)
    real_split = capture_module._split

    def whole_tables(*args):  # type: ignore[no-untyped-def]
        return [capture_module._Part(p.info, p.policy, p.index, None, p.estimate) for p in real_split(*args)[:1]]

    monkeypatch.setattr(capture_module, "_split", whole_tables)


@pytest.mark.parametrize("where", [None, "id % 3 <> 0"])
def test_batches_store_the_same_chunks_as_row_by_row(mysql_db, source, repo, monkeypatch, where):
    mysql_db.execute(MIXED_TABLE, MIXED_ROWS)
    batched = _chunks(source, repo, MixedPlanner(frozenset({"id", "mail", "kind"}), where))
    every_column = _chunks(source, repo, MixedPlanner(None, where))
    with monkeypatch.context() as patch:
        _row_by_row(patch)
        reference = _chunks(source, repo, MixedPlanner(None, where))
    assert batched == every_column == reference
    assert batched[1] == (2000 if where else 3000)


def test_undecoded_columns_keep_their_bytes_and_the_transform_applies(mysql_db, mysql_target_db, source, target, repo):
    mysql_db.execute(MIXED_TABLE, MIXED_ROWS)
    with repo.writer() as writer:
        section = capture_database(source, MixedPlanner(frozenset({"id", "mail", "kind"})), writer, workers=2)
    restore_database(repo, section, target)
    kept = "SELECT id, note, amount, ratio, seen, raw, kind FROM mixed ORDER BY id"
    assert mysql_target_db.query(kept) == mysql_db.query(kept)
    mails = dict(mysql_target_db.query("SELECT id, mail FROM mixed"))
    assert mails[1] == "u1@x.invalid" and mails[2] == "user2@example.org"
    assert sum(m.endswith("@x.invalid") for m in mails.values()) == 1500


def test_a_key_whose_rows_exceed_one_batch_is_read_on_its_own(mysql_db, mysql_target_db, source, target, repo,
                                                              monkeypatch):
    """GROUP_CONCAT's limit: ranges shrink to one key, and a key too big even alone is streamed, in order."""
    mysql_db.execute("CREATE TABLE big_rows (id int, seq int, kind varchar(10), mail varchar(100), body mediumtext, "
                     "PRIMARY KEY (id, seq))",
                     "INSERT INTO big_rows SELECT seq DIV 3, seq, IF(seq % 2, 'odd', 'even'), CONCAT('m', seq), "
                     "REPEAT(CHAR(65 + seq % 26), IF(seq % 50 = 0, 9000, 300)) FROM seq_1_to_900")
    monkeypatch.setattr(capture_module, "MAX_BATCH_BYTES", 8192)  # this run's group_concat_max_len
    monkeypatch.setattr(capture_module, "TYPED_BATCH_BYTES", 4096)

    def odd_mail(row):  # type: ignore[no-untyped-def]
        return row if row[2] != "odd" else (*row[:3], "changed", row[4])

    class Planner:
        def plan(self, tables, sample=None):  # type: ignore[no-untyped-def]
            return {t.name: TablePolicy(transform=odd_mail, reads=frozenset({"kind", "mail"})) for t in tables}

    monkeypatch.setattr(capture_module, "TRANSFORM_PROCESSES", False)  # a local function: no worker process
    small_batches = _chunks(source, repo, Planner())
    _row_by_row(monkeypatch)
    assert small_batches == _chunks(source, repo, Planner())
    with repo.writer() as writer:
        section = capture_database(source, Planner(), writer, workers=1)
    restore_database(repo, section, target)
    assert mysql_target_db.query("SELECT COUNT(*) FROM big_rows WHERE mail = 'changed'") == [(450,)]
    kept = "SELECT id, seq, kind, body FROM big_rows ORDER BY id, seq"
    assert mysql_target_db.query(kept) == mysql_db.query(kept)


def _ranges(source, batch_bytes):  # type: ignore[no-untyped-def]
    """A connection and the range reader over `steps` (ids 1..3000), one line per row."""
    from clonekit.db.connection import connect
    from clonekit.db.introspect import describe

    conn = connect(source)
    table = describe(conn, source.database)[0].table
    batches = capture_module._range_batches(conn, table, TablePolicy(), (1, 3000), "CONCAT(id, '\\n')",
                                            lambda condition: None, batch_bytes)
    return conn, batches


def test_the_next_range_is_rendered_while_the_caller_holds_a_batch(mysql_db, source):
    import select

    mysql_db.execute("CREATE TABLE steps (id int PRIMARY KEY)", "INSERT INTO steps SELECT seq FROM seq_1_to_3000")
    conn, batches = _ranges(source, 2048)
    first, count = next(batches)
    assert count == first.count(b"\n") > 0
    # The caller has not asked for more, yet the server's answer to the next range is arriving.
    readable, _, _ = select.select([conn._sock], [], [], 30)
    assert readable == [conn._sock]
    rest = b"".join(data for data, _ in batches)
    assert (first + rest).split() == [str(i).encode() for i in range(1, 3001)]
    assert conn.cursor().execute("SELECT 1") == 1  # nothing left over on the connection
    conn.close()


@pytest.mark.parametrize("stop", ["close", "error"])
def test_a_caller_that_stops_early_leaves_the_connection_usable(mysql_db, source, stop):
    mysql_db.execute("CREATE TABLE steps (id int PRIMARY KEY)", "INSERT INTO steps SELECT seq FROM seq_1_to_3000")
    conn, batches = _ranges(source, 2048)
    next(batches)
    if stop == "close":
        batches.close()
    else:
        with pytest.raises(RuntimeError):
            batches.throw(RuntimeError("the chunk store failed"))
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM steps")
        assert cur.fetchone() == (3000,)
    conn.close()
