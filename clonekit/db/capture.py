"""Consistent, parallel, streaming capture of one database into content-defined chunks.

One snapshot for every worker: the way mydumper does it, a brief FLUSH TABLES WITH READ LOCK (or
LOCK TABLES ... READ) while each worker connection starts ``START TRANSACTION WITH CONSISTENT
SNAPSHOT, READ ONLY``; without the privilege for either, one connection reads everything.
Tables without MVCC (MyISAM, Aria) are read first, before the freeze is lifted.
The planner's policies are fixed before the first row is read. Identity tables are rendered by
the server in tsv-1 (batches of rows per primary-key range through GROUP_CONCAT, so Python only
moves large strings); tables with a transform are rendered the same way, split and decoded into
typed rows in Python, and only the values the transform changed are encoded again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pickle
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, cast

import pymysql
from pymysql.connections import Connection
from pymysql.constants import COMMAND

from .._compiled import speedups
from ..errors import ClonekitError, ConfigError, SourceError
from ..fdio import write_all
from ..schema import Column, PolicyPlanner, Row, Table, TablePolicy
from .codec import (
    CUT_SCALE,
    DECODE_BLOB,
    DECODE_KEEP,
    DECODE_TEXT,
    FORMAT,
    INTEGER_TYPES,
    RowChunker,
    decode_mode,
    field_decoder,
    python_cut,
    row_sql,
    typed_line_sql,
    value_field,
)
from .connection import connect, error_code, quote_name, source_error
from .endpoint import DbEndpoint
from .introspect import UTF8_CHARSETS, TableInfo, describe, schema_objects, show_create_table, split_create_table
from .sample import sample_table  # the query scan uses: same query, same bounds
from .workers import ForkServer

log = logging.getLogger("clonekit.db.capture")

BATCH_BYTES = 2 << 20  # bytes the server renders per GROUP_CONCAT query (the next one in flight: small costs no speed)
TYPED_BATCH_BYTES = 1 << 20  # the same on the sanitizing path, whose batches are transformed here
MAX_BATCH_BYTES = 32 << 20  # GROUP_CONCAT's limit: a range that renders more is read again in smaller ones
FIRST_RANGE_KEYS = 64
STREAM_FEED_BYTES = 1 << 20
SPLIT_TABLE_BYTES = 48 << 20  # tables bigger than this are read as several key ranges in parallel
SPLIT_TYPED_ROWS = 20_000  # transformed tables with more rows are split between the workers
# Transforms are Python: a worker process per transformed part runs them on another core (no GIL).
# Workers are started by a fork server (a clean single-threaded process), never forked from this
# threaded one. CLONEKIT_DB_FORK=0 runs transforms in the capture threads instead.
TRANSFORM_PROCESSES = os.environ.get("CLONEKIT_DB_FORK", "1") != "0"
LOCK_WAIT_SECONDS = 60
NET_TIMEOUT_SECONDS = 3600
NO_PRIVILEGE_CODES = frozenset({1044, 1045, 1142, 1227})

PROGRESS_TASK = "database"


class Progress(Protocol):
    """The project's progress callback: ``progress(task, advance=bytes, total=bytes)``."""

    def __call__(self, task: str, advance: int = 0, total: int | None = None) -> None: ...


class ChunkSink(Protocol):
    def put(self, data: bytes) -> Any: ...  # returns a ChunkRef with .to_json() -> {"id", "size"}


@dataclass
class _Part:
    """One unit of work: a table, or a key range of a big one."""

    info: TableInfo
    policy: TablePolicy
    index: int
    key_range: tuple[int, int] | None = None
    estimate: int = 0
    linear_escape: bool = True  # REGEXP_REPLACE for long values (MariaDB); plain REPLACE on MySQL
    chunks: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0


