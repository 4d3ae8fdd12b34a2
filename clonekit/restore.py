"""The cold restore path: load a snapshot into a preview's running database and its volumes.

Also the ``previews.replace`` rewrite: the production URL becomes the preview URL inside the
restored database, safely for PHP-serialized values (every ``s:N:"..."`` length is recomputed,
nested serialized strings included) and for JSON values (``https:\\/\\/`` escaped slashes too).
The value transform is pure (``rewrite_value``); ``rewrite_database`` only finds the rows that
contain a string to replace and writes back the ones that changed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import PreviewError

log = logging.getLogger("clonekit.restore")

DB_READY_TIMEOUT_SECONDS = 180.0
DB_POLL_SECONDS = 0.2
TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json")
HOST_NOT_ALLOWED_CODE = 1130
SERIALIZED_START = re.compile(rb'^(?:[aO]:\d+:[{"]|s:\d+:"|i:-?\d+;|b:[01];|d:[-0-9.EeINFAN]+;|N;)')


# -- serialization-safe replacement (pure) -------------------------------------------------------


@dataclass(frozen=True)
class Replacement:
    old: str
    new: str

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """The plain form and the JSON escaped-slash form (``https:\\/\\/www.example.net``)."""
        out = [(self.old.encode(), self.new.encode())]
        if "/" in self.old:
            out.append((self.old.replace("/", "\\/").encode(), self.new.replace("/", "\\/").encode()))
        return out

    def needles(self) -> list[str]:
        return [old.decode() for old, _ in self.pairs()]


def rewrite_value(value: str, replacements: Sequence[Replacement]) -> str:
    """``value`` with every replacement applied; PHP-serialized lengths stay right."""
    data = value.encode("utf-8", "surrogatepass")
    pairs = [p for r in replacements for p in r.pairs()]
    if not any(old in data for old, _ in pairs):
        return value
    return _rewrite_bytes(data, pairs).decode("utf-8", "surrogatepass")


def _rewrite_bytes(data: bytes, pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    if not any(old in data for old, _ in pairs):
        return data
    if SERIALIZED_START.match(data):
        try:
            out, end = _walk(data, 0, pairs)
            if end == len(data):
                return out
        except (ValueError, IndexError):
            pass  # not (well-formed) serialized data after all: plain replacement, as WP-CLI does
    for old, new in pairs:
        data = data.replace(old, new)
    return data


def _walk(data: bytes, pos: int, pairs: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    """Re-emit one serialized value starting at ``pos``, strings rewritten; returns (bytes, end)."""
    kind = data[pos:pos + 1]
    if kind == b"s":
        colon = data.index(b":", pos + 2)
        length = int(data[pos + 2:colon])
        start = colon + 2
        if data[colon + 1:start] != b'"' or data[start + length:start + length + 2] != b'";':
            raise ValueError("bad string")
        inner = _rewrite_bytes(data[start:start + length], pairs)
        return b's:%d:"' % len(inner) + inner + b'";', start + length + 2
    if kind in (b"i", b"b", b"d", b"r", b"R"):
        end = data.index(b";", pos) + 1
        return data[pos:end], end
    if kind == b"N":
        if data[pos + 1:pos + 2] != b";":
            raise ValueError("bad null")
        return b"N;", pos + 2
    if kind == b"a":
        colon = data.index(b":", pos + 2)
        count = int(data[pos + 2:colon])
        if data[colon + 1:colon + 2] != b"{":
            raise ValueError("bad array")
        return _walk_members(data, pos, colon + 2, count * 2, pairs)
    if kind in (b"O", b"C", b"E"):
        colon = data.index(b":", pos + 2)
        name_length = int(data[pos + 2:colon])
        name_end = colon + 2 + name_length
        if data[colon + 1:colon + 2] != b'"' or data[name_end:name_end + 2] not in (b'":', b'";'):
            raise ValueError("bad object")
        if kind == b"E":  # enum: E:len:"Class:Case";
            return data[pos:name_end + 2], name_end + 2
        count_end = data.index(b":", name_end + 2)
        count = int(data[name_end + 2:count_end])
        if data[count_end + 1:count_end + 2] != b"{":
            raise ValueError("bad object")
        if kind == b"C":  # custom serialization: opaque payload of ``count`` bytes
            end = count_end + 2 + count
            if data[end:end + 1] != b"}":
                raise ValueError("bad custom object")
            return data[pos:end + 1], end + 1
        return _walk_members(data, pos, count_end + 2, count * 2, pairs)
    raise ValueError("unknown type")


def _walk_members(data: bytes, head_start: int, body_start: int, items: int,
                  pairs: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, int]:
    parts = [data[head_start:body_start]]
    pos = body_start
    for _ in range(items):
        part, pos = _walk(data, pos, pairs)
        parts.append(part)
    if data[pos:pos + 1] != b"}":
        raise ValueError("unterminated")
    parts.append(b"}")
    return b"".join(parts), pos + 1


# -- the database side ---------------------------------------------------------------------------


def _like_pattern(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def rewrite_database(endpoint: Any, replacements: Sequence[Replacement]) -> int:
    """Apply ``replacements`` to every text column of the database; returns the rows changed."""
    if not replacements:
        return 0
    import pymysql

    from .db.connection import connection, quote_name, target_error

    needles = sorted({n for r in replacements for n in r.needles()})
    changed = 0
    try:
        # One transaction: one commit (one fsync) for all rows, and all or nothing.
        with connection(endpoint, as_target=True, autocommit=False) as conn:
            with conn.cursor() as cur:
                for table, columns, key in _text_tables(cur, endpoint.database):
                    changed += _rewrite_table(cur, quote_name, table, columns, key, needles, replacements)
            conn.commit()
    except pymysql.MySQLError as exc:
        raise target_error(exc, endpoint, "rewriting URLs") from exc
    log.info("previews.replace: %d row(s) rewritten", changed)
    return changed


def _text_tables(cur: Any, schema: str) -> list[tuple[str, list[str], list[str]]]:
    cur.execute(
        "SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c "
        "JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
        "WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE = 'BASE TABLE' AND c.DATA_TYPE IN ("
        + ",".join(["%s"] * len(TEXT_TYPES)) + ") ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
        (schema, *TEXT_TYPES),
    )
    columns: dict[str, list[str]] = {}
    for table, column in cur.fetchall():
        columns.setdefault(table, []).append(column)
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (schema,),
    )
    keys: dict[str, list[str]] = {}
    for table, column in cur.fetchall():
        keys.setdefault(table, []).append(column)
    return [(table, cols, keys.get(table, [])) for table, cols in columns.items()]


def _rewrite_table(cur: Any, q: Callable[[str], str], table: str, columns: list[str], key: list[str],
                   needles: list[str], replacements: Sequence[Replacement]) -> int:
    condition = " OR ".join(f"{q(c)} LIKE %s" for c in columns for _ in needles)
    args = [_like_pattern(n) for _ in columns for n in needles]
    changed = 0
    if key:
        cur.execute(f"SELECT {', '.join(q(k) for k in key)}, {', '.join(q(c) for c in columns)} "
                    f"FROM {q(table)} WHERE {condition}", args)
        rows = cur.fetchall()
        for row in rows:
            key_values, values = row[:len(key)], row[len(key):]
            updates = {}
            for column, value in zip(columns, values, strict=True):
                if isinstance(value, str):
                    new = rewrite_value(value, replacements)
                    if new != value:
                        updates[column] = new
            if updates:
                cur.execute(
                    f"UPDATE {q(table)} SET {', '.join(f'{q(c)} = %s' for c in updates)} "
                    f"WHERE {' AND '.join(f'{q(k)} = %s' for k in key)}",
                    [*updates.values(), *key_values],
                )
                changed += 1
        return changed
    # No primary key: rewrite each distinct value in place.
    for column in columns:
        cur.execute(f"SELECT DISTINCT {q(column)} FROM {q(table)} WHERE "
                    + " OR ".join(f"{q(column)} LIKE %s" for _ in needles), [_like_pattern(n) for n in needles])
        for (value,) in cur.fetchall():
            if isinstance(value, str):
                new = rewrite_value(value, replacements)
                if new != value:
                    changed += cur.execute(
                        f"UPDATE {q(table)} SET {q(column)} = %s WHERE CAST({q(column)} AS BINARY) = CAST(%s AS BINARY)",
                        [new, value],
                    )
    return changed


# -- loading -------------------------------------------------------------------------------------


def wait_for_database(endpoint: Any, *, timeout: float = DB_READY_TIMEOUT_SECONDS,
                      alive: Callable[[], None] | None = None, on_denied: Callable[[], None] | None = None) -> None:
    """Poll until ``endpoint`` accepts a login (the image's first-start init can take a while).

    ``alive`` is called between attempts and raises when the database container died.
    ``on_denied`` is called once when the server answers but refuses the login: an image that
    does not read MARIADB_*/MYSQL_* (a plain Debian mariadb-server) has no such account yet.
    """
    from .db.connection import ACCESS_DENIED_CODES, connection, error_code
    from .errors import ClonekitError

    deadline = time.monotonic() + timeout
    last: ClonekitError | None = None
    while time.monotonic() < deadline:
        try:
            with connection(endpoint, as_target=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                return
        except PreviewError as exc:
            last = exc
            if on_denied is not None and error_code(exc.__cause__) in (*ACCESS_DENIED_CODES, HOST_NOT_ALLOWED_CODE):
                on_denied()
                on_denied = None
                continue
        if alive is not None:
            alive()
        time.sleep(DB_POLL_SECONDS)
    raise PreviewError(f"the preview database {endpoint} did not accept connections within {timeout:.0f}s: {last}")


def account_sql(user: str, password: str, database: str) -> bytes:
    """SQL that creates the preview's database and account (fed on stdin: never in argv)."""
    def text(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    name = "`" + database.replace("`", "``") + "`"
    return (
        f"CREATE DATABASE IF NOT EXISTS {name};\n"
        f"CREATE USER IF NOT EXISTS {text(user)}@'%' IDENTIFIED BY {text(password)};\n"
        f"ALTER USER {text(user)}@'%' IDENTIFIED BY {text(password)};\n"
        f"GRANT ALL PRIVILEGES ON {name}.* TO {text(user)}@'%';\n"
        "FLUSH PRIVILEGES;\n"
    ).encode()


def load_database(repo: Any, section: Mapping[str, Any], endpoint: Any, *, workers: int = 2) -> None:
    from .db import restore_database

    restore_database(repo, section, endpoint, workers=workers)


def file_tar_stream(repo: Any, section: Mapping[str, Any]) -> Iterable[bytes]:
    from .files import iter_tar

    return iter_tar(repo, section)
