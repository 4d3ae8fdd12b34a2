"""Rows loaded as the parameters of a prepared multi-row INSERT (the binary protocol's
COM_STMT_PREPARE / COM_STMT_EXECUTE) instead of ``LOAD DATA`` text.

``LOAD DATA`` makes the server read every byte of the text one at a time (MariaDB's
``READ_INFO::read_field`` appends each byte to a string); a bound parameter arrives with its
length and is copied whole. Measured on the top-scale reference tables (a fresh
clonekit/mariadb:10.11 each time, the same rows and checksums): ``node__body`` (410 MiB of long
texts) 20.6 s of server CPU by ``LOAD DATA``, 3.8 s bound; ``watchdog`` (1 M rows) 22.5 s and
11.7 s; ``comment_field_data`` 9.4 s and 7.0 s (docs/benchmarks.md, 2026-12-01). A whole restore
took 5-21% less server CPU, and the pipelined clone of the reference site 3-8 s less in 7 of 8
alternated pairs. Each statement is a round trip where LOAD DATA streams: ``restore`` binds when
the server runs on this machine (``restore.binds_rows``).

The values keep ``LOAD DATA ... CHARACTER SET binary``'s meaning: each is sent as a BLOB
parameter, which MariaDB takes as binary bytes whatever the connection's character set (tested
on MariaDB 10.11 only), and stored by the same conversion as a field of the file (``BIT`` columns through
``CAST(? AS UNSIGNED)``, the columns to convert through ``CONVERT(? USING utf8mb4)``, as the
``SET`` clause of ``codec.load_data_sql`` does). A statement binds a power of two rows, so a
connection prepares few statements per table whatever the number of rows.

Uses pymysql's connection internals (``_execute_command``, ``_read_packet``,
``_read_query_result``), as ``capture`` does: pymysql has no server-side prepared statements.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from pymysql.connections import Connection
from pymysql.constants import COMMAND

from .codec import quote_name, unescape

BLOB_TYPE = 252  # MYSQL_TYPE_BLOB: a parameter of binary bytes
MAX_PARAMETERS = 16384  # per statement (the protocol allows 65535; the prepare's answer has a packet per parameter)
CLIENT_DEPRECATE_EOF = 1 << 24


def rows_per_statement(width: int, row_bytes: float, batch_bytes: int) -> int:
    """The power of two rows a statement binds: about ``batch_bytes`` of rows of ``row_bytes``,
    at most MAX_PARAMETERS parameters of ``width`` columns, at least one row."""
    rows = max(1, min(MAX_PARAMETERS // width, int(batch_bytes // max(row_bytes, 1.0))))
    return 1 << (rows.bit_length() - 1)


def insert_sql(table_name: str, columns: Sequence[str], rows: int, bit_columns: Sequence[str] = (),
               convert_columns: Sequence[str] = ()) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...), ...`` for ``rows`` rows."""
    marks = ["CAST(? AS UNSIGNED)" if c in bit_columns else "CONVERT(? USING utf8mb4)" if c in convert_columns
             else "?" for c in columns]
    one = "(" + ",".join(marks) + ")"
    return (f"INSERT INTO {quote_name(table_name)} ({', '.join(quote_name(c) for c in columns)}) VALUES "
            + ",".join([one] * rows))


def _lenenc(n: int) -> bytes:
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def bind_rows_python(data: bytes, start: int, width: int, rows: int, limit: int) -> tuple[bytes, bytes, int, int, int]:
    """The whole tsv-1 lines of ``data[start:]``, at most ``rows`` of them, as the parameters of a
    prepared INSERT of ``width`` columns: (values, nulls, end, count, full). ``values``: each
    non-NULL field unescaped behind its length-encoded length; ``nulls``: the NULL bitmap (bit
    ``row * width + column`` for a field ``\\N``); ``end``: the offset after the last line taken;
    ``full``: 1 when the next line would have taken ``values`` past ``limit`` bytes (``count`` is 0
    when that line is the first). A line with another number of fields raises ValueError.
    (``_speedups.bind_rows`` is the same, compiled.)"""
    values = bytearray()
    nulls = bytearray((rows * width + 7) // 8)
    at, count, full = start, 0, 0
    while count < rows:
        eol = data.find(b"\n", at)
        if eol < 0:
            break
        fields = data[at:eol].split(b"\t")
        if len(fields) != width:
            raise ValueError(f"a row has {len(fields)} fields, not {width}")
        row = bytearray()
        for i, field in enumerate(fields):
            if field == b"\\N":
                param = count * width + i
                nulls[param >> 3] |= 1 << (param & 7)
            else:
                value = unescape(field)
                row += _lenenc(len(value)) + value
        if len(values) + len(row) > limit:
            for i in range(width):
                param = count * width + i
                nulls[param >> 3] &= ~(1 << (param & 7)) & 0xFF
            full = 1
            break
        values += row
        at = eol + 1
        count += 1
    return bytes(values), bytes(nulls[:(count * width + 7) // 8]), at, count, full


@dataclass(frozen=True)
class Statement:
    """A prepared statement on one connection."""

    id: int
    parameters: int
    types: bytes  # every parameter's type, as COM_STMT_EXECUTE sends them


def prepare(conn: Connection, sql: str) -> Statement:
    """COM_STMT_PREPARE; pymysql raises the server's error."""
    conn._execute_command(COMMAND.COM_STMT_PREPARE, sql.encode())
    first = conn._read_packet().get_all_data()
    statement_id, columns, parameters = struct.unpack_from("<IHH", first, 1)
    eof = not conn.client_flag & CLIENT_DEPRECATE_EOF
    for count in (parameters, columns):  # their definitions, which this caller knows
        for _ in range(count + (1 if count and eof else 0)):
            conn._read_packet()
    return Statement(statement_id, parameters, bytes([BLOB_TYPE, 0]) * parameters)


def execute(conn: Connection, statement: Statement, nulls: bytes, values: bytes) -> tuple[int, int]:
    """COM_STMT_EXECUTE of ``statement`` with these parameters: (rows affected, warnings)."""
    conn._execute_command(COMMAND.COM_STMT_EXECUTE, b"".join((
        struct.pack("<IBI", statement.id, 0, 1), nulls, b"\x01", statement.types, values)))
    rows = conn._read_query_result()
    result = conn._result
    return int(rows), int(result.warning_count if result is not None else 0)


def close(conn: Connection, statement: Statement) -> None:
    """COM_STMT_CLOSE (the server sends no answer)."""
    conn._execute_command(COMMAND.COM_STMT_CLOSE, struct.pack("<I", statement.id))
