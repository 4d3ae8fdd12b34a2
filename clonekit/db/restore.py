"""Restore a captured database section into an EMPTY target database, as fast as the server loads.

Order: tables without secondary indexes or foreign keys → parallel ``LOAD DATA LOCAL INFILE``
(chunks streamed from the store through a pipe, never a temp file; with ``CLONEKIT_LOAD=bind`` the
rows are bound to prepared multi-row INSERTs instead, ``bind``), each table's secondary
indexes (one ALTER) as soon as its rows are in, while the other threads load on → foreign keys →
views → triggers → routines → events.
Every table's loaded row count is checked against the manifest, and a load with warnings fails.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import pymysql
from pymysql.connections import Connection

from .._compiled import speedups
from ..errors import ClonekitError, IntegrityError, PreviewError
from ..files.restore import ChunkSource
from . import bind
from .codec import FORMAT, load_data_sql
from .connection import connect, quote_name, target_error
from .endpoint import DbEndpoint
from .introspect import FOREIGN_KEY
from .rewrite import Replacement, StreamRewrite
from .target import skipped, text_tables

T = TypeVar("T")

log = logging.getLogger("clonekit.db.restore")

LOAD_GROUP_BYTES = 64 << 20  # plain bytes per load (one LOAD DATA statement, or bound INSERTs)
# Rows bound to prepared INSERTs (db.bind: the server copies each value instead of reading
# LOAD DATA text byte by byte; needs the compiled extension), about this many bytes per
# statement: a nearby server's restores (``binds_rows``), or every one with CLONEKIT_LOAD=bind.
BIND_BATCH_BYTES = 1 << 20
BIND_PACKET_MAX = 8 << 20  # bytes of values per statement, and at most half the server's max_allowed_packet
LOAD_MODE = os.environ.get("CLONEKIT_LOAD", "auto")  # auto | bind | data
SESSION_SQL: tuple[str, ...] = (
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
    # unique_checks stays on. With it and foreign_key_checks both off, MariaDB 10.6+ loads an empty
    # table as one table-locked bulk insert, which cost its server more: a LOAD DATA restore took
    # 3-16 s less server CPU (of 43-69 s) with it on, in each of 4 alternated pairs
    # (docs/benchmarks.md). The secondary indexes it would spare are not there yet.
    "SET SESSION foreign_key_checks = 0",
    # LOAD DATA LOCAL waits for chunks fetched from the store: a slow S3 read must not time out the load.
    "SET SESSION net_read_timeout = 3600",
)
PROGRESS_TASK = "database"
# Chunks each load reads ahead in a pipelined clone (the capture's buffers are in memory
# meanwhile); else the store's default.
PIPELINED_READ_AHEAD_BYTES = 6 << 20
POLL_SECONDS = 0.2  # a load thread waiting for the next captured table checks this often for a failure


class Progress(Protocol):
    """The project's progress callback: ``progress(task, advance=bytes, total=bytes)``."""

    def __call__(self, task: str, advance: int = 0, total: int | None = None) -> None: ...


@dataclass(frozen=True)
class RestoreStats:
    tables: int
    rows: int
    bytes: int
    seconds: float
    load_seconds: float  # the rows, with the secondary indexes built as each table's rows are in
    index_seconds: float  # after the last row: the indexes left (empty tables) and the foreign keys
    objects: int  # views, triggers, routines and events created
    rewritten: int = 0  # values ``replacements`` changed on the way in

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Load:
    table: Mapping[str, Any]
    chunk_ids: tuple[str, ...]
    size: int
    rewrite_fields: frozenset[int] = frozenset()  # the text columns ``previews.replace`` applies to


class TableFeed(Protocol):
    """A database section as it is being captured (a pipelined clone, ``clonekit.pipeline``): the
    tables' definitions first, then each table once its rows are captured and its chunks stored."""

    def schema(self) -> tuple[list[Mapping[str, Any]], int]: ...  # every table (no rows yet), bytes expected
    def tables(self) -> Iterator[Mapping[str, Any]]: ...  # finished tables, in the order they finish
    def section(self) -> Mapping[str, Any]: ...  # the whole section, once captured (views, triggers...)


