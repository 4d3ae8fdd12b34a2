"""Where a capture's time goes: the database server's CPU, this process tree's CPU and memory.

    with Usage(endpoint) as usage:
        capture_database(...)
    print(usage)   # wall 3.1 s, server CPU 2.4 s, client CPU 3.9 s, peak RSS 160 MiB (4 processes)

- Server CPU: the CPU of the server threads that serve the connections to the measured
  database (MariaDB's PROCESSLIST names each connection's OS thread, TID), sampled from
  /proc: the server may be shared with other work. Approximate: a connection's first
  0.1 s can be missed. Also the whole server's CPU (every client). None when the server is
  not on this machine (its pid file, ``SELECT @@pid_file``, is not readable here).
- Client CPU: this process and every descendant (the capture's fork server and its workers),
  from /proc, sampled: a worker that lives less than one sampling interval is missed.
- Peak memory of the process tree, sampled every 0.1 s: the highest sum of the processes' RSS
  (pages shared by a forked worker and its parent count twice) and of their PSS (shared pages
  split between them: what the tree really holds); the RSS figure is never below this process's
  own peak (VmHWM, reset when the block starts), which the kernel tracks between samples.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pymysql

from benchmarks.common import proc_rss_bytes

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.1


def _stat(pid: int, thread: int | None = None) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process (or one of its threads), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _peak_rss(pid: int) -> int:
    return proc_rss_bytes(pid, "VmHWM:")


def server_pid(endpoint: Any) -> int | None:
    """The pid of the endpoint's server when it runs on this machine (its pid file is readable)."""
    try:
        conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                               password=endpoint.password or "")
    except pymysql.MySQLError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@pid_file")
            path = str(cur.fetchone()[0])
    finally:
        conn.close()
    try:
        with open(path) as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    return pid if _stat(pid) is not None else None


class Usage:
    """Wall time, server CPU, client CPU and peak RSS of the process tree during a ``with`` block."""

    def __init__(self, endpoint: Any = None) -> None:
        self.server = server_pid(endpoint) if endpoint is not None else None
        self._watch = None
        if self.server is not None:
            self._database = endpoint.database
            self._watch = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                                          password=endpoint.password or "", autocommit=True)
        self._threads: dict[int, tuple[float, float]] = {}  # server thread -> (first, last) CPU seen
        self.server_total_cpu: float | None = None
        self.root = os.getpid()
        self._cpu: dict[int, float] = {}  # pid -> last CPU seconds seen (descendants started inside)
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.seconds = 0.0
        self.server_cpu: float | None = None
        self.client_cpu = 0.0
        self.peak_rss = 0
        self.peak_pss = 0
        self.processes = 0
        self.sampler_cpu = 0.0  # CPU of the sampling thread itself: not the measured work's

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = _stat(int(name))
                if stat is not None:
                    parents[int(name)] = stat[0]
        tree, frontier = [self.root], [self.root]
        while frontier:
            frontier = [pid for pid, parent in parents.items() if parent in frontier]
            tree.extend(frontier)
        return tree

    def _sample(self) -> None:
        rss = pss = 0
        for pid in self._tree():
            if pid != self.root:
                stat = _stat(pid)
                if stat is None:
                    continue
                self._cpu[pid] = max(self._cpu.get(pid, 0.0), stat[1] - self._base.get(pid, 0.0))
                self._seen.add(pid)
            memory = _memory(pid)
            rss += memory[0]
            pss += memory[1]
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_pss = max(self.peak_pss, pss)
        if self._watch is not None:
            with self._watch.cursor() as cur:
                cur.execute("SELECT TID FROM information_schema.PROCESSLIST WHERE DB = %s", (self._database,))
                tids = [int(row[0]) for row in cur.fetchall() if row[0]]
            for tid in tids:
                cpu = _stat(self.server, tid)  # type: ignore[arg-type]
                if cpu is not None:
                    first = self._threads.get(tid, (cpu[1], cpu[1]))[0]
                    self._threads[tid] = (first, cpu[1])

    def _run(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()
        self.sampler_cpu = time.thread_time() - started

    def __enter__(self) -> Usage:
        self._base = {pid: stat[1] for pid in self._tree() if (stat := _stat(pid)) is not None}
        for pid in self._base:
            _reset_peak_rss(pid)
        server = _stat(self.server) if self.server else None
        self._server_before = server[1] if server else None
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.perf_counter() - self._started
        root = _stat(self.root)
        # this process's CPU without the sampler's own: it runs in this process, and reading every
        # process's smaps 10 times a second costs more the more worker processes the capture has
        self.client_cpu = ((root[1] - self._base[self.root] if root else 0.0) - self.sampler_cpu
                           + sum(self._cpu.values()))
        if self.server and self._server_before is not None:
            after = _stat(self.server)
            self.server_total_cpu = after[1] - self._server_before if after else None
            self.server_cpu = sum(last - first for first, last in self._threads.values())
        if self._watch is not None:
            self._watch.close()
        own_peak = _peak_rss(self.root)
        self.peak_rss = max(self.peak_rss, own_peak)
        self.processes = 1 + len(self._seen)

    def __str__(self) -> str:
        server = (f"server CPU {self.server_cpu:.1f} s (whole server {self.server_total_cpu:.1f} s), "
                  if self.server_cpu is not None and self.server_total_cpu is not None else "")
        return (f"wall {self.seconds:.2f} s, {server}client CPU {self.client_cpu:.1f} s, "
                f"peak RSS {self.peak_rss / 2**20:.0f} MiB, PSS {self.peak_pss / 2**20:.0f} MiB "
                f"({self.processes} processes; the sampler's own CPU {self.sampler_cpu:.1f} s, not counted)")


def _memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in bytes; zeros when it is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def _reset_peak_rss(pid: int) -> None:
    """Start the process's VmHWM again from its current RSS (Linux: clear_refs 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