def capture_database(endpoint: DbEndpoint, planner: PolicyPlanner, writer: ChunkSink, *, workers: int = 2,
                     progress: Progress | None = None, on_schema: SchemaHook | None = None,
                     on_table: TableHook | None = None) -> dict[str, Any]:
    """Capture schema and data; returns the manifest's database section (JSON-able, no row values).

    ``on_schema(tables, estimated_bytes)`` is called once every table's definition is read, before
    the first row; ``on_table(table)`` once per table when all its rows are captured and its chunks
    handed to ``writer`` (the table's manifest entry, final). Both are called from capture threads
    and must return quickly (a pipelined clone queues them for the preview's load)."""
    started = time.monotonic()
    workers = max(1, workers)
    main = connect(endpoint)
    conns: list[Connection] = []
    try:
        _execute(endpoint, main, "SET SESSION TRANSACTION READ ONLY")  # never a write, even by mistake
        infos = _guarded(endpoint, "reading the schema", lambda: describe(main, endpoint.database))
        # may refuse (PolicyError) before any row is copied; strict mode samples a few rows per table first
        policies = planner.plan([i.table for i in infos], partial(_sample, endpoint, main))
        missing = [i.table.name for i in infos if i.table.name not in policies]
        if missing:
            raise ConfigError("the sanitization planner returned no policy for some tables", problems=missing)
        unsafe = {i.table.name for i in infos if not i.mvcc and policies[i.table.name].rows != "none"}
        processes = _TransformProcesses.prepare(planner, [i.table for i in infos], policies)
        conns, consistency = _open_snapshot(endpoint, main, workers, lock_for_unsafe=bool(unsafe))
        locked = consistency != "single-connection"
        try:
            version = _guarded(endpoint, "reading the server version", lambda: _server_version(main))
            if unsafe and locked:
                # Tables without MVCC (MyISAM, Aria...) are read while writes are still frozen, first.
                tables_json, parts = _prepare(endpoint, conns[0], infos, policies, len(conns), version[1])
                tracker = _TableTracker(infos, tables_json, parts, on_schema, on_table)
                _run_parts(endpoint, conns, [p for p in parts if p.info.table.name in unsafe], writer, progress,
                           processes, tracker.part_done)
        finally:
            if locked:
                _execute(endpoint, main, "UNLOCK TABLES")
        if not (unsafe and locked):
            tables_json, parts = _prepare(endpoint, conns[0], infos, policies, len(conns), version[1])
            tracker = _TableTracker(infos, tables_json, parts, on_schema, on_table)
            if unsafe:
                consistency += ", non-transactional tables read without a lock"
        if progress:
            progress(PROGRESS_TASK, total=sum(p.estimate for p in parts))
        objects = _guarded(endpoint, "reading views, triggers, routines and events",
                           lambda: schema_objects(conns[0], endpoint.database))
        _run_parts(endpoint, conns, [p for p in parts if not (locked and p.info.table.name in unsafe)], writer,
                   progress, processes, tracker.part_done)
    finally:
        for conn in [*conns, main]:
            try:
                conn.close()
            except (pymysql.MySQLError, OSError):
                pass
    for part in parts:
        entry = tables_json[part.info.table.name]
        entry["chunks"].extend(part.chunks)
        entry["rows"] += part.rows
        entry["bytes"] += part.bytes
    tables = [tables_json[i.table.name] for i in infos]
    section: dict[str, Any] = {
        "format": FORMAT,
        "engine": version[1],
        "server_version": version[0],
        "database": endpoint.database,
        "consistency": consistency,
        "workers": len(conns),
        "tables": tables,
        **{k: v for k, v in objects.items() if k != "skipped"},
        "skipped": objects.get("skipped", []),
        "rows": sum(t["rows"] for t in tables),
        "bytes": sum(t["bytes"] for t in tables),
        "seconds": round(time.monotonic() - started, 3),
    }
    return section


SchemaHook = Callable[[list[dict[str, Any]], int], None]
TableHook = Callable[[dict[str, Any]], None]


class _TableTracker:
    """Tells ``on_table`` when every part of a table is captured (a pipelined clone loads it then)."""

    def __init__(self, infos: list[TableInfo], tables_json: Mapping[str, dict[str, Any]], parts: list[_Part],
                 on_schema: SchemaHook | None, on_table: TableHook | None) -> None:
        self.tables_json = tables_json
        self.on_table = on_table
        self.parts_of: dict[str, list[_Part]] = {}
        for part in parts:
            self.parts_of.setdefault(part.info.table.name, []).append(part)
        self.remaining = {name: len(table_parts) for name, table_parts in self.parts_of.items()}
        self.lock = threading.Lock()
        if on_schema is not None:
            on_schema([{**tables_json[i.table.name], "chunks": []} for i in infos], sum(p.estimate for p in parts))
        if on_table is not None:  # no rows to read (rows: none, an empty table): final already
            for info in infos:
                if info.table.name not in self.parts_of:
                    on_table(dict(tables_json[info.table.name]))

    def part_done(self, part: _Part) -> None:
        if self.on_table is None:
            return
        name = part.info.table.name
        with self.lock:
            self.remaining[name] -= 1
            if self.remaining[name]:
                return
        table_parts = self.parts_of[name]  # in key order, as the manifest lists the chunks
        self.on_table({**self.tables_json[name], "chunks": [c for p in table_parts for c in p.chunks],
                       "rows": sum(p.rows for p in table_parts), "bytes": sum(p.bytes for p in table_parts)})


