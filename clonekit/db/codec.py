"""The stored form of table data: LOAD DATA's text format, cut into chunks at row boundaries.

Format ``tsv-1``: one row per line, fields separated by TAB, ``\\N`` for NULL, and in every value
backslash, TAB and newline escaped with a backslash; values are the raw bytes of the column
(its own character set; ``LOAD DATA ... CHARACTER SET binary`` stores them back untouched).
FLOAT is written through DOUBLE (exact), BIT as its integer value. This is what
``LOAD DATA LOCAL INFILE`` reads fastest, so restore hands chunks to the server unchanged.

For identity tables the SERVER renders each row (``row_sql``): Python only moves large strings.
Chunk cuts are chosen by content: after a row whose key hash is below ``weight x K`` (weight =
about the row's bytes), so a cut lands every ``TARGET_CHUNK_BYTES`` on average whatever the row
size, and depends only on that row. The server marks such rows with ``CUT_MARK`` after their
newline; the marker can never occur in data because every literal backslash is doubled.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import zlib
from collections.abc import Callable, Sequence

from pymysql import converters

from ..schema import Column, Row, Table
from .connection import quote_name

FORMAT = "tsv-1"
TARGET_CHUNK_BYTES = 2 << 20
MIN_CHUNK_BYTES = 512 << 10
MAX_CHUNK_BYTES = 8 << 20
CUT_MARK = b"\\~"  # a lone backslash + tilde: impossible at the start of an escaped row
ROW_END_CUT = b"\n" + CUT_MARK
CUT_SCALE = (1 << 32) // TARGET_CHUNK_BYTES  # P(cut) = weight x CUT_SCALE / 2**32
REGEXP_FROM_BYTES = 256  # values longer than this are escaped with REGEXP_REPLACE
FIXED_FIELD_WEIGHT = 8  # bytes counted for a numeric or temporal field when weighing a row

BINARY_TYPES = frozenset({
    "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit",
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection",
})
STRING_TYPES = frozenset({
    "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json",
    "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "inet6", "inet4", "uuid",
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
    "geometrycollection",
})
# Up to SHORT_STRING_CHARS characters REPLACE's quadratic worst case stays negligible. MySQL 8's ICU
# regexps refuse binary strings, so there every string type takes this path.
SHORT_STRING_CHARS = 1024
SHORT_STRING_TYPES = frozenset({"char", "varchar", "tinytext", "tinyblob", "binary", "varbinary", "enum", "set",
                                "inet6", "inet4", "uuid"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})


def sql_string(value: str) -> str:
    """A SQL string literal (for our own constants only, never for row values)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_NULL = sql_string("\\N")


def field_sql(column: Column, linear_escape: bool = True) -> str:
    """Server-side expression rendering one column as a tsv-1 field (binary string)."""
    name = quote_name(column.name)
    kind = column.data_type
    if kind == "bit":
        return f"IFNULL(CAST({name} + 0 AS CHAR), {_NULL})"
    if kind == "float":
        return f"IFNULL(CAST({name} AS DOUBLE), {_NULL})"
    if kind in STRING_TYPES:
        raw = f"CAST({name} AS BINARY)"
        # REPLACE moves the rest of the string at each hit (quadratic on big values full of tabs or
        # newlines: 20 s for a 3 MB blob); REGEXP_REPLACE builds a new string (linear) but costs
        # more per call: each where it is cheaper.
        replaced = f"REPLACE(REPLACE(REPLACE({raw}, '\\\\', '\\\\\\\\'), '\\t', '\\\\t'), '\\n', '\\\\n')"
        regexp = (f"REGEXP_REPLACE(REGEXP_REPLACE(REGEXP_REPLACE({raw}, '\\\\\\\\', '\\\\\\\\\\\\\\\\'), "
                  "'\\t', '\\\\\\\\t'), '\\n', '\\\\\\\\n')")
        short = kind in SHORT_STRING_TYPES and (column.max_chars or 0) <= SHORT_STRING_CHARS
        if not linear_escape or short:  # short values: REPLACE's cost stays small
            return f"IFNULL({replaced}, {_NULL})"
        return f"IFNULL(IF(OCTET_LENGTH({name}) > {REGEXP_FROM_BYTES}, {regexp}, {replaced}), {_NULL})"
    return f"IFNULL({name}, {_NULL})"