def binds_rows(nearby: bool) -> bool:
    """Whether a restore sends its rows as the parameters of prepared INSERTs instead of LOAD DATA.

    By default (``CLONEKIT_LOAD=auto``) when the server is ``nearby`` (on this machine) and the
    compiled extension is there: 5-21% less server CPU, and the cold clone of the reference site
    3-8 s faster in 7 of 8 alternated pairs (docs/benchmarks.md). Each statement waits for its
    answer where LOAD DATA streams, so through a remote engine's tunnel each would pay the link's
    latency: LOAD DATA there. ``CLONEKIT_LOAD=bind`` or ``data`` chooses for every restore."""
    if speedups is None or LOAD_MODE == "data":
        return False
    return LOAD_MODE == "bind" or nearby


def restore_database(repo: ChunkSource, section: Mapping[str, Any], target: DbEndpoint, *, workers: int = 2,
                     progress: Progress | None = None, replacements: Sequence[Replacement] = (),
                     replace_skip: Sequence[str] = (), nearby: bool = False) -> RestoreStats:
    """Create every table of ``section`` in the empty ``target`` database and load it.

    With ``replacements`` (``previews.replace``), the text columns of every table but the
    ``replace_skip`` ones are rewritten as the rows stream in (``StreamRewrite``): the result of
    ``target.rewrite_urls`` after the load, without reading or updating any table again.
    ``nearby``: the server runs on this machine (``binds_rows``)."""
    if section.get("format") != FORMAT:
        raise IntegrityError(f"database section format {section.get('format')!r} is not {FORMAT!r}: "
                             "this clonekit cannot restore it")
    tables = list(section.get("tables", []))
    return _restore(repo, target, tables, tables, lambda: section, workers, progress, replacements, replace_skip,
                    bind_rows=binds_rows(nearby))


def restore_database_feed(repo: ChunkSource, feed: TableFeed, target: DbEndpoint, *, workers: int = 2,
                          progress: Progress | None = None, replacements: Sequence[Replacement] = (),
                          replace_skip: Sequence[str] = (), rows_loaded: Callable[[], None] | None = None,
                          nearby: bool = False) -> RestoreStats:
    """``restore_database`` of a section still being captured: the tables are created as soon as
    their definitions are read, each table is loaded as soon as it is captured and its secondary
    indexes built once its rows are in, the foreign keys and schema objects once every table is
    loaded (the capture is done); ``rows_loaded()`` is called then (the preview fills its files
    meanwhile)."""
    tables, expected = feed.schema()
    if progress:
        progress(PROGRESS_TASK, total=expected)
    return _restore(repo, target, list(tables), feed.tables(), feed.section, workers, progress, replacements,
                    replace_skip, rows_loaded, PIPELINED_READ_AHEAD_BYTES, bind_rows=binds_rows(nearby))


