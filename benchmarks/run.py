"""`make bench`: every benchmark side by side with its established tool, ratios printed.

    python -m benchmarks.run                       # all, at the small scale
    python -m benchmarks.run --only db,files       # some (store-rgw: the store on Ceph RGW)
    python -m benchmarks.run --scale top           # the issue's top scale (much longer)

Each benchmark runs the anchor tool (mysqldump, mydumper, myloader, restic, rsync, awscli) on
the same data in the same run and prints `ratio = clonekit / anchor` (below 1.0: clonekit is
faster). The output is also saved under bench-results/.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (module, arguments at small scale, arguments at top scale)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "store": ("benchmarks.store_bench", ["--size-mb", "256"], ["--size-mb", "1024"]),
    # top scale 512 MiB: RGW here keeps data in RAM (memstore, 4 GiB cap) until its gc reclaims deleted rounds
    "store-rgw": ("benchmarks.store_bench", ["--server", "rgw", "--size-mb", "256"], ["--server", "rgw", "--size-mb", "512"]),
    "db": ("benchmarks.db_bench", ["--scale", "small", "--reuse"], ["--scale", "top", "--reuse"]),
    "sanitize": ("benchmarks.sanitize_bench", ["--capture", "small"], ["--capture", "top"]),
    "files": ("benchmarks.files_bench", ["--scale", "small", "--repeat", "1"], ["--scale", "large", "--repeat", "1"]),
    "clone": ("benchmarks.clone_bench", ["--runs", "1"], ["--runs", "3"]),
    "golden": ("benchmarks.golden_bench", [], ["--scale", "top"]),
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
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            if proc.wait() != 0:
                failed.append(name)
            footer = f"== {name}: {'ok' if proc.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s\n"
            print(footer, flush=True)
            log.write(footer)
    print(f"saved in {log_path.relative_to(ROOT)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