def line_sql(columns: Sequence[Column], linear_escape: bool = True) -> str:
    """One row as a tsv-1 line without its newline."""
    return "CONCAT_WS('\\t', " + ", ".join(field_sql(c, linear_escape) for c in columns) + ")"


def weight_sql(columns: Sequence[Column]) -> str:
    """About the rendered size of a row, computed without rendering it twice."""
    parts = [str(FIXED_FIELD_WEIGHT * len(columns))]
    for c in columns:
        if c.data_type in STRING_TYPES:
            parts.append(f"IFNULL(OCTET_LENGTH({quote_name(c.name)}), 0)")
    return " + ".join(parts)


def key_sql(table: Table) -> str:
    """What the cut hash reads: the primary key, or every column of a table without one."""
    names = table.primary_key or tuple(c.name for c in table.data_columns)
    return "CONCAT_WS(0x1f, " + ", ".join(f"CAST({quote_name(n)} AS BINARY)" for n in names) + ")"


def row_sql(table: Table, linear_escape: bool = True) -> str:
    """A row as ``line\\n``, followed by CUT_MARK when a chunk may end after it."""
    columns = table.data_columns
    cut = f"CRC32({key_sql(table)}) < ({weight_sql(columns)}) * {CUT_SCALE}"
    return f"CONCAT({line_sql(columns, linear_escape)}, IF({cut}, {sql_string(ROW_END_CUT.decode())}, '\\n'))"


# -- typed rows (tables with a transform) ------------------------------------------------------


def escape(raw: bytes) -> bytes:
    """A raw value as a tsv-1 field (its backslashes, TABs and newlines escaped)."""
    return raw.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")


def _timedelta_text(value: dt.timedelta) -> str:
    micros = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, micros = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{text}.{micros:06d}" if micros else text


def value_field(value: object, column: Column) -> bytes:
    """One typed value (as pymysql returns it, or as a transform made it) as a tsv-1 field."""
    if value is None:
        return b"\\N"
    if column.data_type == "bit":
        if isinstance(value, bytes | bytearray):
            return str(int.from_bytes(value, "big")).encode()
        return str(int(value)).encode()  # type: ignore[call-overload]
    if isinstance(value, bytes | bytearray):
        return escape(bytes(value))
    if isinstance(value, str):
        return escape(value.encode("utf-8", "surrogateescape"))
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, decimal.Decimal):
        return format(value, "f").encode()
    if isinstance(value, dt.datetime | dt.date):
        return (value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()).encode()
    if isinstance(value, dt.timedelta):
        return _timedelta_text(value).encode()
    if isinstance(value, set | frozenset):
        return escape(",".join(sorted(value)).encode())
    return escape(str(value).encode())


def encode_row(row: Row, columns: Sequence[Column]) -> bytes:
    return b"\t".join(value_field(v, c) for v, c in zip(row, columns, strict=True)) + b"\n"


def python_cut(line: bytes) -> bool:
    """The cut rule for rows encoded on this side (``line`` with its newline): the same weighting,
    hashed over the whole line (clonekit/_speedups.c computes the same CRC-32 in its row loop)."""
    return zlib.crc32(line) < len(line) * CUT_SCALE


def typed_line_sql(columns: Sequence[Column], linear_escape: bool = True) -> str:
    """The sanitizing path's row: like ``line_sql`` but text in UTF-8 whatever the column's charset,
    so Python can decode it (converted back on load through ``convert_columns``)."""
    fields = []
    for c in columns:
        if c.data_type in STRING_TYPES and not c.binary and c.data_type not in ("inet6", "inet4", "uuid"):
            c = Column(c.name, "longblob", c.column_type)  # escaped like a blob, converted first
            fields.append(field_sql(c, linear_escape).replace(f"CAST({quote_name(c.name)} AS BINARY)",
                                               f"CAST(CONVERT({quote_name(c.name)} USING utf8mb4) AS BINARY)"))
        else:
            fields.append(field_sql(c, linear_escape))
    return "CAST(CONCAT_WS('\\t', " + ", ".join(fields) + ") AS BINARY)"


