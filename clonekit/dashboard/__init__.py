"""``clonekit serve``: the agency's web page over the ``Project`` API (docs/dashboard.md).

Previews (status, URL, code, snapshot, expiry, last hook; refresh, refresh code, extend, destroy,
create from a source's latest snapshot), snapshots per source with a chart, and /api/ JSON equal
to ``clonekit --json list`` and ``clonekit --json snapshots``. Server-rendered (Starlette, Jinja2
with autoescape), served by uvicorn.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import ClonekitError, UsageError
from .auth import credentials_for

if TYPE_CHECKING:
    from ..project import Project

DEFAULT_BIND = "127.0.0.1"
DEFAULT_PORT = 8765


def serve(project: Project, *, bind: str = DEFAULT_BIND, port: int = DEFAULT_PORT,
          echo: Callable[[str], None] = print) -> None:
    """Serve the dashboard until interrupted. Refuses (exit 2) a non-loopback bind without a password."""
    import uvicorn

    from .app import create_app
    from .proxied import needs_own_socket, prepare

    cfg = project.config.dashboard
    credentials = credentials_for(cfg, bind)  # before anything listens
    proxied = prepare(project.config)  # before anything is created
    sockets = [_listen(bind, port)]
    routed = ""
    try:
        if proxied is not None:
            gateway = proxied.open()
            # the route first: until the dashboard's socket listens, the proxy answers 502
            proxied.add_route(f"{gateway}:{port}")
            if needs_own_socket(bind, gateway):
                sockets.append(_listen(gateway, port))
            routed = f", routed by the previews' proxy to {gateway}:{port}"
        app = create_app(project, credentials, secure_cookies=(cfg.url or "").startswith("https://"))
        host = f"[{bind}]" if ":" in bind else bind
        echo(f"clonekit dashboard of project {project.config.project} on http://{host}:{port}/"
             + (f" (open it at {cfg.url}{routed})" if cfg.url else ""))
        if credentials.password is None:
            echo(f"warning: no password ({cfg.password_env} is not set): anyone on this host can use the dashboard")
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        with _stopped_by_sigterm():
            server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        if proxied is not None:
            proxied.close()


class _Stopped(Exception):
    pass


@contextlib.contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """uvicorn stops on SIGTERM, then raises the signal again with the handler it found: with the
    default one the process would die before ``serve`` removes its proxy route. Ours ends it cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except _Stopped:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _listen(bind: str, port: int) -> socket.socket:
    """The listening socket, opened here so that a taken port is one clear message (exit 1)."""
    try:
        infos = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--bind {bind!r}: not an address of this host ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ClonekitError(f"cannot listen on {bind}:{port}: the port is in use",
                                hint="stop what listens there, or choose another with --port") from None
        raise ClonekitError(f"cannot listen on {bind}:{port}: {exc.strerror}") from None
    return sock
