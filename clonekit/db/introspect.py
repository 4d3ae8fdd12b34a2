"""Reading the schema of a MariaDB/MySQL database: tables as ``schema.Table``, DDL split for fast
restore (secondary indexes and foreign keys deferred), views, triggers, routines and events with
their DEFINER removed so a restore needs no SUPER privilege."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pymysql.connections import Connection
from pymysql.cursors import Cursor

from ..schema import Column, Table
from .codec import BINARY_TYPES
from .connection import quote_name

MVCC_ENGINES = frozenset({"innodb", "xtradb", "rocksdb", "tokudb"})
UTF8_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8", None})
DEFINER = re.compile(r"\s*DEFINER\s*=\s*(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|[^\s@]+)(?:\s*@\s*(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|[^\s]+))?", re.I)
DEFERRED_LINE = re.compile(r"^\s*(?:(?:UNIQUE|FULLTEXT|SPATIAL)\s+)?(?:KEY|INDEX)\s|^\s*CONSTRAINT\s.*\bFOREIGN\s+KEY\b|^\s*FOREIGN\s+KEY\b", re.I)
FOREIGN_KEY = re.compile(r"\bFOREIGN\s+KEY\b", re.I)
INDEX_COLUMNS = re.compile(r"\((`(?:[^`]|``)*`)")


@dataclass(frozen=True)
class TableInfo:
    table: Table
    charsets: dict[str, str | None] = field(default_factory=dict)  # column -> character set (None: not text)
    auto_increment_column: str | None = None
    engine: str = "InnoDB"

    @property
    def mvcc(self) -> bool:
        """Read consistently inside a snapshot transaction (MyISAM and Aria tables are not)."""
        return self.engine.lower() in MVCC_ENGINES


def strip_definer(sql: str) -> str:
    """``CREATE DEFINER=`u`@`h` VIEW...`` → ``CREATE VIEW...``: the restoring user becomes the definer."""
    return DEFINER.sub("", sql, count=1)


def describe(conn: Connection, database: str) -> list[TableInfo]:
    """Every base table of ``database`` (views and sequences excluded), in name order."""
    with conn.cursor(Cursor) as cur:
        cur.execute(
            "SELECT TABLE_NAME, IFNULL(TABLE_ROWS, 0), IFNULL(DATA_LENGTH, 0), IFNULL(ENGINE, '') "
            "FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            (database,),
        )
        tables = [(_text(r[0]), int(r[1]), int(r[2]), _text(r[3])) for r in cur.fetchall()]
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH, "
            "EXTRA, IFNULL(GENERATION_EXPRESSION, ''), CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (database,),
        )
        columns: dict[str, list[tuple[Any, ...]]] = {}
        for row in cur.fetchall():
            columns.setdefault(_text(row[0]), []).append(row)
        cur.execute(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (database,),
        )
        indexes: dict[str, dict[str, list[str]]] = {}
        for table_name, index_name, non_unique, column_name in cur.fetchall():
            if int(non_unique) == 0:
                indexes.setdefault(_text(table_name), {}).setdefault(_text(index_name), []).append(_text(column_name))
    result = []
    for name, rows_estimate, data_bytes, engine in tables:
        unique = indexes.get(name, {})
        primary = tuple(unique.get("PRIMARY", ()))
        unique_keys = tuple(tuple(cols) for index, cols in sorted(unique.items()) if index != "PRIMARY")
        single = {cols[0].lower() for cols in unique.values() if len(cols) == 1}
        cols = []
        charsets: dict[str, str | None] = {}
        auto_increment = None
        for _t, col, data_type, column_type, nullable, max_chars, extra, gen_expr, charset in columns.get(name, []):
            col, data_type, extra = _text(col), _text(data_type).lower(), _text(extra).lower()
            generated = bool(_text(gen_expr)) or "generated" in extra or "persistent" in extra or "virtual" in extra
            if "auto_increment" in extra:
                auto_increment = col
            charsets[col] = _text(charset) if charset else None
            cols.append(Column(
                name=col,
                data_type=data_type,
                column_type=_text(column_type),
                nullable=_text(nullable) == "YES",
                max_chars=int(max_chars) if max_chars is not None else None,
                generated=generated,
                binary=data_type in BINARY_TYPES or (charsets[col] == "binary"),
                unique=col.lower() in single,
            ))
        table = Table(name=name, columns=tuple(cols), primary_key=primary, unique_keys=unique_keys,
                      rows_estimate=rows_estimate, data_bytes=data_bytes)
        result.append(TableInfo(table, charsets, auto_increment, engine))
    return result


def split_create_table(create: str, auto_increment_column: str | None) -> tuple[str, list[str]]:
    """SHOW CREATE TABLE → (CREATE without secondary indexes and foreign keys, ALTER clauses for later).

    The index that makes an AUTO_INCREMENT column a key stays when the primary key does not start with it.
    """
    head, sep, rest = create.partition("(\n")
    body, sep2, options = rest.partition("\n)")  # the first: partition clauses follow
    if not sep or not sep2:
        return create, []
    kept: list[str] = []
    deferred: list[str] = []
    auto_key = quote_name(auto_increment_column) if auto_increment_column else None
    auto_has_key = False
    for raw in body.split("\n"):
        line = raw.strip().rstrip(",")
        if not line:
            continue
        upper = line.upper()
        if upper.startswith("PRIMARY KEY") and auto_key and _first_index_column(line) == auto_key:
            auto_has_key = True
        if DEFERRED_LINE.match(line):
            if auto_key and not auto_has_key and not FOREIGN_KEY.search(line) and _first_index_column(line) == auto_key \
                    and not upper.startswith(("FULLTEXT", "SPATIAL")):
                kept.append(line)
                auto_has_key = True
                continue
            deferred.append("ADD " + line)
            continue
        kept.append(line)
    table_sql = head + "(\n  " + ",\n  ".join(kept) + "\n)" + options
    return table_sql, deferred


def _first_index_column(line: str) -> str | None:
    match = INDEX_COLUMNS.search(line)
    return match.group(1) if match else None


def show_create_table(conn: Connection, name: str) -> str:
    with conn.cursor(Cursor) as cur:
        cur.execute(f"SHOW CREATE TABLE {quote_name(name)}")
        return _text(cur.fetchone()[1])


def schema_objects(conn: Connection, database: str) -> dict[str, list[dict[str, Any]]]:
    """Views, triggers, routines and events, each with the SQL that recreates it (no DEFINER)."""
    objects: dict[str, list[dict[str, Any]]] = {"views": [], "triggers": [], "routines": [], "events": [], "skipped": []}
    with conn.cursor(Cursor) as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
                    (database,))
        for (name,) in cur.fetchall():
            name = _text(name)
            cur.execute(f"SHOW CREATE VIEW {quote_name(name)}")
            row = cur.fetchone()
            objects["views"].append({"name": name, "sql": strip_definer(_text(row[1])),
                                     "character_set_client": _text(row[2]), "collation_connection": _text(row[3])})
        cur.execute(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
            "ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (database,),
        )
        for name, table in cur.fetchall():
            name = _text(name)
            cur.execute(f"SHOW CREATE TRIGGER {quote_name(name)}")
            row = cur.fetchone()
            objects["triggers"].append({"name": name, "table": _text(table), "sql_mode": _text(row[1]),
                                        "sql": strip_definer(_text(row[2])), "character_set_client": _text(row[3]),
                                        "collation_connection": _text(row[4])})
        cur.execute(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
            "ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (database,),
        )
        for kind, name in cur.fetchall():
            kind, name = _text(kind).upper(), _text(name)
            if kind not in ("PROCEDURE", "FUNCTION"):
                objects["skipped"].append({"kind": kind.lower(), "name": name, "why": "unsupported routine type"})
                continue
            cur.execute(f"SHOW CREATE {kind} {quote_name(name)}")
            row = cur.fetchone()
            if row is None or row[2] is None:
                objects["skipped"].append({"kind": kind.lower(), "name": name,
                                           "why": "no privilege to read its body (grant SHOW ROUTINE or SELECT on mysql.proc)"})
                continue
            objects["routines"].append({"kind": kind.lower(), "name": name, "sql_mode": _text(row[1]),
                                        "sql": strip_definer(_text(row[2])), "character_set_client": _text(row[3]),
                                        "collation_connection": _text(row[4])})
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_TYPE = 'SEQUENCE' ORDER BY TABLE_NAME", (database,))
        for (name,) in cur.fetchall():
            objects["skipped"].append({"kind": "sequence", "name": _text(name), "why": "sequences are not captured yet"})
        cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s ORDER BY EVENT_NAME",
                    (database,))
        for (name,) in cur.fetchall():
            name = _text(name)
            cur.execute(f"SHOW CREATE EVENT {quote_name(name)}")
            row = cur.fetchone()
            objects["events"].append({"name": name, "sql_mode": _text(row[1]), "time_zone": _text(row[2]),
                                      "sql": strip_definer(_text(row[3])), "character_set_client": _text(row[4]),
                                      "collation_connection": _text(row[5])})
    return objects


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)
