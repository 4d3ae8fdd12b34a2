"""A fork server for the capture's worker processes, safe in a threaded program.

Forking a process whose other threads (uploads, lock refresh, SSH tunnels, logging) may hold a
lock can leave the child waiting forever on that lock. So the workers are never forked from the
clonekit process: a helper started with fork+exec (``subprocess``, safe at any time) imports the
capture code once, runs no thread, and forks one child per job. A job's file descriptors (the
database socket, the write end of the result pipe) travel over a Unix socket (SCM_RIGHTS), its
arguments as a pickle; the child runs ``function(*fds, *args)`` and exits. The helper ends when
the clonekit process closes its end (or dies).

Unlike ``multiprocessing``'s fork server, a job never imports the program's ``__main__``, so a
script calling the API needs no ``if __name__ == "__main__"`` guard.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

MAX_JOB_BYTES = 16 << 20
PRELOAD = ("clonekit.db.capture", "clonekit.sanitize.planner")


class ForkServer:
    """The clonekit process's handle on its fork server (one per process, started on first use)."""

    _instance: ForkServer | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._control = ours
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-c", f"from clonekit.db.workers import serve; serve({theirs.fileno()})"],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        theirs.close()
        self._pid = os.getpid()
        atexit.register(self.close)

    @classmethod
    def get(cls) -> ForkServer:
        with cls._instance_lock:
            if cls._instance is None or cls._instance._pid != os.getpid() or cls._instance._process.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def start(self, function: Callable[..., None], fds: Sequence[int], args: tuple[Any, ...]) -> None:
        """Run ``function(*fds, *args)`` in a new child of the server; ``fds`` are duplicated into it."""
        job = pickle.dumps((sys.path, pickle.dumps((function, args))))
        if len(job) > MAX_JOB_BYTES:
            raise ValueError(f"a worker job of {len(job)} bytes is too large")
        with self._lock:
            socket.send_fds(self._control, [job], list(fds))

    def close(self) -> None:
        self._control.close()  # the server sees the end and exits
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()


def serve(control_fd: int) -> None:  # pragma: no cover - runs in the helper process
    """The helper's loop: one forked child per job, reaped by the kernel (SIGCHLD ignored)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the clonekit process, which then closes us
    for module in PRELOAD:
        __import__(module)
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, MAX_JOB_BYTES, 8)
        except OSError:
            return
        if not message:
            return
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                path, payload = pickle.loads(message)
                sys.path[:] = path
                function, args = pickle.loads(payload)
                function(*fds, *args)
                status = 0
            except BaseException as exc:  # noqa: BLE001 - the job could not even start: say what, not values
                if not isinstance(exc, BrokenPipeError):  # the clonekit process stopped reading: fine
                    print(f"clonekit worker process: {type(exc).__name__}", file=sys.stderr)
            finally:
                os._exit(status)
        for fd in fds:
            os.close(fd)
