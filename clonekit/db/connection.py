"""Opening connections and turning pymysql failures into clonekit errors (the adapter edge)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors

from ..errors import ClonekitError, PreviewError, SourceError, TransientPreviewError, TransientSourceError
from ..retry import keep_alive, stall_timeout
from .endpoint import DbEndpoint

CONNECT_TIMEOUT_SECONDS = 15
# Server error codes worth a retry: lost or refused connections, lock waits, deadlocks.
TRANSIENT_CODES = frozenset({1040, 1053, 1205, 1213, 2002, 2003, 2006, 2013, 2055})
ACCESS_DENIED_CODES = frozenset({1044, 1045, 1698})


def error_code(exc: BaseException | None) -> int | None:
    """The server's error number of a pymysql error (None for anything else)."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return args[0] if args and isinstance(args[0], int) else None


def source_error(exc: pymysql.MySQLError, endpoint: DbEndpoint, doing: str) -> ClonekitError:
    """A pymysql error on a source, with a message naming the server and never a row value."""
    code = error_code(exc)
    message = f"database {endpoint}: {doing} failed ({type(exc).__name__} {code})"
    if code in ACCESS_DENIED_CODES:
        return SourceError(message, hint="check the user, password_env and the user's grants (SELECT, SHOW VIEW, TRIGGER, EVENT)")
    if code in TRANSIENT_CODES:
        return TransientSourceError(message)
    return SourceError(f"{message}: {_server_text(exc)}")


def target_error(exc: pymysql.MySQLError, endpoint: DbEndpoint, doing: str) -> ClonekitError:
    code = error_code(exc)
    message = f"restore target {endpoint}: {doing} failed ({type(exc).__name__} {code}): {_server_text(exc)}"
    if code in TRANSIENT_CODES:
        return TransientPreviewError(message)
    return PreviewError(message)


def _server_text(exc: BaseException) -> str:
    # Server messages quote identifiers, not row values, except for duplicate-key errors: cut those.
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    text = str(args[1]) if len(args) > 1 else ""
    if error_code(exc) in (1062, 1586):
        return "duplicate key"
    return text[:300]


def connect(endpoint: DbEndpoint, *, local_infile: bool = False, streaming: bool = False,
            as_target: bool = False, autocommit: bool = True) -> pymysql.connections.Connection:
    """One utf8mb4 connection in UTC (TIMESTAMP values round-trip exactly).

    Bounded waits: connecting, and every write, give up after the stall timeout
    (CLONEKIT_STALL_TIMEOUT); so do reads from a source, whose queries stream rows as they go. A
    restore target may think for long (an index build answers nothing until it is done): its
    reads are bounded by TCP keepalive instead, which notices a dead server or link.
    """
    try:
        conn = pymysql.connect(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            password=endpoint.password or "",
            database=endpoint.database or None,
            unix_socket=endpoint.socket,
            charset="utf8mb4",
            autocommit=autocommit,
            local_infile=local_infile,
            connect_timeout=min(CONNECT_TIMEOUT_SECONDS, stall_timeout()),
            read_timeout=None if as_target else stall_timeout(),
            write_timeout=stall_timeout(),
            cursorclass=pymysql.cursors.SSCursor if streaming else pymysql.cursors.Cursor,
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.MySQLError as exc:
        raise (target_error if as_target else source_error)(exc, endpoint, "connecting") from exc
    keep_alive(getattr(conn, "_sock", None))
    return conn


@contextlib.contextmanager
def connection(endpoint: DbEndpoint, **kwargs) -> Iterator[pymysql.connections.Connection]:  # type: ignore[no-untyped-def]
    conn = connect(endpoint, **kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(pymysql.MySQLError, OSError):
            conn.close()


def quote_name(name: str) -> str:
    """A backquoted identifier: any character allowed, backquotes doubled."""
    return "`" + name.replace("`", "``") + "`"
