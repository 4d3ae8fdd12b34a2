"""The MariaDB/MySQL adapter's public functions: describe, sample, capture, restore, checksums."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, cast

import pymysql
from pymysql.connections import Connection

from ..schema import Row, Sampler, Table
from .capture import capture_database
from .connection import connect, quote_name, source_error
from .endpoint import DbEndpoint
from .introspect import describe
from .restore import RestoreStats, restore_database
from .sample import sample_table


def describe_tables(endpoint: DbEndpoint) -> list[Table]:
    """Every base table with its columns and keys (views excluded), in name order."""
    conn = connect(endpoint)
    try:
        return [info.table for info in _guard(endpoint, "reading the schema", lambda: describe(conn, endpoint.database))]
    finally:
        conn.close()


def sample_rows(endpoint: DbEndpoint, table: Table, limit: int) -> list[Row]:
    """Up to ``limit`` typed rows of ``table.data_columns`` (for the personal-data scan)."""
    with open_sampler(endpoint) as sample:
        return sample(table, limit)


@contextlib.contextmanager
def open_sampler(endpoint: DbEndpoint) -> Iterator[Sampler]:
    """``sample(table, limit)`` over one read-only connection, for scan and strict mode."""
    conn = connect(endpoint)
    try:
        _guard(endpoint, "opening a read-only session", lambda: _read_only(conn))

        def sample(table: Table, limit: int) -> list[Row]:
            return cast(list[Row], _guard(endpoint, f"sampling table {table.name}",
                                          lambda: sample_table(conn, table, limit)))

        yield sample
    finally:
        with contextlib.suppress(pymysql.MySQLError, OSError):
            conn.close()


def _read_only(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION READ ONLY")


def table_checksums(endpoint: DbEndpoint) -> dict[str, str]:
    """``{table: "<rows>:<CHECKSUM TABLE>"}`` for every base table: equal content, equal strings.

    Uses the server's own CHECKSUM TABLE (over stored values, independent of our codec), so a
    lossy encoding cannot hide behind matching checksums.
    """
    conn = connect(endpoint)
    try:
        def read() -> dict[str, str]:
            result = {}
            with conn.cursor() as cur:
                cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")
                names = [r[0] for r in cur.fetchall()]
                for name in names:
                    cur.execute(f"SELECT COUNT(*) FROM {quote_name(name)}")
                    count = cur.fetchone()[0]
                    cur.execute(f"CHECKSUM TABLE {quote_name(name)} EXTENDED")
                    checksum = cur.fetchone()[1]
                    result[name] = f"{count}:{checksum}"
            return result
        return _guard(endpoint, "computing table checksums", read)
    finally:
        conn.close()


def _guard(endpoint: DbEndpoint, doing: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except pymysql.MySQLError as exc:
        raise source_error(exc, endpoint, doing) from exc


__all__ = ["DbEndpoint", "RestoreStats", "capture_database", "describe_tables", "open_sampler", "restore_database",
           "sample_rows", "sample_table", "table_checksums"]