def _guarded(endpoint: DbEndpoint, doing: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except pymysql.MySQLError as exc:
        raise source_error(exc, endpoint, doing) from exc


def _sample(endpoint: DbEndpoint, conn: Connection, table: Table, limit: int) -> list[Row]:
    return cast(list[Row], _guarded(endpoint, f"sampling table {table.name}", lambda: sample_table(conn, table, limit)))


def _server_version(conn: Connection) -> tuple[str, str]:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(cur.fetchone()[0])
    return version, "mariadb" if "mariadb" in version.lower() else "mysql"


def _open_snapshot(endpoint: DbEndpoint, main: Connection, workers: int, *,
                   lock_for_unsafe: bool = False) -> tuple[list[Connection], str]:
    """``workers`` connections sharing one consistent read-only snapshot, and how it was obtained.

    Unless "single-connection", ``main`` still holds the write freeze: the caller unlocks it.
    """
    conns = [connect(endpoint, streaming=True) for _ in range(workers)]
    try:
        for conn in conns:
            _execute(endpoint, conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                     f"SET SESSION group_concat_max_len = LEAST(@@max_allowed_packet, {MAX_BATCH_BYTES})",
                     "SET SESSION character_set_results = binary",
                     # A slow store (S3 backpressure) or a slow transform may pause reading a stream for
                     # minutes: the server must not drop the connection meanwhile (mydumper does the same).
                     f"SET SESSION net_write_timeout = {NET_TIMEOUT_SECONDS}",
                     # Our SQL literals use backslash escapes; a server default of NO_BACKSLASH_ESCAPES would break them.
                     "SET SESSION sql_mode = ''")
        if workers == 1 and not lock_for_unsafe:
            _start_snapshots(endpoint, conns)
            return conns, "single-connection"
        method = _freeze_writes(endpoint, main)
        if method is None:
            log.warning("no RELOAD or LOCK TABLES privilege on %s: reading with one connection", endpoint)
            for extra in conns[1:]:
                extra.close()
            conns = conns[:1]
            _start_snapshots(endpoint, conns)
            return conns, "single-connection"
        try:
            _start_snapshots(endpoint, conns)
        except BaseException:
            _execute(endpoint, main, "UNLOCK TABLES")
            raise
        return conns, method  # still frozen: the caller unlocks
    except BaseException:
        for conn in conns:
            conn.close()
        raise


def _freeze_writes(endpoint: DbEndpoint, main: Connection) -> str | None:
    _execute(endpoint, main, f"SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}")
    try:
        with main.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
        return "flush-tables-with-read-lock"
    except pymysql.MySQLError as exc:
        if error_code(exc) not in NO_PRIVILEGE_CODES:
            raise source_error(exc, endpoint, "FLUSH TABLES WITH READ LOCK") from exc
    try:
        with main.cursor() as cur:
            cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                        "AND TABLE_TYPE = 'BASE TABLE'")
            names = [r[0] for r in cur.fetchall()]
            if not names:
                return None
            cur.execute("LOCK TABLES " + ", ".join(f"{quote_name(n)} READ" for n in names))
        return "lock-tables-read"
    except pymysql.MySQLError as exc:
        if error_code(exc) not in NO_PRIVILEGE_CODES:
            raise source_error(exc, endpoint, "LOCK TABLES ... READ") from exc
    return None


