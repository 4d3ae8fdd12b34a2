"""`make bench`: every benchmark side by side with its established tool, ratios printed.

    python -m benchmarks.run                       # all, at the small scale
    python -m benchmarks.run --only db,files       # some (store-rgw: the store on Ceph RGW)
    python -m benchmarks.run --scale top           # the issue's top scale (much longer)

Each benchmark runs the anchor tool (mysqldump, mydumper, myloader, restic, rsync, awscli) on
the same data in the same run and prints `ratio = clonekit / anchor` (below 1.0: clonekit is
faster). At the end a summary table gives, per step, every ratio line it printed and the peak
memory of the step's process (most benchmarks run clonekit in that process; the clone benchmark
runs the `clonekit` command and prints its own peak in its RESULT line). The output is also
saved under bench-results/.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import _RssSampler

ROOT = Path(__file__).resolve().parents[1]
MEMORY_GOAL_MIB = 200
# the lines a summary keeps: ratios against an anchor, and the benchmarks' RESULT lines
SUMMARY_LINE = re.compile(r"\bratio\b|^RESULT ", re.IGNORECASE)

# name -> (module, arguments at small scale, arguments at top scale)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "store": ("benchmarks.store_bench", ["--size-mb", "256"], ["--size-mb", "1024"]),
    # top scale 512 MiB: RGW here keeps data in RAM (memstore, 4 GiB cap) until its gc reclaims deleted rounds
    "store-rgw": ("benchmarks.store_bench", ["--server", "rgw", "--size-mb", "256"], ["--server", "rgw", "--size-mb", "512"]),
    "db": ("benchmarks.db_bench", ["--scale", "small", "--reuse"], ["--scale", "top", "--reuse"]),
    "sanitize": ("benchmarks.sanitize_bench", ["--capture", "small"], ["--capture", "top"]),
    "files": ("benchmarks.files_bench", ["--scale", "small", "--repeat", "1"], ["--scale", "large", "--repeat", "1"]),
    # memory with many small files: snapshots (local, then over SSH), then the commands that read every manifest
    "files-many": ("benchmarks.many_files_bench", ["--files", "20000", "--snapshots", "3", "--ssh"],
                   ["--files", "100000", "--snapshots", "8", "--ssh"]),
    # the reference site (Drupal-shaped DB + 20,000-file uploads tree + app) vs the manual way
    "clone": ("benchmarks.clone_bench", ["--reference", "--scale", "small", "--runs", "1", "--reuse"],
              ["--reference", "--scale", "top", "--runs", "1", "--reuse"]),
    "clone-wp": ("benchmarks.clone_bench", ["--runs", "1"], ["--runs", "3"]),  # the WordPress fixture
    # 21 MB / 190 MB (small); 21 MB / 190 MB / 1.8 GB (top); the cold path is the clone benchmark's
    "golden": ("benchmarks.golden_bench", ["--reuse"], ["--scale", "top", "--reuse", "--skip-cold"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--scale", choices=["small", "top"], default="small")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    log_path = out_dir / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{args.scale}.txt"
    failed = []
    summary: list[tuple[str, str, float, int, list[str]]] = []  # name, status, seconds, peak RSS, lines
    with log_path.open("w") as log:
        for name in chosen:
            module, small, top = BENCHMARKS[name]
            if not (ROOT / (module.replace(".", "/") + ".py")).exists():
                print(f"== {name}: not built yet", flush=True)
                continue
            command = [sys.executable, "-m", module, *(top if args.scale == "top" else small)]
            header = f"== {name}: {' '.join(command[1:])}"
            print(header, flush=True)
            log.write(header + "\n")
            started = time.monotonic()
            kept: list[str] = []
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            with _RssSampler(proc.pid, interval=0.1, field="VmHWM:") as sampler:
                for line in proc.stdout:
                    sys.stdout.write(line)
                    log.write(line)
                    if SUMMARY_LINE.search(line):
                        kept.append(line.strip())
                proc.wait()
            if proc.returncode != 0:
                failed.append(name)
            seconds = time.monotonic() - started
            status = "ok" if proc.returncode == 0 else "FAILED"
            summary.append((name, status, seconds, sampler.peak, kept))
            footer = f"== {name}: {status} in {seconds:.0f} s, peak RSS {sampler.peak / 2**20:.0f} MiB\n"
            print(footer, flush=True)
            log.write(footer)
        table = render_summary(summary, args.scale)
        print(table, flush=True)
        log.write(table)
    print(f"saved in {log_path.relative_to(ROOT)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render_summary(summary: list[tuple[str, str, float, int, list[str]]], scale: str) -> str:
    """The table printed at the end: one row per step, its ratio lines beside its peak memory."""
    lines = [f"\n== summary ({scale} scale): ratio = clonekit / anchor; peak RSS of the step's process "
             f"(goal <= {MEMORY_GOAL_MIB} MiB)", "", "| step | status | time | peak RSS | figures |", "| --- | --- | --- | --- | --- |"]
    for name, status, seconds, peak, kept in summary:
        mib = peak / 2**20
        memory = f"{mib:.0f} MiB" + ("" if mib <= MEMORY_GOAL_MIB else " (over)")
        figures = "<br>".join(kept) or "(no ratio printed)"
        lines.append(f"| {name} | {status} | {seconds:.0f} s | {memory} | {figures} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
