"""What is done to a preview's database (a restore target): wait until it takes logins, create and
re-key its accounts, SQL for root over the server's unix socket, and the ``previews.replace``
URL rewrite.

The preview and golden use cases call these functions; they never see SQL or pymysql. Root's
SQL is fed on the stdin of the server's own client inside the container (``ROOT_CLIENT``): the
runtime runs it, this module only writes it. Passwords are literals quoted by ``codec.sql_string``
and never appear in argv or logs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pymysql

from ..errors import ClonekitError, PreviewError
from ..retry import poll
from .codec import sql_string
from .connection import ACCESS_DENIED_CODES, connect, connection, error_code, quote_name, target_error
from .endpoint import DbEndpoint
from .rewrite import SERIALIZED_START_SQL, Replacement, rewrite_value

log = logging.getLogger("clonekit.db.target")

DB_READY_TIMEOUT_SECONDS = 180.0
DB_POLL_SECONDS = 0.2
TEXT_TYPES = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json")
HOST_NOT_ALLOWED_CODE = 1130
# Root over the server's unix socket inside the container; the password (first stdin line) goes
# through the client's MYSQL_PWD, never argv. unix_socket accounts ignore it.
ROOT_CLIENT = ('IFS= read -r MYSQL_PWD; export MYSQL_PWD; '
               'if command -v mariadb >/dev/null; then exec mariadb -uroot; else exec mysql -uroot; fi')
# Slow shutdown: purge and change-buffer merge now, so no later start has work to redo. No buffer
# pool dump: a preview's server would load those pages at start, opening their table files
# read-write, and overlayfs copies a file opened so whole into the preview's layer (on ext4 the
# golden copy's largest tables, gigabytes, at every start).
CLEAN_SHUTDOWN_SQL = b"SET GLOBAL innodb_fast_shutdown = 0;\nSET GLOBAL innodb_buffer_pool_dump_at_shutdown = OFF;\n"


def run_as_root(run: Callable[[list[str], bytes], object], root_password: str, sql: bytes) -> None:
    """``sql`` as the server's root over its unix socket: ``run(argv, stdin)`` runs a command
    inside the database's container (the runtime does that). The password is the first line of
    stdin, never argv; a socket-authenticated root ignores it."""
    run(["sh", "-c", ROOT_CLIENT], root_password.encode() + b"\n" + sql)


# -- bulk load ------------------------------------------------------------------------------------

# While a restore loads a fresh preview (or golden) database, its server may trade durability and
# memory for speed: nothing in it is anyone's yet, and a crash means loading again. Measured at
# the top scale (1.8 GB of tables into clonekit/mariadb:10.11's defaults: 256 MiB buffer pool,
# 48 MiB redo log, a log flush per commit): no log flush per commit and a buffer pool sized to the
# data. Everything is set back when the load ends: the preview then runs as the image says.
# The redo log is left at its size: a larger one saved ~3 s of a 30 s load, but growing it took
# 2 s before the load and setting it back 6-8 s after it (a checkpoint of every dirty page), both
# in the clone's path (docs/benchmarks.md, 2026-12-01).
LOAD_BUFFER_POOL_MAX = 1 << 30
_SIZE_STEP = 128 << 20  # buffer pool chunk multiple (MariaDB and MySQL round to it)
LOAD_SETTINGS_READ = "SELECT @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.innodb_buffer_pool_size"


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def load_settings_sql(flush: int, buffer_pool: int, data_bytes: int) -> tuple[bytes, bytes]:
    """(SQL before the load, SQL after it) for a server whose globals are now ``flush``
    (innodb_flush_log_at_trx_commit) and ``buffer_pool`` bytes, about to load ``data_bytes`` of
    rows. Only upwards; the after part sets back exactly what the before part changed. The buffer
    pool grows only for data larger than it."""
    before, after = [], []
    if flush != 0:
        before.append("SET GLOBAL innodb_flush_log_at_trx_commit = 0;")
        after.append(f"SET GLOBAL innodb_flush_log_at_trx_commit = {int(flush)};")
    pool = min(LOAD_BUFFER_POOL_MAX, _round_up(data_bytes, _SIZE_STEP))
    if data_bytes > buffer_pool and pool > buffer_pool:
        before.append(f"SET GLOBAL innodb_buffer_pool_size = {pool};")
        after.append(f"SET GLOBAL innodb_buffer_pool_size = {int(buffer_pool)};")
    return "\n".join(before).encode(), "\n".join(after).encode()


@contextlib.contextmanager
def bulk_load(endpoint: DbEndpoint, run: Callable[[list[str], bytes], object], root_password: str,
              data_bytes: int) -> Iterator[None]:
    """Around the load of ``data_bytes`` into the fresh database at ``endpoint``: faster settings
    for its server (``load_settings_sql``, as root through ``run``), set back afterwards. A server
    that refuses them loads with its own (logged): this is an optimisation, never a failure. What
    was computed is set back even when setting it failed halfway (a value unchanged is a no-op)."""
    before = after = b""
    try:
        with connection(endpoint, as_target=True) as conn, conn.cursor() as cur:
            cur.execute(LOAD_SETTINGS_READ)
            flush, pool = cur.fetchone()
        before, after = load_settings_sql(int(flush), int(pool), data_bytes)
        if before:
            run_as_root(run, root_password, before)
            log.info("database server set for the load: %s", before.decode().replace("SET GLOBAL ", "").replace("\n", " "))
        applied = True
    except (ClonekitError, pymysql.MySQLError) as exc:
        applied = False
        log.info("load settings not applied (%s): loading with the server's own", exc)
    try:
        yield
    finally:
        if after:
            try:
                run_as_root(run, root_password, after)
            except ClonekitError as exc:
                (log.warning if applied else log.info)(
                    "could not set the database server's settings back after the load (%s)", exc)


# -- accounts -------------------------------------------------------------------------------------


def wait_for_database(endpoint: DbEndpoint, *, timeout: float = DB_READY_TIMEOUT_SECONDS,
                      alive: Callable[[], None] | None = None, on_denied: Callable[[], None] | None = None) -> None:
    """Poll until ``endpoint`` accepts a login (the image's first-start init can take a while).

    ``alive`` is called between attempts and raises when the database container died.
    ``on_denied`` is called once when the server answers but refuses the login: an image that
    does not read MARIADB_*/MYSQL_* (a plain Debian mariadb-server) has no such account yet.
    """
    last: list[ClonekitError] = []
    denied = [on_denied]

    def attempt() -> bool | None:
        try:
            with connection(endpoint, as_target=True) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                return True
        except PreviewError as exc:
            last[:] = [exc]
            callback = denied[0]
            if callback is not None and error_code(exc.__cause__) in (*ACCESS_DENIED_CODES, HOST_NOT_ALLOWED_CODE):
                denied[0] = None
                callback()
            return None

    if poll(attempt, timeout=timeout, interval=DB_POLL_SECONDS, between=alive):
        return
    last_error = last[0] if last else None
    raise PreviewError(f"the preview database {endpoint} did not accept connections within {timeout:.0f}s: {last_error}")


def rekey_over_tcp(root: DbEndpoint, user: str, password: str, database: str, root_password: str) -> bool:
    """``rekey_sql`` as ``root`` (a golden copy's root@'%' and its password) over the preview's
    database port: no client process in the container. False, with nothing changed, when the
    server refuses that login (an image or a hook changed root): re-key over the socket then."""
    try:
        conn = connect(root, as_target=True)
    except PreviewError as exc:
        if error_code(exc.__cause__) in (*ACCESS_DENIED_CODES, HOST_NOT_ALLOWED_CODE):
            return False
        raise
    try:
        with conn.cursor() as cur:
            for statement in rekey_statements(user, password, database, root_password):
                cur.execute(statement)
    except pymysql.MySQLError as exc:
        raise target_error(exc, root, "re-keying the accounts") from exc
    finally:
        with contextlib.suppress(pymysql.MySQLError, OSError):
            conn.close()
    return True


def _account_statements(user: str, password: str, database: str) -> list[str]:
    name, who, secret = quote_name(database), sql_string(user), sql_string(password)
    return [
        f"CREATE DATABASE IF NOT EXISTS {name}",
        f"CREATE USER IF NOT EXISTS {who}@'%' IDENTIFIED BY {secret}",
        f"ALTER USER {who}@'%' IDENTIFIED BY {secret}",
        f"GRANT ALL PRIVILEGES ON {name}.* TO {who}@'%'",
        "FLUSH PRIVILEGES",
    ]


def _script(statements: Sequence[str]) -> bytes:
    return "".join(f"{statement};\n" for statement in statements).encode()


def account_sql(user: str, password: str, database: str) -> bytes:
    """SQL that creates the preview's database and account (fed on stdin: never in argv)."""
    return _script(_account_statements(user, password, database))


def rekey_statements(user: str, password: str, database: str, root_password: str) -> list[str]:
    """A clone of a golden copy gets its own credentials: the account, and root@'%' where it exists."""
    return [*_account_statements(user, password, database),
            f"ALTER USER IF EXISTS 'root'@'%' IDENTIFIED BY {sql_string(root_password)}"]


def rekey_sql(user: str, password: str, database: str, root_password: str) -> bytes:
    """``rekey_statements`` as a script for the server's client (fed on stdin: never in argv)."""
    return _script(rekey_statements(user, password, database, root_password))


def root_sql(flavor: str, password: str) -> bytes:
    """root@'%' gets the golden password (each preview replaces it with its own). MariaDB's
    root@localhost is the unix socket only: no golden password stays in a preview, and
    healthchecks and the preview's re-key still log in over the socket."""
    text = sql_string(password)
    local = ("ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket"
             if flavor == "mariadb" else f"ALTER USER 'root'@'localhost' IDENTIFIED BY {text}")
    return (f"{local};\nCREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY {text};\n"
            f"ALTER USER 'root'@'%' IDENTIFIED BY {text};\n"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;\nFLUSH PRIVILEGES;\n").encode()


def server_flavor(endpoint: DbEndpoint) -> str:
    """``mariadb`` or ``mysql``, from the server's version string."""
    try:
        with connection(endpoint, as_target=True) as conn, conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
    except pymysql.MySQLError as exc:
        raise PreviewError(f"cannot read the version of the database {endpoint}") from exc
    return "mariadb" if "mariadb" in version.lower() else "mysql"


# -- previews.replace -----------------------------------------------------------------------------


def _like_pattern(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def skipped(table: str, skip: Sequence[str]) -> bool:
    """``table`` matches one of the ``previews.replace_skip`` names or globs (``cache_*``)."""
    return any(fnmatch.fnmatchcase(table, pattern) for pattern in skip)


def find_replace_tables(endpoint: DbEndpoint, olds: Sequence[str], *, skip: Sequence[str] = ()) -> dict[str, list[str]]:
    """For each ``previews.replace`` key, the tables whose text columns contain it (plain or JSON
    escaped), ``skip`` left out. Every clone of a golden copy holds the same rows: its rewrite
    reads only these."""
    out: dict[str, list[str]] = {}
    if not olds:
        return out
    try:
        with connection(endpoint, as_target=True) as conn, conn.cursor() as cur:
            tables = [t for t in text_tables(cur, endpoint.database) if not skipped(t[0], skip)]
            for old in olds:
                needles = Replacement(old, "").needles()
                out[old] = []
                for table, columns, _key in tables:
                    condition = " OR ".join(f"{quote_name(c)} LIKE %s" for c in columns for _ in needles)
                    cur.execute(f"SELECT 1 FROM {quote_name(table)} WHERE {condition} LIMIT 1",
                                [_like_pattern(n) for _ in columns for n in needles])
                    if cur.fetchone():
                        out[old].append(table)
    except pymysql.MySQLError as exc:
        raise PreviewError(f"cannot search the database {endpoint} for previews.replace strings") from exc
    return out


# A table's rows holding a previews.replace string, by primary key, per text column: what a golden
# copy records so that its clones rewrite those rows without reading the table.
ReplaceRows = Mapping[str, Mapping[str, Sequence[Sequence[Any]]] | None]
MAX_INDEXED_ROWS = 100_000  # per table and column; beyond, a clone scans that table (a log, say)
KEY_BATCH_ROWS = 1000


def find_replace_rows(endpoint: DbEndpoint, olds: Sequence[str], tables: Sequence[str]) -> dict[str, Any]:
    """For each of ``tables``, the primary keys of its rows that hold one of ``olds`` (plain or JSON
    escaped), per text column: ``{table: {column: [[key values], ...]}}``. A table gets None (its
    clones scan it) when it has no primary key, a key value that is neither an integer nor a
    string, or more than MAX_INDEXED_ROWS such rows in a column."""
    out: dict[str, Any] = {}
    if not olds or not tables:
        return out
    needles = sorted({n for old in olds for n in Replacement(old, "").needles()})
    wanted = set(tables)
    try:
        with connection(endpoint, as_target=True) as conn, conn.cursor() as cur:
            for table, columns, key in text_tables(cur, endpoint.database):
                if table not in wanted:
                    continue
                out[table] = _rows_holding(cur, table, columns, key, needles) if key else None
    except pymysql.MySQLError as exc:
        raise PreviewError(f"cannot search the database {endpoint} for previews.replace strings") from exc
    return out


def _rows_holding(cur: Any, table: str, columns: Sequence[str], key: Sequence[str],
                  needles: Sequence[str]) -> dict[str, list[list[Any]]] | None:
    q = quote_name
    found: dict[str, list[list[Any]]] = {}
    for column in columns:
        cur.execute(f"SELECT {', '.join(q(k) for k in key)} FROM {q(table)} WHERE "
                    + " OR ".join(f"{q(column)} LIKE %s" for _ in needles) + f" LIMIT {MAX_INDEXED_ROWS + 1}",
                    [_like_pattern(n) for n in needles])
        rows = [list(row) for row in cur.fetchall()]
        if len(rows) > MAX_INDEXED_ROWS or any(not isinstance(v, int | str) for row in rows for v in row):
            return None
        if rows:
            found[column] = rows
    return found


def rewrite_urls(endpoint: DbEndpoint, replacements: Sequence[Replacement], *,
                 tables: Sequence[str] | None = None, skip: Sequence[str] = (), rows: ReplaceRows | None = None) -> int:
    """Apply ``replacements`` to every text column of ``tables`` (all tables when None) but those
    ``skip`` names (``previews.replace_skip``: logs nobody reads in a preview), in one
    transaction; returns the values changed. A table that ``rows`` (``find_replace_rows``) lists
    with its keys is rewritten in those rows only, found by primary key: nothing else is read.

    Values that cannot be PHP-serialized get the plain replacement in one UPDATE per column (what
    ``rewrite_value`` does to them, without a round trip per row); the others are read and go
    through ``rewrite_value``. Not when a new string contains its old one: a second pass would
    replace again, so then every value goes through ``rewrite_value``.
    """
    if not replacements or tables is not None and not tables:
        return 0
    wanted = None if tables is None else set(tables)
    needles = sorted({n for r in replacements for n in r.needles()})
    in_sql = all(r.old not in r.new for r in replacements)
    changed = 0
    try:
        # One transaction: one commit (one fsync) for all rows, and all or nothing.
        with connection(endpoint, as_target=True, autocommit=False) as conn:
            with conn.cursor() as cur:
                # Only the wanted tables are looked up: an information_schema query over the whole
                # schema opens every table, where a golden clone needs its few.
                only = None if wanted is None else sorted(t for t in wanted if not skipped(t, skip))
                for table, columns, key in text_tables(cur, endpoint.database, only):
                    if skipped(table, skip):
                        continue
                    indexed = rows.get(table) if rows is not None and key else None
                    if indexed is not None:
                        changed += _rewrite_rows(cur, table, key, indexed, needles, replacements, in_sql)
                        continue
                    if in_sql:
                        changed += _replace_plain_values(cur, quote_name(table), [quote_name(c) for c in columns],
                                                         replacements)
                    changed += _rewrite_table(cur, table, columns, key, needles, replacements)
            conn.commit()
    except pymysql.MySQLError as exc:
        raise target_error(exc, endpoint, "rewriting URLs") from exc
    log.info("previews.replace: %d value(s) rewritten", changed)
    return changed


def text_tables(cur: Any, schema: str, only: Sequence[str] | None = None) -> list[tuple[str, list[str], list[str]]]:
    """(table, its text columns, its primary key) for every base table with a text column; with
    ``only``, for those tables alone, each looked up by name (MariaDB then opens no other table)."""
    if only is not None:
        return [found for table in only for found in _text_table(cur, schema, table)]
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


def _text_table(cur: Any, schema: str, table: str) -> list[tuple[str, list[str], list[str]]]:
    cur.execute("SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (schema, table))
    found = cur.fetchone()
    if not found or found[0] != "BASE TABLE":
        return []
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "AND DATA_TYPE IN (" + ",".join(["%s"] * len(TEXT_TYPES)) + ") ORDER BY ORDINAL_POSITION",
        (schema, table, *TEXT_TYPES),
    )
    columns = [column for (column,) in cur.fetchall()]
    if not columns:
        return []
    cur.execute("SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION", (schema, table))
    return [(table, columns, [column for (column,) in cur.fetchall()])]


def _rewrite_rows(cur: Any, table: str, key: list[str], indexed: Mapping[str, Sequence[Sequence[Any]]],
                  needles: list[str], replacements: Sequence[Replacement], in_sql: bool) -> int:
    """The rewrite of ``table`` restricted to the rows ``indexed`` names, per column, by primary key
    (batches of KEY_BATCH_ROWS). Those rows are known to hold a string to replace: no ``LIKE`` reads
    their values again (a collation-aware search through every value, twice, was most of the
    server's CPU). Values that cannot be PHP-serialized get the plain replacement in one UPDATE
    (a value it leaves as it was is not written, nor counted); the others (SERIALIZED_START_SQL,
    which may match more than ``rewrite_value`` does, never fewer) are read and go through
    ``rewrite_value``: each value once, by one path or the other."""
    q = quote_name
    changed = 0
    for column, keys in indexed.items():
        for start in range(0, len(keys), KEY_BATCH_ROWS):
            batch = keys[start:start + KEY_BATCH_ROWS]
            if len(key) == 1:
                where = f"{q(key[0])} IN ({', '.join(['%s'] * len(batch))})"
                where_args = [row[0] for row in batch]
            else:
                one = "(" + ", ".join(["%s"] * len(key)) + ")"
                where = f"({', '.join(q(k) for k in key)}) IN ({', '.join([one] * len(batch))})"
                where_args = [value for row in batch for value in row]
            if in_sql:
                changed += _replace_plain_values(cur, q(table), [q(column)], replacements, where, where_args,
                                                 known=True)
                match = (f"{q(column)} REGEXP %s", [SERIALIZED_START_SQL])
            else:
                match = (f"{q(column)} IS NOT NULL", [])
            changed += _rewrite_table(cur, table, [column], key, needles, replacements, where, where_args, match=match)
    return changed


def _replace_plain_values(cur: Any, table: str, columns: Sequence[str], replacements: Sequence[Replacement],
                          where: str = "", where_args: Sequence[Any] = (), *, known: bool = False) -> int:
    """One UPDATE per column: the plain replacement of the values that cannot be PHP-serialized;
    ``known``: the rows ``where`` selects hold a string to replace (no ``LIKE`` looks again)."""
    pairs = [(old.decode(), new.decode()) for r in replacements for old, new in r.pairs()]
    changed = 0
    for column in columns:
        expression, args = column, []
        for old, new in pairs:
            expression = f"REPLACE({expression}, %s, %s)"
            args += [old, new]
        conditions, condition_args = [f"{column} NOT REGEXP %s"], [SERIALIZED_START_SQL]
        if not known:
            conditions.insert(0, "(" + " OR ".join(f"{column} LIKE %s" for _ in pairs) + ")")
            condition_args[:0] = [_like_pattern(old) for old, _ in pairs]
        if where:
            conditions.append(where)
        changed += cur.execute(f"UPDATE {table} SET {column} = {expression} WHERE {' AND '.join(conditions)}",
                               [*args, *condition_args, *where_args])
    return changed


def _rewrite_table(cur: Any, table: str, columns: list[str], key: list[str],
                   needles: list[str], replacements: Sequence[Replacement],
                   where: str = "", where_args: Sequence[Any] = (),
                   match: tuple[str, Sequence[Any]] | None = None) -> int:
    """Read the values holding a needle (or those ``match`` selects: SQL and its arguments) and
    write back what ``rewrite_value`` makes of them, row by row."""
    q = quote_name
    if match is None:
        condition = " OR ".join(f"{q(c)} LIKE %s" for c in columns for _ in needles)
        args = [_like_pattern(n) for _ in columns for n in needles]
    else:
        condition, args = match[0], list(match[1])
    changed = 0
    if key:
        cur.execute(f"SELECT {', '.join(q(k) for k in key)}, {', '.join(q(c) for c in columns)} "
                    f"FROM {q(table)} WHERE ({condition})" + (f" AND {where}" if where else ""), [*args, *where_args])
        for row in cur.fetchall():
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
