"""The bounded sample that scan and strict mode read: one query per table, long values cut."""

from __future__ import annotations

from pymysql.connections import Connection

from ..schema import Row, Table
from .connection import quote_name

SAMPLE_VALUE_BYTES = 4096
_CUT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json",
                        "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})


def sample_sql(table: Table, limit: int) -> str:
    """One bounded query: the first ``limit`` rows of ``table.data_columns``, text and binary
    values cut to their first SAMPLE_VALUE_BYTES (enough to recognise a value, cheap on blobs)."""
    fields = []
    for c in table.data_columns:
        name = quote_name(c.name)
        fields.append(f"LEFT({name}, {SAMPLE_VALUE_BYTES})" if c.data_type in _CUT_TYPES else name)
    return f"SELECT {', '.join(fields) or '1'} FROM {quote_name(table.name)} LIMIT {max(0, int(limit))}"


def sample_table(conn: Connection, table: Table, limit: int) -> list[Row]:
    with conn.cursor() as cur:
        cur.execute(sample_sql(table, limit))
        rows = [tuple(r) for r in cur.fetchall()]
    return rows if table.data_columns else [() for _ in rows]