def _start_snapshots(endpoint: DbEndpoint, conns: list[Connection]) -> None:
    for conn in conns:
        _execute(endpoint, conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


def _execute(endpoint: DbEndpoint, conn: Connection, *statements: str) -> None:
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    except pymysql.MySQLError as exc:
        raise source_error(exc, endpoint, statements[0].split(" ")[0].lower()) from exc


def _prepare(endpoint: DbEndpoint, conn: Connection, infos: list[TableInfo], policies: Mapping[str, TablePolicy],
             workers: int, engine: str) -> tuple[dict[str, dict[str, Any]], list[_Part]]:
    tables_json: dict[str, dict[str, Any]] = {}
    parts: list[_Part] = []
    for info in infos:
        table = info.table
        policy = policies[table.name]
        create = _guarded(endpoint, f"reading the definition of {table.name}",
                          partial(show_create_table, conn, table.name))
        create_sql, deferred = split_create_table(create, info.auto_increment_column)
        columns = table.data_columns
        tables_json[table.name] = {
            "name": table.name,
            "create": create_sql,
            "deferred": deferred,
            "columns": [c.name for c in columns],
            "bit_columns": [c.name for c in columns if c.data_type == "bit"],
            # Transformed rows are encoded as UTF-8: columns in other character sets are converted on load.
            "convert_columns": [c.name for c in columns if policy.transform is not None and not c.binary
                                and info.charsets.get(c.name) not in UTF8_CHARSETS
                                and info.charsets.get(c.name) is not None],
            "policy": policy.rule or ("copy" if policy.is_identity else "custom"),
            "rows_policy": policy.rows,
            "rows": 0,
            "bytes": 0,
            "chunks": [],
        }
        if policy.rows == "none":
            continue
        parts.extend(_split(endpoint, conn, info, policy, workers))
    for part in parts:
        part.linear_escape = engine == "mariadb"
    return tables_json, parts


def _split(endpoint: DbEndpoint, conn: Connection, info: TableInfo, policy: TablePolicy, workers: int) -> list[_Part]:
    table = info.table
    leading = table.column(table.primary_key[0]) if table.primary_key else None
    if leading is None or leading.data_type not in INTEGER_TYPES:
        return [_Part(info, policy, 0, None, table.data_bytes)]
    sql = f"SELECT MIN({quote_name(leading.name)}), MAX({quote_name(leading.name)}) FROM {quote_name(table.name)}"
    low, high = _guarded(endpoint, f"reading the key range of {table.name}", lambda: _fetch_one(conn, sql))
    if low is None:
        return []  # empty table
    low, high = int(low), int(high)
    count = 1
    if policy.transform is not None and table.rows_estimate > SPLIT_TYPED_ROWS and high > low:
        count = min(workers, high - low + 1)  # one per worker: each runs in its own process
    elif table.data_bytes > SPLIT_TABLE_BYTES and high > low:
        count = min(2 * workers, max(1, table.data_bytes // SPLIT_TABLE_BYTES), high - low + 1)
    span = (high - low + 1) // count
    parts = []
    for i in range(count):
        start = low + i * span
        end = high if i == count - 1 else start + span - 1
        parts.append(_Part(info, policy, i, (start, end), table.data_bytes // count))
    return parts


def _fetch_one(conn: Connection, sql: str, args: Any = None) -> tuple[Any, ...]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
        cur.fetchall()
    return row


def _run_parts(endpoint: DbEndpoint, conns: list[Connection], parts: list[_Part], writer: ChunkSink,
               progress: Progress | None, processes: _TransformProcesses | None = None,
               part_done: Callable[[_Part], None] | None = None) -> None:
    """Each connection drains the queue; the first failure stops everyone.

    Transformed tables first (their Python work is the critical path; the server renders the others
    while the GIL is busy), then the biggest first.
    """
    todo: queue.Queue[_Part] = queue.Queue()
    for part in sorted(parts, key=lambda p: (p.policy.transform is None, -p.estimate)):
        todo.put(part)
    failed = threading.Event()
    results: list[Future[None]] = []

    def work(conn: Connection, done: Future[None]) -> None:
        try:
            while not failed.is_set():
                try:
                    part = todo.get_nowait()
                except queue.Empty:
                    break
                _read_part(endpoint, conn, part, writer, progress, stop=failed, processes=processes)
                if part_done is not None:
                    part_done(part)
            done.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            failed.set()
            done.set_exception(exc)

    threads = []
    for conn in conns:
        done: Future[None] = Future()
        results.append(done)
        threads.append(threading.Thread(target=work, args=(conn, done), name="ck-capture", daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [e for e in (done.exception() for done in results) if e is not None]
    for error in sorted(errors, key=lambda e: isinstance(e, _Stopped)):
        raise error  # the first real failure, not a worker that stopped because of it


class _Stopped(Exception):
    """Another worker failed: this one stops at its next chunk."""


def _read_part(endpoint: DbEndpoint, conn: Connection, part: _Part, writer: ChunkSink,
               progress: Progress | None, *, stop: threading.Event | None = None,
               processes: _TransformProcesses | None = None) -> None:
    table = part.info.table

    def emit(chunk: bytes) -> None:
        if stop is not None and stop.is_set():
            raise _Stopped(f"capture of {table.name} stopped: another table failed")
        part.chunks.append(writer.put(chunk).to_json())
        if progress:
            progress(PROGRESS_TASK, advance=len(chunk))

    chunker = RowChunker(emit)
    try:
        if part.policy.transform is not None and processes is not None and processes.can_adopt(conn):
            processes.read_typed(conn, part, chunker, emit)
        elif part.policy.transform is not None:
            _read_typed(conn, table, part.policy, chunker, part.linear_escape, part.key_range)
        elif part.key_range is not None:
            _read_ranges(conn, table, part.policy, part.key_range, chunker, part.linear_escape)
        else:
            _read_stream(conn, table, part.policy, chunker, linear_escape=part.linear_escape)
        chunker.flush()
    except pymysql.MySQLError as exc:
        raise source_error(exc, endpoint, f"reading table {table.name}") from exc
    except ClonekitError:
        raise
    except (ValueError, TypeError) as exc:
        # A transform returned a value the codec cannot encode: name the table, never the value.
        raise SourceError(f"table {table.name}: a sanitized row could not be encoded ({type(exc).__name__})") from exc
    part.rows, part.bytes = chunker.rows, chunker.bytes
    log.debug("table %s: %d rows, %d bytes", table.name, part.rows, part.bytes)


def _where(policy: TablePolicy) -> str:
    return f"({policy.where})" if policy.where else ""


def _order_by(table: Table) -> str:
    return " ORDER BY " + ", ".join(quote_name(c) for c in table.primary_key) if table.primary_key else ""


def _read_ranges(conn: Connection, table: Table, policy: TablePolicy, key_range: tuple[int, int],
                 chunker: RowChunker, linear_escape: bool) -> None:
    """Server-rendered batches over ranges of the leading key column, sized adaptively to BATCH_BYTES."""
    for data, rows in _range_batches(conn, table, policy, key_range, row_sql(table, linear_escape),
                                     lambda condition: _read_stream(conn, table, policy, chunker, condition,
                                                                    linear_escape)):
        chunker.feed(data, rows)


def _range_batches(conn: Connection, table: Table, policy: TablePolicy, key_range: tuple[int, int], row_expr: str,
                   read_one_key: Callable[[str], None], batch_bytes: int | None = None) -> Iterator[tuple[bytes, int]]:
    """Whole rows (``row_expr`` renders one, ending in a newline) and their count, one GROUP_CONCAT
    per range of the leading key column. A single key whose rows render more than GROUP_CONCAT's
    limit is handed to ``read_one_key(condition)`` in its place in the order.

    The next range's query is sent before a batch is yielded: the server renders it while the
    caller transforms, hashes and stores this one (``_QueryAhead``)."""
    key = quote_name(table.primary_key[0])
    extra = f" AND {_where(policy)}" if policy.where else ""
    # The bounds are integers written into the text: no parameters, so a `%` in a rows condition stays one.
    head = (f"SELECT CAST(GROUP_CONCAT({row_expr} SEPARATOR '') AS BINARY), COUNT(*) "
            f"FROM {quote_name(table.name)} FORCE INDEX (PRIMARY) WHERE {key} BETWEEN ")
    batch_bytes = batch_bytes or BATCH_BYTES
    low, high = key_range
    bytes_per_key = max(1.0, table.data_bytes / max(1, high - low + 1))
    # Table statistics can be far off: start small, then size each range on what the last one gave.
    step = max(1, min(FIRST_RANGE_KEYS, int(batch_bytes / bytes_per_key)))
    at = low
    # GROUP_CONCAT cuts what exceeds its limit: a result shorter than the limit (less a character's
    # bytes) is whole, and its rows are the COUNT(*) (no scan of the batch in Python).
    limit = int(_fetch_one(conn, "SELECT @@SESSION.group_concat_max_len")[0]) - 4
    ahead = _QueryAhead(conn)

    def ask() -> int:
        """Send the query of the range from ``at``, ``step`` keys long; its last key."""
        last = min(high, at + step - 1)
        ahead.send(f"{head}{int(at)} AND {int(last)}{extra}")
        return last

    try:
        while at <= high:
            if not ahead.in_flight:
                end = ask()
            data, count = ahead.receive()
            data = data or b""
            count = int(count or 0)
            if len(data) >= limit and data.count(b"\n") != count:  # GROUP_CONCAT hit its limit: smaller ranges
                if end == at:
                    read_one_key(f"{key} = {int(at)}")
                    at += 1
                    continue
                step = max(1, (end - at + 1) // 4)
                continue
            span = end - at + 1
            at = end + 1
            if not data:
                step = min(step * 4, 1 << 62)
            else:
                step = max(1, min(step * 4, int(span * batch_bytes / len(data))))
            if at <= high:
                end = ask()
            yield data, count
    finally:
        ahead.settle()


class _QueryAhead:
    """One query in flight on a connection while the caller works on the last result.

    pymysql's ``query`` sends a query and waits for its result; here the two halves are apart
    (its own ``_execute_command`` and ``_read_query_result``), so the server renders the next
    batch while this side is busy with the last one. The connection takes no other query while
    one is in flight: ``settle`` reads what is left (a caller that stopped early)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.in_flight = False

    def send(self, sql: str) -> None:
        assert not self.in_flight, "one query in flight at a time"
        self._conn._execute_command(COMMAND.COM_QUERY, sql)
        self.in_flight = True

    def receive(self) -> tuple[Any, ...]:
        """The first row of the query in flight."""
        self.in_flight = False
        self._conn._read_query_result()
        rows = self._conn._result.rows if self._conn._result is not None else None
        if not rows:
            raise pymysql.err.InternalError(0, "a range query returned no row")
        return cast(tuple[Any, ...], rows[0])

    def settle(self) -> None:
        if self.in_flight:
            try:
                self.receive()
            except (pymysql.MySQLError, OSError):
                pass  # the caller's own error is the one to report; a dead connection fails its next use


def _read_stream(conn: Connection, table: Table, policy: TablePolicy, chunker: RowChunker,
                 condition: str = "", linear_escape: bool = True) -> None:
    """Server-rendered rows one by one (no integer key to range over), in key order when there is one."""
    for data in _streamed(conn, table, policy, f"CAST({row_sql(table, linear_escape)} AS BINARY)", condition,
                          STREAM_FEED_BYTES):
        chunker.feed(data)


def _streamed(conn: Connection, table: Table, policy: TablePolicy, row_expr: str, condition: str,
              batch_bytes: int) -> Iterator[bytes]:
    """The rows ``row_expr`` renders (each ending in a newline), one query streamed row by row,
    joined into batches of about ``batch_bytes``."""
    conditions = [c for c in (condition, _where(policy)) if c]
    where = " WHERE " + " AND ".join(conditions) if conditions else ""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {row_expr} FROM {quote_name(table.name)}{where}{_order_by(table)}")
        lines: list[bytes] = []
        size = 0
        for (line,) in cur:
            lines.append(line)
            size += len(line)
            if size >= batch_bytes:
                yield b"".join(lines)
                lines, size = [], 0
        if lines:
            yield b"".join(lines)


def _read_typed(conn: Connection, table: Table, policy: TablePolicy, chunker: RowChunker,
                linear_escape: bool = True, key_range: tuple[int, int] | None = None) -> None:
    """Rows through the policy's transform (the sanitizing path).

    The server renders each row as for identity tables, in batches of rows per key range when the
    table has an integer key, as on the identity path; ``_RowTransformer.batch`` splits each row,
    decodes only the columns the transform reads (``policy.reads``), calls the transform and
    re-encodes only the values it changed (the others keep their bytes).
    """
    assert policy.transform is not None
    columns = table.data_columns
    rows = _RowTransformer(policy, columns)
    if key_range is None:
        _read_typed_stream(conn, table, policy, chunker, rows, "", linear_escape)
        return
    for data, _ in _range_batches(conn, table, policy, key_range, _typed_line(table, linear_escape),
                                  lambda condition: _read_typed_stream(conn, table, policy, chunker, rows, condition,
                                                                       linear_escape), TYPED_BATCH_BYTES):
        chunker.feed_runs(*rows.batch(data))


def _typed_line(table: Table, linear_escape: bool) -> str:
    """The sanitizing path's row with its newline."""
    return f"CONCAT({typed_line_sql(table.data_columns, linear_escape)}, '\\n')"


def _read_typed_stream(conn: Connection, table: Table, policy: TablePolicy, chunker: RowChunker,
                       rows: _RowTransformer, condition: str, linear_escape: bool) -> None:
    """Typed rows one by one (no integer key to range over, or one key with huge rows)."""
    for data in _streamed(conn, table, policy, _typed_line(table, linear_escape), condition, TYPED_BATCH_BYTES):
        chunker.feed_runs(*rows.batch(data))


# The compiled row loop (clonekit/_speedups.c), or None: built without a C compiler, or turned off.
compiled = speedups


# How the compiled loop applies a column's value function field by field (clonekit/_speedups.c,
# span_row): called on the decoded value, or scrub's gate first on the field's bytes.
SPAN_CALL, SPAN_SCRUB = 1, 2


def value_functions(transform: Any) -> tuple[tuple[int, Callable[[Any], Any]], ...] | None:
    """(position, value function) of each column a row function changes, when it is the compiled
    ``transform_plain`` without `when` choosers that planner.compile_transform builds (one function
    on each non-NULL value of those columns, nothing else): its spec's pairs. None for any other
    function, a wrapper of one included, so a transform wrapped or replaced later runs itself."""
    if (compiled is None or not isinstance(transform, partial) or transform.func is not compiled.transform_plain
            or transform.keywords or len(transform.args) != 1 or len(transform.args[0]) != 4):
        return None
    pairs = tuple(transform.args[0][0])
    return pairs if len({pos for pos, _ in pairs}) == len(pairs) else None  # one function per column


def _span_actions(policy: TablePolicy, decoders: tuple[tuple[int, Any, bool], ...]) -> tuple[Any, ...] | None:
    """Per column None (not read) or (SPAN_CALL or SPAN_SCRUB, value function, limit), when the
    policy's transform is its value functions applied one by one (``value_functions``) on text and
    blob columns only; None otherwise (every row then goes through the whole-row transform)."""
    pairs = value_functions(policy.transform)
    if pairs is None or compiled is None:
        return None
    fns = dict(pairs)
    spans: list[Any] = []
    for i, (mode, _, _) in enumerate(decoders):
        fn = fns.pop(i, None)
        if fn is None:
            if mode not in (DECODE_KEEP, DECODE_TEXT, DECODE_BLOB):
                return None  # decoding it may fail (an integer, a Python decoder): the whole-row loop says how
            spans.append(None)  # read by no function (`keep`): its bytes stay
        elif mode not in (DECODE_TEXT, DECODE_BLOB):
            return None
        elif (mode == DECODE_TEXT and isinstance(fn, partial) and fn.func is compiled.scrub_gate and len(fn.args) == 2
                and isinstance(fn.args[1], int)):
            spans.append((SPAN_SCRUB, fn, fn.args[1]))
        else:
            spans.append((SPAN_CALL, fn, -1))
    return None if fns else tuple(spans)


class _RowTransformer:
    """A batch of tsv-1 lines in, the transformed lines out; decodes only the columns the transform
    reads and re-encodes only the values it changed (the others keep their bytes).

    ``batch`` runs the compiled loop when it was built, ``lines_python`` otherwise: the same split,
    the same values handed to the transform, the same bytes and cuts out
    (tests/db/test_typed_lines_compiled.py)."""

    def __init__(self, policy: TablePolicy, columns: tuple[Column, ...]) -> None:
        assert policy.transform is not None
        self.transform = policy.transform
        self.columns = tuple(columns)
        reads = policy.reads
        self.decoders = [(i, field_decoder(c)) for i, c in enumerate(columns)
                         if reads is None or c.name.lower() in reads]
        decoder_of = dict(self.decoders)
        # per column: how the compiled loop decodes it, the Python decoder, whether it encodes it itself
        self.compiled_decoders = tuple(
            (DECODE_KEEP if i not in decoder_of else decode_mode(c), decoder_of.get(i), c.data_type != "bit")
            for i, c in enumerate(columns))
        self.spans = _span_actions(policy, self.compiled_decoders)

    def batch(self, data: bytes) -> tuple[bytes, list[int], int]:
        """``data``: whole lines, each ending with a newline. Returns the transformed lines joined,
        the end offsets of the rows after which a chunk may end (``python_cut``), and the row count."""
        if compiled is not None and self.columns:
            return cast(tuple[bytes, list[int], int], compiled.transform_batch(
                data, self.transform, self.compiled_decoders, value_field, self.columns, CUT_SCALE, self.spans))
        if data and not data.endswith(b"\n"):
            raise ValueError("a batch ends inside a row")
        out, cuts, at = [], [], 0
        for line in self.lines_python(data.split(b"\n")[:-1]):
            out.append(line)
            at += len(line)
            if python_cut(line):
                cuts.append(at)
        return b"".join(out), cuts, len(out)

    def lines_python(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """Each line (without its newline) transformed, with its newline."""
        transform, columns, decoders = self.transform, self.columns, self.decoders
        width = len(columns)
        for line in lines:
            fields = line.split(b"\t")
            if len(fields) != width:
                raise ValueError(f"a row has {len(fields)} fields, not {width}")
            values: list[object] = list(fields)
            for i, decode in decoders:
                values[i] = decode(fields[i])
            row = tuple(values)
            new = transform(row)
            if new is row:
                yield line + b"\n"
                continue
            for i in range(width):
                value = new[i]
                if value is not row[i]:
                    fields[i] = value_field(value, columns[i])
            yield b"\t".join(fields) + b"\n"


# -- transformed parts in a worker process ----------------------------------------------------------
#
# The worker gets a duplicate of the capture thread's connection socket (inside the shared
# snapshot), the planner (it plans again and gets the same transform) and the write end of a pipe;
# it reads and transforms its part and sends finished chunks back; the thread stores them. The
# thread does not touch its connection until the worker is done. Workers come from a fork server
# (clonekit.db.workers): forking this process while upload, lock-refresh and tunnel threads hold
# locks could leave the child waiting forever on one of them.

_FRAME = struct.Struct("!cQ")
_CONNECTION_STATE_SKIPPED = frozenset({"_sock", "_rfile", "_result", "password", "ctx"})


class _TransformProcesses:
    """How to run transformed parts in worker processes; None from prepare() when they cannot be."""

    def __init__(self, planner: PolicyPlanner, tables: list[Table]) -> None:
        self.planner = planner
        self.tables = tables
        self.server = ForkServer.get()

    @classmethod
    def prepare(cls, planner: PolicyPlanner, tables: list[Table],
                policies: Mapping[str, TablePolicy]) -> _TransformProcesses | None:
        if not TRANSFORM_PROCESSES or not any(p.transform is not None for p in policies.values()):
            return None
        try:
            blob = pickle.dumps(planner)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            log.info("transforms run in the capture threads: the planner cannot be sent to a worker process (%s)",
                     type(exc).__name__)
            return None
        if b"__main__" in blob:  # a class of the program's script: a worker could not import it
            log.info("transforms run in the capture threads: the planner is defined in the main script")
            return None
        return cls(planner, tables)

    @staticmethod
    def can_adopt(conn: Connection) -> bool:
        """A plain TCP or Unix socket can be handed over; a TLS session cannot."""
        return isinstance(conn._sock, socket.socket) and not isinstance(conn._sock, ssl.SSLSocket)

    def read_typed(self, conn: Connection, part: _Part, chunker: RowChunker, emit: Callable[[bytes], None]) -> None:
        table = part.info.table
        state = {k: v for k, v in vars(conn).items() if k not in _CONNECTION_STATE_SKIPPED}
        read_fd, write_fd = os.pipe()
        _widen_pipe(read_fd)
        try:
            self.server.start(_transform_worker, [conn._sock.fileno(), write_fd],
                              (state, self.planner, self.tables, table, part.linear_escape, part.key_range))
        finally:
            os.close(write_fd)
        finished: dict[str, Any] | None = None
        failure: dict[str, Any] | None = None
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as incoming:
            while True:
                header = incoming.read(_FRAME.size)
                if len(header) < _FRAME.size:
                    break
                kind, size = _FRAME.unpack(header)
                payload = incoming.read(size)
                if kind == b"C":
                    emit(payload)  # may raise (another table failed): closing the pipe stops the worker
                elif kind == b"E":
                    finished = json.loads(payload)
                elif kind == b"X":
                    failure = json.loads(payload)
        if failure is not None:
            raise _rebuild_error(failure)
        if finished is None:
            raise SourceError(f"the process reading table {table.name} ended without finishing")
        chunker.rows += int(finished["rows"])
        chunker.bytes += int(finished["bytes"])


def _transform_worker(sock_fd: int, out_fd: int, state: dict[str, Any], planner: PolicyPlanner,
                      tables: list[Table], table: Table, linear_escape: bool,
                      key_range: tuple[int, int] | None) -> None:
    """In the worker process: read one transformed part through the handed-over connection."""
    logging.getLogger().addHandler(logging.NullHandler())  # failures go back to the parent, not to stderr
    try:
        try:
            sock = socket.socket(fileno=sock_fd)
            conn = Connection.__new__(Connection)
            vars(conn).update(state)
            conn._sock, conn._rfile, conn._result = sock, sock.makefile("rb"), None
            conn._current_timeout = -1.0  # set the socket's timeout on first use
            policy = planner.plan(tables)[table.name]

            def send(parts: list[bytes | memoryview], size: int) -> None:
                write_all(out_fd, [_FRAME.pack(b"C", size), *parts])

            chunker = RowChunker(emit_parts=send)
            _read_typed(conn, table, policy, chunker, linear_escape, key_range)
            chunker.flush()
            done = json.dumps({"rows": chunker.rows, "bytes": chunker.bytes}).encode()
            write_all(out_fd, [_FRAME.pack(b"E", len(done)), done])
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
            report = json.dumps(_error_report(exc)).encode()
            write_all(out_fd, [_FRAME.pack(b"X", len(report)), report])
    finally:
        os.close(out_fd)


# A pipe of 1 MiB (Linux's default 64 KiB) takes a 2 MiB chunk in a few writes and wake-ups
# instead of thirty-odd; each chunk's frame goes in as its pieces (fdio.write_all: no join).
_PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer where the system allows it (Linux); the default otherwise."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # over the user's pipe-buffer quota: the default size works
            fcntl.fcntl(fd, set_size, _PIPE_BYTES)


def _error_report(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, pymysql.MySQLError):
        return {"kind": "mysql", "args": [a if isinstance(a, int | str) else str(a) for a in exc.args]}
    if isinstance(exc, ClonekitError):
        return {"kind": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    # Not a clonekit error: name its type only (a value could hide in the message).
    return {"kind": "other", "type": type(exc).__name__}


def _rebuild_error(report: dict[str, Any]) -> BaseException:
    from .. import errors

    kind = report.get("kind")
    if kind == "mysql":
        args = report.get("args") or [0, ""]
        return pymysql.err.OperationalError(*args)
    cls = getattr(errors, str(kind), None)
    if isinstance(cls, type) and issubclass(cls, ClonekitError):
        try:
            return cls(report.get("message", ""), hint=report.get("hint"))
        except TypeError:
            return SourceError(report.get("message", ""), hint=report.get("hint"))
    return SourceError(f"a transform failed ({report.get('type', 'error')})")