_UNESCAPES = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"0": b"\0", b"r": b"\r", b"Z": b"\x1a", b"b": b"\b"}
_ESCAPE_SEQUENCE = re.compile(rb"\\(.)", re.S)


def unescape(field: bytes) -> bytes:
    if b"\\" not in field:
        return field
    return _ESCAPE_SEQUENCE.sub(_unescape_match, field)


def field_decoder(column: Column) -> Callable[[bytes], object]:
    """tsv-1 field (from ``typed_line_sql``) → the value pymysql would have returned."""
    kind = column.data_type

    def nullable(convert: Callable[[bytes], object]) -> Callable[[bytes], object]:
        def decode(field: bytes) -> object:
            return None if field == b"\\N" else convert(field)
        return decode

    if kind in INTEGER_TYPES or kind == "year":
        return nullable(int)
    if kind == "decimal":
        return nullable(lambda f: decimal.Decimal(f.decode()))
    if kind in ("float", "double", "real"):
        return nullable(float)
    if kind in ("datetime", "timestamp"):
        return nullable(converters.convert_datetime)
    if kind == "date":
        return nullable(converters.convert_date)
    if kind == "time":
        return nullable(converters.convert_timedelta)
    if kind == "bit":
        width = (_bit_width(column.column_type) + 7) // 8
        return nullable(lambda f: int(f).to_bytes(width, "big"))
    if column.binary or kind in BINARY_TYPES:
        return nullable(unescape)
    return _decode_text  # the common case, in one call


# How the compiled row loop (clonekit/_speedups.c, transform_batch) decodes a field: not at all
# (the transform does not read it), through the Python decoder, or itself for the plain kinds.
DECODE_KEEP, DECODE_PYTHON, DECODE_TEXT, DECODE_BLOB, DECODE_INT = range(5)
_DECODED_IN_PYTHON = frozenset({"decimal", "float", "double", "real", "datetime", "timestamp", "date", "time", "bit"})


def decode_mode(column: Column) -> int:
    """``field_decoder``'s branches, in its order: which of them the compiled loop does itself."""
    kind = column.data_type
    if kind in INTEGER_TYPES or kind == "year":
        return DECODE_INT
    if kind in _DECODED_IN_PYTHON:
        return DECODE_PYTHON
    if column.binary or kind in BINARY_TYPES:
        return DECODE_BLOB
    return DECODE_TEXT


def _decode_text(field: bytes) -> str | None:
    if field == b"\\N":
        return None
    if b"\\" in field:
        field = _ESCAPE_SEQUENCE.sub(_unescape_match, field)
    return field.decode("utf-8", "surrogateescape")


def _unescape_match(match: re.Match[bytes]) -> bytes:
    return _UNESCAPES.get(match.group(1), match.group(1))


def _bit_width(column_type: str) -> int:
    match = re.search(r"\((\d+)\)", column_type)
    return int(match.group(1)) if match else 1


# -- chunking ----------------------------------------------------------------------------------