def _restore(repo: ChunkSource, target: DbEndpoint, tables: list[Mapping[str, Any]],
             finished: Iterable[Mapping[str, Any]], whole_section: Callable[[], Mapping[str, Any]], workers: int,
             progress: Progress | None, replacements: Sequence[Replacement], replace_skip: Sequence[str],
             rows_loaded: Callable[[], None] | None = None, read_ahead: int | None = None, *,
             bind_rows: bool = False) -> RestoreStats:
    started = time.monotonic()
    workers = max(1, workers)
    main = _open(target)
    try:
        _require_empty(target, main)
        _require_local_infile(target, main)
        for table in tables:
            _run(target, main, f"creating table {table['name']}", table["create"])
        rewrite = StreamRewrite(replacements) if replacements else None
        fields = _rewrite_fields(target, main, tables, replace_skip) if rewrite else {}
        load_started = time.monotonic()
        loaded, final = _load_all(repo, target, finished, workers, progress, rewrite, fields, read_ahead, bind_rows)
        load_seconds = time.monotonic() - load_started
        for table in tables:
            entry = final.get(table["name"])
            if entry is None:
                raise IntegrityError(f"table {table['name']}: its rows never arrived from the capture")
            if loaded.get(table["name"], 0) != int(entry["rows"]):
                raise IntegrityError(
                    f"table {table['name']}: {loaded.get(table['name'], 0)} rows loaded, the snapshot has {entry['rows']}")
        tables = [final[t["name"]] for t in tables]
        if rows_loaded is not None:
            rows_loaded()
        index_started = time.monotonic()
        _add_indexes(target, [t for t in tables if not t.get("chunks")], workers)  # no rows: no load built them
        for table in tables:
            foreign = [c for c in table.get("deferred", []) if FOREIGN_KEY.search(c)]
            if foreign:
                _run(target, main, f"adding foreign keys to {table['name']}",
                     f"ALTER TABLE {quote_name(table['name'])} " + ", ".join(foreign))
        index_seconds = time.monotonic() - index_started
        objects = _create_objects(target, main, whole_section())
    finally:
        main.close()
    return RestoreStats(
        tables=len(tables),
        rows=sum(int(t["rows"]) for t in tables),
        bytes=sum(int(t["bytes"]) for t in tables),
        seconds=round(time.monotonic() - started, 3),
        load_seconds=round(load_seconds, 3),
        index_seconds=round(index_seconds, 3),
        objects=objects,
        rewritten=rewrite.changed if rewrite else 0,
    )


def _rewrite_fields(target: DbEndpoint, conn: Connection, tables: list[Mapping[str, Any]],
                    skip: Sequence[str]) -> dict[str, frozenset[int]]:
    """Per table, the positions in its loaded ``columns`` of the text columns (the created
    tables' own types: what ``rewrite_urls`` would rewrite), ``skip`` tables left out."""
    try:
        with conn.cursor() as cur:
            text = {name: set(columns) for name, columns, _key in text_tables(cur, target.database)}
    except pymysql.MySQLError as exc:
        raise target_error(exc, target, "reading the created tables' columns") from exc
    return {t["name"]: frozenset(i for i, c in enumerate(t["columns"]) if c in text.get(t["name"], ()))
            for t in tables if not skipped(t["name"], skip)}


def _open(target: DbEndpoint) -> Connection:
    conn = connect(target, local_infile=True, as_target=True)
    for statement in SESSION_SQL:
        _run(target, conn, "preparing the session", statement)
    return conn


def _run(target: DbEndpoint, conn: Connection, doing: str, sql: str, args: Any = None) -> Any:
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    except pymysql.MySQLError as exc:
        raise target_error(exc, target, doing) from exc


