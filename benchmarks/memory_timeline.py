"""Where a clonekit command's memory goes: RSS beside glibc's own accounting, sampled through the run.

    python -m benchmarks.memory_timeline --out /tmp/clone.json -- -c clonekit.yml clone prod --as x

Runs the CLI in this process with one sampler thread (every 50 ms): resident memory, and from
glibc's ``mallinfo2`` the arenas' size, the bytes in use and the bytes held free, the bytes in
mmapped blocks, and the Python threads alive by name. At the end it prints the sample at the RSS
peak and writes every sample to ``--out`` (JSON: t, rss_mib, arena_mib, in_use_mib, free_mib,
mmapped_mib, threads). RSS minus the arenas and mmapped blocks is the rest: mapped files
(libraries), Python's small-object arenas (obmalloc), thread stacks.

How issue 18's clone peak was found (docs/benchmarks.md): the arenas held 45-80 MiB free beside
50-80 MiB in use. No tracemalloc here on purpose: it doubles the run's memory and hides the peak.
Linux with glibc only.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import ctypes
import json
import sys
import threading
import time
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _rss_mib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4 // 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file for every sample")
    parser.add_argument("--every", type=float, default=0.05, help="seconds between samples")
    parser.add_argument("clonekit_args", nargs=argparse.REMAINDER, help="-- then the clonekit command line")
    args = parser.parse_args(argv)
    cli_args = args.clonekit_args[1:] if args.clonekit_args[:1] == ["--"] else args.clonekit_args

    from clonekit.memory import share_malloc_arenas

    share_malloc_arenas()  # as the CLI does first thing, before this sampler's thread allocates
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    started = time.perf_counter()
    samples: list[tuple[float, int, int, int, int, int, str]] = []

    def sample() -> None:
        while True:
            time.sleep(args.every)
            info = libc.mallinfo2()
            names = collections.Counter(t.name.rstrip("0123456789").rstrip("_") for t in threading.enumerate())
            threads = " ".join(f"{k}:{v}" for k, v in sorted(names.items()) if k not in ("MainThread", "memory-timeline"))
            samples.append((round(time.perf_counter() - started, 2), _rss_mib(), info.arena >> 20, info.uordblks >> 20,
                            info.fordblks >> 20, info.hblkhd >> 20, threads))

    def report() -> None:
        Path(args.out).write_text(json.dumps(samples))
        if samples:
            peak = max(samples, key=lambda s: s[1])
            print(f"peak RSS {peak[1]} MiB at {peak[0]} s: arenas {peak[2]} MiB ({peak[3]} in use, {peak[4]} free), "
                  f"mmapped {peak[5]} MiB, threads {peak[6]}; {len(samples)} samples in {args.out}", file=sys.stderr)

    threading.Thread(target=sample, name="memory-timeline", daemon=True).start()
    atexit.register(report)
    from clonekit.cli import main as clonekit_main

    clonekit_main(cli_args)


if __name__ == "__main__":
    main()