class RowChunker:
    """Groups a stream of whole rows into chunks cut at marked rows, within min/max sizes.

    ``feed`` takes server output: rows ending in ``\\n`` where a chunk may end, ``\\n\\~``.
    ``emit`` receives each finished chunk (plain tsv-1 bytes, whole rows, no marks).
    """

    def __init__(self, emit: Callable[[bytes], None] | None = None, *,
                 emit_parts: Callable[[list[bytes | memoryview], int], None] | None = None) -> None:
        """``emit`` gets each chunk joined; ``emit_parts`` instead gets its pieces (views into the
        fed data, in order) and its size, for a writer that sends them without joining them
        (``os.writev``: one copy less per chunk)."""
        if (emit is None) == (emit_parts is None):
            raise TypeError("RowChunker takes one of emit and emit_parts")
        if emit is not None:
            joined = emit

            def emit_parts(parts: list[bytes | memoryview], _size: int) -> None:
                joined(b"".join(parts))

        assert emit_parts is not None
        self._emit_parts = emit_parts
        self._parts: list[bytes | memoryview] = []  # views into the fed data: one copy per chunk, at flush
        self._size = 0
        self.rows = 0
        self.bytes = 0

    def feed(self, data: bytes, rows: int | None = None) -> None:
        """``data``: whole rows (``rows`` of them, counted here when not given), possibly with cut
        marks (identity path)."""
        if not data:
            return
        self.rows += data.count(b"\n") if rows is None else rows
        start = 0
        end = len(data)
        while start < end:
            mark = data.find(ROW_END_CUT, start)
            if mark < 0:
                self._append(data, start, end, cut_allowed=False)
                return
            self._append(data, start, mark + 1, cut_allowed=True)  # the row's newline, not the mark
            start = mark + len(ROW_END_CUT)

    def feed_runs(self, data: bytes, cuts: Sequence[int], rows: int) -> None:
        """Rows encoded on this side (``rows`` whole lines in ``data``), where a chunk may end
        after the rows ending at the offsets ``cuts`` (``python_cut``, ``_RowTransformer.batch``).

        Fed as runs of rows each ending at a cut row: ``_append`` cuts a run past the size limit at
        the same row as line by line, so the chunks are the same bytes as fed one row at a time."""
        self.rows += rows
        start = 0
        for end in cuts:
            self._append(data, start, end, cut_allowed=True)
            start = end
        if start < len(data):
            self._append(data, start, len(data), cut_allowed=False)

    def _append(self, data: bytes, start: int, end: int, *, cut_allowed: bool) -> None:
        # ``data[start:end]`` is whole rows. Past MAX_CHUNK_BYTES without a marked row, cut at the
        # last row that fits.
        while self._size + end - start > MAX_CHUNK_BYTES:
            room = MAX_CHUNK_BYTES - self._size
            at = data.rfind(b"\n", start, start + room) + 1 if room > 0 else 0
            if at == 0:
                if self._size:
                    self.flush()
                    continue
                at = data.find(b"\n", start) + 1  # one row bigger than a chunk is a chunk of its own
                if at == end:
                    break
            self._add(data, start, at)
            start = at
            self.flush()
        if end > start:
            self._add(data, start, end)
        if cut_allowed and self._size >= MIN_CHUNK_BYTES or self._size >= MAX_CHUNK_BYTES:
            self.flush()

    def _add(self, data: bytes, start: int, end: int) -> None:
        self._parts.append(data if start == 0 and end == len(data) else memoryview(data)[start:end])
        self._size += end - start

    def flush(self) -> None:
        if not self._size:
            return
        parts, size = self._parts, self._size
        self._parts = []
        self._size = 0
        self.bytes += size
        self._emit_parts(parts, size)


def load_data_sql(table_name: str, columns: Sequence[str], bit_columns: Sequence[str] = (),
                  convert_columns: Sequence[str] = (), source: str = "") -> tuple[str, tuple[str, ...]]:
    """``LOAD DATA LOCAL INFILE %s`` for tsv-1 data; returns the SQL and its one parameter."""
    targets: list[str] = []
    sets: list[str] = []
    for i, name in enumerate(columns):
        if name in bit_columns:
            targets.append(f"@v{i}")
            sets.append(f"{quote_name(name)} = CAST(@v{i} AS UNSIGNED)")
        elif name in convert_columns:
            targets.append(f"@v{i}")
            sets.append(f"{quote_name(name)} = CONVERT(@v{i} USING utf8mb4)")
        else:
            targets.append(quote_name(name))
    sql = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {quote_name(table_name)} CHARACTER SET binary "
        "FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({', '.join(targets)})"
    )
    if sets:
        sql += " SET " + ", ".join(sets)
    return sql, (source,)
