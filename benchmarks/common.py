"""Tiny helpers shared by the benchmarks: time a command or a function, measure peak RSS, print ratios.

    from benchmarks.common import time_command, time_function, report
    ours = time_function("upload", lambda: upload(data))
    anchor = time_command("aws s3 cp", ["aws", "s3", "cp", "--recursive", src, dst])
    report("upload 256 MB", ours, anchor)   # upload 256 MB: 3.10 s vs anchor 4.20 s, ratio 0.74 ...
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    peak_rss_bytes: int  # peak resident memory of the process (function) or of the command (child)
    result: Any = None
    cpu_seconds: float = 0.0  # user + system CPU of this process (function) or of the command's children

    def __str__(self) -> str:
        return f"{self.name}: {self.seconds:.2f} s, CPU {self.cpu_seconds:.2f} s, peak RSS {self.peak_rss_bytes / 2**20:.0f} MiB"


def proc_rss_bytes(pid: int, field: str = "VmRSS:") -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


class _RssSampler:
    """Samples the current process's RSS every few ms: the peak DURING a call, not since start."""

    def __init__(self, pid: int, interval: float = 0.01, field: str = "VmRSS:") -> None:
        self.pid, self.interval, self.field = pid, interval, field
        self.peak = proc_rss_bytes(pid, field)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, proc_rss_bytes(self.pid, self.field))

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_rss_bytes(self.pid, self.field))


def time_function(name: str, fn: Callable[[], Any]) -> Timing:
    """Wall time of ``fn()`` and the peak RSS of this process while it ran."""
    cpu_before = _cpu_self()
    with _RssSampler(os.getpid()) as sampler:
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
    return Timing(name, seconds, sampler.peak, result, _cpu_self() - cpu_before)


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_command(name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
                 stdin: Any = None, stdout: Any = subprocess.DEVNULL) -> Timing:
    """Wall time, CPU and peak RSS of a command; raises on a non-zero exit.

    Peak RSS is the command's own high-water mark (VmHWM, sampled until it exits): wait4's
    ru_maxrss would count the benchmark process it was forked from.
    """
    full_env = {**os.environ, **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=full_env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    with _RssSampler(proc.pid, field="VmHWM:") as sampler:
        stderr = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(argv[:3])}... exited {proc.returncode}: {stderr.decode(errors='replace')[-500:]}")
    return Timing(name, seconds, sampler.peak, cpu_seconds=usage.ru_utime + usage.ru_stime)


def peak_rss_self_bytes() -> int:
    """Peak RSS of this process since it started."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def ratio_line(name: str, ours: float, anchor: float) -> str:
    ratio = ours / anchor if anchor > 0 else float("inf")
    return f"{name}: {ours:.2f} s vs anchor {anchor:.2f} s, ratio {ratio:.2f}"


def report(name: str, ours: Timing, anchor: Timing) -> str:
    """Print and return ``name: X s vs anchor Y s, ratio Z`` plus both peak RSS figures."""
    line = (
        f"{ratio_line(name, ours.seconds, anchor.seconds)} "
        f"(peak RSS {ours.peak_rss_bytes / 2**20:.0f} MiB vs {anchor.peak_rss_bytes / 2**20:.0f} MiB; "
        f"CPU {ours.cpu_seconds:.1f} s vs {anchor.cpu_seconds:.1f} s)"
    )
    print(line, flush=True)
    return line