def _require_empty(target: DbEndpoint, conn: Connection) -> None:
    rows = _run(target, conn, "checking that the database is empty",
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    if int(rows[0][0]):
        raise PreviewError(f"restore target {target} is not empty: restore only creates tables in an empty database",
                           hint="drop and recreate the database, or restore into a new one")


def _require_local_infile(target: DbEndpoint, conn: Connection) -> None:
    """LOAD DATA LOCAL is how rows are loaded: switch it on when off (MySQL 8's default) or say how."""
    if int(_run(target, conn, "reading local_infile", "SELECT @@GLOBAL.local_infile")[0][0]):
        return
    try:
        with conn.cursor() as cur:
            cur.execute("SET GLOBAL local_infile = 1")
    except pymysql.MySQLError as exc:
        raise PreviewError(f"restore target {target} refuses LOAD DATA LOCAL INFILE (local_infile is OFF)",
                           hint="start the preview database with --local-infile=1, or restore as a user "
                                "allowed to SET GLOBAL") from exc


def _loads_of(table: Mapping[str, Any], fields: Mapping[str, frozenset[int]]) -> Iterator[_Load]:
    """A table's chunks in groups of about LOAD_GROUP_BYTES, one LOAD DATA statement each."""
    group: list[str] = []
    size = 0
    rewrite_fields = fields.get(table["name"], frozenset())
    for ref in table.get("chunks", []):
        group.append(ref["id"])
        size += int(ref["size"])
        if size >= LOAD_GROUP_BYTES:
            yield _Load(table, tuple(group), size, rewrite_fields)
            group, size = [], 0
    if group:
        yield _Load(table, tuple(group), size, rewrite_fields)


def _load_all(repo: ChunkSource, target: DbEndpoint, tables: Iterable[Mapping[str, Any]], workers: int,
              progress: Progress | None, rewrite: StreamRewrite | None = None,
              fields: Mapping[str, frozenset[int]] | None = None,
              read_ahead: int | None = None,
              bind_rows: bool = False) -> tuple[dict[str, int], dict[str, Mapping[str, Any]]]:
    """Load every table's rows; returns the rows loaded per table and the tables as loaded (by name).

    ``tables`` is a list (a stored snapshot: every load known, the biggest first) or an iterator
    of tables as a capture finishes them (a pipelined clone: each loaded in the order it comes).
    The thread that loads a table's last rows builds its secondary indexes at once, while the
    others go on loading (as myloader does): the builds of the early tables overlap the loads and
    the capture of the later ones instead of all waiting for the last row. (A table without rows
    has no load: the caller builds its indexes.)"""
    final: dict[str, Mapping[str, Any]] = {}
    remaining: dict[str, int] = {}  # a table's loads not done yet
    lock = threading.Lock()
    jobs: Iterable[_Load]
    if isinstance(tables, list):
        loads = [load for table in tables for load in _loads_of(table, fields or {})]
        final = {t["name"]: t for t in tables}
        remaining.update(Counter(load.table["name"] for load in loads))
        if progress:
            progress(PROGRESS_TASK, total=sum(load.size for load in loads))
        jobs = sorted(loads, key=lambda x: -x.size)
    else:
        def arriving() -> Iterator[_Load]:
            for table in tables:
                table_loads = list(_loads_of(table, fields or {}))
                with lock:
                    final[table["name"]] = table
                    remaining[table["name"]] = len(table_loads)
                yield from table_loads

        jobs = arriving()
    counts: dict[str, int] = {}

    def load_group(conn: Connection, load: _Load) -> None:
        started = time.monotonic()
        rows = _load_one(repo, target, conn, load, rewrite, read_ahead, bind_rows)
        name = load.table["name"]
        log.debug("table %s: %d rows (%d bytes) loaded in %.2f s", name, rows, load.size, time.monotonic() - started)
        with lock:
            counts[name] = counts.get(name, 0) + rows
            remaining[name] -= 1
            last = remaining[name] == 0
        if progress:
            progress(PROGRESS_TASK, advance=load.size)
        if last:
            started = time.monotonic()
            _add_table_indexes(target, conn, load.table)
            log.debug("table %s: indexes built in %.2f s", name, time.monotonic() - started)

    _drain_in_threads(target, jobs, load_group, workers)
    return counts, final


def _drain_in_threads(target: DbEndpoint, jobs: Iterable[T], handle: Callable[[Connection, T], None], workers: int) -> None:
    """Run ``handle(conn, job)`` for every job on up to ``workers`` threads, one connection each,
    in the caller's order (a list: biggest first); the first failure stops the others and is raised.
    Jobs that are not a list arrive while the others run: a thread takes them as they come."""
    if isinstance(jobs, list) and not jobs:
        return
    todo: queue.Queue[T | None] = queue.Queue()
    failed = threading.Event()
    producer_error: list[BaseException] = []
    count = min(workers, len(jobs)) if isinstance(jobs, list) else workers

    def produce() -> None:
        try:
            for job in jobs:
                if failed.is_set():
                    break
                todo.put(job)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            producer_error.append(exc)
            failed.set()
        finally:
            for _ in range(count):
                todo.put(None)

    def work(done: Future[None]) -> None:
        try:
            conn = _open(target)
            try:
                while not failed.is_set():
                    try:
                        job = todo.get(timeout=POLL_SECONDS)
                    except queue.Empty:
                        continue
                    if job is None:
                        break
                    handle(conn, job)
            finally:
                conn.close()
            done.set_result(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            failed.set()
            done.set_exception(exc)

    if isinstance(jobs, list):
        produce()
    else:
        threading.Thread(target=produce, name="ck-restore-feed", daemon=True).start()
    futures: list[Future[None]] = [Future() for _ in range(count)]
    threads = [threading.Thread(target=work, args=(f,), name="ck-restore", daemon=True) for f in futures]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if producer_error:
        raise producer_error[0]
    for future in futures:
        future.result()


def _load_one(repo: ChunkSource, target: DbEndpoint, conn: Connection, load: _Load,
              rewrite: StreamRewrite | None = None, read_ahead: int | None = None, bind_rows: bool = False) -> int:
    """One load group's rows into its table: one LOAD DATA, or bound INSERTs (``_bind``)."""
    table = load.table
    rewritten = [0]

    def chunks() -> Iterator[bytes]:
        ahead = {} if read_ahead is None else {"read_ahead_bytes": read_ahead}
        for data in repo.iter_chunks(load.chunk_ids, workers=2, **ahead):
            if rewrite is not None:
                data, changed = rewrite.chunk(data, load.rewrite_fields)
                rewritten[0] += changed
            yield data

    rows, warning_codes = (_bind(target, conn, table, chunks()) if bind_rows
                           else _load_data(target, conn, table, chunks()))
    if warning_codes and rewritten[0]:
        # A rewritten value is longer than the stored one: name that, not a damaged snapshot.
        raise PreviewError(f"table {table['name']}: a value previews.replace rewrote no longer fits its column "
                           f"(warning codes {sorted(set(warning_codes))})",
                           hint="use a shorter preview URL (previews.url), or add the table to previews.replace_skip")
    if warning_codes:
        raise IntegrityError(f"table {table['name']}: the server changed values while loading them "
                             f"(warning codes {sorted(set(warning_codes))}): the restored data would not be exact")
    return rows


def _warning_codes(cur: Any) -> list[int]:
    cur.execute("SHOW WARNINGS LIMIT 5")
    return [int(r[1]) for r in cur.fetchall()] or [0]


def _load_data(target: DbEndpoint, conn: Connection, table: Mapping[str, Any],
               data: Iterator[bytes]) -> tuple[int, list[int]]:
    """One LOAD DATA statement fed ``data`` through a pipe by a thread: (rows, warning codes)."""
    sql, _ = load_data_sql(table["name"], table["columns"], table.get("bit_columns", ()),
                           table.get("convert_columns", ()))
    read_fd, write_fd = os.pipe()
    feed_error: list[BaseException] = []

    def feed() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
                for piece in data:
                    out.write(piece)
        except BrokenPipeError:
            pass  # the reader stopped first; its error is the one to report
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            feed_error.append(exc)

    feeder = threading.Thread(target=feed, name="ck-restore-feed", daemon=True)
    feeder.start()
    warning_codes: list[int] = []
    try:
        with conn.cursor() as cur:
            cur.execute(sql, (f"/dev/fd/{read_fd}",))
            rows = cur.rowcount
            if cur.warning_count:
                warning_codes = _warning_codes(cur)
    except pymysql.MySQLError as exc:
        raise target_error(exc, target, f"loading table {table['name']}") from exc
    finally:
        os.close(read_fd)
        feeder.join()
    if feed_error:
        _raise_read_error(table, feed_error[0])
    return int(rows), warning_codes


def _raise_read_error(table: Mapping[str, Any], error: BaseException) -> None:
    if isinstance(error, ClonekitError):
        raise error
    raise PreviewError(f"reading the snapshot data of table {table['name']} failed: {error}") from error


class _Statements:
    """A connection's prepared INSERTs of the table it loads, by rows bound (those of the table
    before are closed when another table comes: the server keeps them until then), and the bytes
    of values a statement may carry there."""

    def __init__(self, conn: Connection) -> None:
        self.table = ""
        self.by_rows: dict[int, bind.Statement] = {}
        with conn.cursor() as cur:
            cur.execute("SELECT @@max_allowed_packet")
            self.limit = min(BIND_PACKET_MAX, int(cur.fetchone()[0]) // 2)

    def get(self, conn: Connection, table: Mapping[str, Any], rows: int) -> bind.Statement:
        if table["name"] != self.table:
            for statement in self.by_rows.values():
                bind.close(conn, statement)
            self.table, self.by_rows = table["name"], {}
        if rows not in self.by_rows:
            self.by_rows[rows] = bind.prepare(conn, bind.insert_sql(
                table["name"], table["columns"], rows, table.get("bit_columns", ()), table.get("convert_columns", ())))
        return self.by_rows[rows]


class _Warned(Exception):  # noqa: N818 - a signal inside _bind, never raised out of it
    def __init__(self, codes: list[int]) -> None:
        self.codes = codes


_STATEMENTS: weakref.WeakKeyDictionary[Connection, _Statements] = weakref.WeakKeyDictionary()
_STATEMENTS_LOCK = threading.Lock()


def _bind(target: DbEndpoint, conn: Connection, table: Mapping[str, Any], data: Iterator[bytes]) -> tuple[int, list[int]]:
    """``data``'s rows bound to prepared INSERTs of a power of two rows each (``bind``): full
    statements while the rows come, the rest in smaller powers of two. A row too big for one
    statement (over BIND_PACKET_MAX or half the server's max_allowed_packet) and every row after
    it go in one LOAD DATA. (rows, warning codes)"""
    assert speedups is not None
    width = len(table["columns"])
    per = bind.rows_per_statement(width, int(table["bytes"]) / max(int(table["rows"]), 1), BIND_BATCH_BYTES)
    loaded = 0
    try:
        with _STATEMENTS_LOCK:
            statements = _STATEMENTS.get(conn)
        if statements is None:  # this connection's first load (only its own thread uses it)
            statements = _Statements(conn)
            with _STATEMENTS_LOCK:
                _STATEMENTS[conn] = statements
        limit = statements.limit

        def send(buf: bytes, at: int, rows: int) -> tuple[int, bool]:
            """Statements of ``rows`` rows from ``buf[at:]`` while whole lines fill one (of fewer,
            a power of two, where the size limit comes first): the offset of the lines left, and
            whether the next of them fits no statement."""
            nonlocal loaded
            while True:
                values, nulls, end, count, full = speedups.bind_rows(buf, at, width, rows, limit)
                if count == 0 or (count < rows and not full):
                    return at, bool(full)
                if count < rows:
                    count = 1 << (count.bit_length() - 1)
                    values, nulls, end, count, full = speedups.bind_rows(buf, at, width, count, limit)
                done, warned = bind.execute(conn, statements.get(conn, table, count), nulls, values)
                loaded += done
                if warned:  # the statement's own warnings, before another statement clears them
                    with conn.cursor() as cur:
                        raise _Warned(_warning_codes(cur))
                at = end

        def send_all(buf: bytes) -> tuple[int, bool]:
            """Every whole line of ``buf``: full statements, then powers of two of the lines
            left; the offset after them (or of a line that fits no statement, and True)."""
            at, too_big = send(buf, 0, per)
            while not too_big and (lines := buf.count(b"\n", at)):
                at, too_big = send(buf, at, 1 << (lines.bit_length() - 1))
            return at, too_big

        # Chunks end at line ends (codec.RowChunker): each is bound on its own, with no copy of
        # it; a part line at the end of one (a store written otherwise) goes with the next.
        part = b""
        chunks = iter(data)
        for chunk in chunks:
            buf = part + chunk if part else chunk
            at, too_big = send_all(buf)
            if too_big:
                return _bind_rest(target, conn, table, buf[at:], chunks, loaded)
            part = buf[at:]
        if part:  # LOAD DATA takes a last line without its newline
            part += b"\n"
            at, too_big = send_all(part)
            if too_big:
                return _bind_rest(target, conn, table, part[at:], iter(()), loaded)
    except _Warned as warned:
        return loaded, warned.codes
    except pymysql.MySQLError as exc:
        raise target_error(exc, target, f"loading table {table['name']}") from exc
    except ValueError as exc:  # a line of the snapshot's rows that is not one row of the table
        raise IntegrityError(f"table {table['name']}: the snapshot's rows do not match its columns ({exc})") from exc
    except ClonekitError:
        raise
    except Exception as exc:  # noqa: BLE001 - reading the store failed
        _raise_read_error(table, exc)
    return loaded, []


def _bind_rest(target: DbEndpoint, conn: Connection, table: Mapping[str, Any], buf: bytes,
               chunks: Iterator[bytes], loaded: int) -> tuple[int, list[int]]:
    """The rows from one too big for a statement on, by LOAD DATA (which streams its text)."""
    log.info("table %s: a row too big for a bound statement; the rest loads by LOAD DATA", table["name"])
    rows, codes = _load_data(target, conn, table, itertools.chain([buf], chunks))
    return loaded + rows, codes


def _add_indexes(target: DbEndpoint, tables: list[Mapping[str, Any]], workers: int) -> None:
    jobs = [t for t in sorted(tables, key=lambda t: -int(t["bytes"]))
            if any(not FOREIGN_KEY.search(c) for c in t.get("deferred", []))]

    _drain_in_threads(target, jobs, partial(_add_table_indexes, target), workers)


def _add_table_indexes(target: DbEndpoint, conn: Connection, table: Mapping[str, Any]) -> None:
    for clauses in _index_statements(table.get("deferred", [])):
        _run(target, conn, f"adding indexes to {table['name']}",
             f"ALTER TABLE {quote_name(table['name'])} " + ", ".join(clauses))


def _index_statements(deferred: list[str]) -> list[list[str]]:
    """All plain indexes in one ALTER (one table rebuild); InnoDB builds FULLTEXT ones one at a time."""
    plain = [c for c in deferred if not FOREIGN_KEY.search(c) and not c.upper().startswith("ADD FULLTEXT")]
    fulltext = [[c] for c in deferred if c.upper().startswith("ADD FULLTEXT")]
    return ([plain] if plain else []) + fulltext


def _create_objects(target: DbEndpoint, conn: Connection, section: Mapping[str, Any]) -> int:
    created = 0
    views = list(section.get("views", []))
    # A view may read another view: create in passes until no progress (dependency order unknown).
    while views:
        failures: list[tuple[Mapping[str, Any], pymysql.MySQLError]] = []
        for view in views:
            try:
                with conn.cursor() as cur:
                    cur.execute(view["sql"])
                created += 1
            except pymysql.MySQLError as exc:
                failures.append((view, exc))
        if len(failures) == len(views):
            failed_view, error = failures[0]
            raise target_error(error, target, f"creating view {failed_view['name']}") from error
        views = [v for v, _ in failures]
    for kind in ("triggers", "routines", "events"):
        for item in section.get(kind, []):
            _run(target, conn, "setting sql_mode", "SET SESSION sql_mode = %s", (item.get("sql_mode", ""),))
            if kind == "events" and item.get("time_zone"):
                _run(target, conn, "setting time_zone", "SET SESSION time_zone = %s", (item["time_zone"],))
            _run(target, conn, f"creating {kind[:-1]} {item['name']}", item["sql"])
            created += 1
    _run(target, conn, "resetting the session", "SET SESSION time_zone = '+00:00'")
    _run(target, conn, "resetting the session", SESSION_SQL[0])
    return created
