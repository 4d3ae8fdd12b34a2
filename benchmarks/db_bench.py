"""Database capture and restore, clonekit side by side with mysqldump, mydumper, myloader and mysql.

    python3 -m benchmarks.db_bench --scale small [--reuse] [--repeat 2] [--json out.json]

On the same generated Drupal-shaped dataset and the same server:
  capture:  clonekit (identity, then the drupal sanitization preset) vs
            `mysqldump --single-transaction --quick | zstd -1` and `mydumper -t 2 -c`
  restore:  clonekit vs `myloader -t 2` and `mysql < dump.sql`
  nightly:  bytes a second capture of unchanged data stores
Prints ``name: X s vs anchor Y s, ratio Z`` lines (ratio < 1: clonekit is faster) with peak RSS.
Passwords go to the tools through a 0600 defaults file, never argv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymysql

from benchmarks.common import Timing, report, time_command, time_function
from benchmarks.drupal_dataset import TABLE_NAMES, create_dataset, endpoint_from_env, scale_factor
from benchmarks.resources import Usage
from clonekit.config import SanitizeConfig, StoreConfig
from clonekit.db import DbEndpoint, capture_database, restore_database, table_checksums
from clonekit.repository import DEFAULT_ZSTD_LEVEL, Repository
from clonekit.schema import CopyEverything, PolicyPlanner


def _admin(endpoint: DbEndpoint) -> pymysql.connections.Connection:
    return pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password or "",
                           unix_socket=endpoint.socket, autocommit=True)


def _fresh_database(endpoint: DbEndpoint, name: str) -> DbEndpoint:
    conn = _admin(endpoint)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    conn.close()
    return endpoint.with_database(name)


def _drop_database(endpoint: DbEndpoint, name: str) -> None:
    conn = _admin(endpoint)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def _dataset_present(endpoint: DbEndpoint, scale: str | float) -> bool:
    try:
        conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                               password=endpoint.password or "", database=endpoint.database)
    except pymysql.MySQLError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
            if cur.fetchone()[0] != len(TABLE_NAMES):
                return False
            cur.execute("SELECT COUNT(*) FROM users_field_data")
            return cur.fetchone()[0] == max(1, round(10_000 * scale_factor(scale)))
    except pymysql.MySQLError:
        return False
    finally:
        conn.close()


def _defaults_file(workdir: Path, endpoint: DbEndpoint) -> str:
    path = workdir / "client.cnf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    body = "".join(
        f"[{group}]\nhost={endpoint.host}\nport={endpoint.port}\nuser={endpoint.user}\n"
        f"password={endpoint.password or ''}\nprotocol=tcp\n"
        for group in ("client", "mysqldump", "mydumper", "myloader")
    )
    with os.fdopen(fd, "w") as fh:
        fh.write(body)
    return str(path)


def _rounds(repeat: int, runs: dict[str, tuple[Callable[[], Timing], Callable[[], None] | None]]) -> dict[str, Timing]:
    """Best of ``repeat`` runs of each, interleaved round by round: a busy machine slows all alike."""
    best: dict[str, Timing] = {}
    for _ in range(repeat):
        for name, (run, before) in runs.items():
            if before:
                before()
            timing = run()
            if name not in best or timing.seconds < best[name].seconds:
                best[name] = timing
    return best


def _sanitizer() -> PolicyPlanner | None:
    try:
        from clonekit.sanitize import build_planner
    except ImportError:
        return None
    os.environ.setdefault("CLONEKIT_BENCH_SECRET", "benchmark-secret-not-for-production")
    return build_planner(SanitizeConfig(preset="drupal", secret_env="CLONEKIT_BENCH_SECRET", strict=False))


def run(args: argparse.Namespace) -> dict[str, Any]:
    source = endpoint_from_env(args.database)
    if not args.reuse or not _dataset_present(source, args.scale):
        print(f"generating the {args.scale} dataset in {source.database}...", file=sys.stderr, flush=True)
        info = create_dataset(source, args.scale)
        print(f"  {info['rows']} rows, {info['tsv_bytes'] / 2**20:.0f} MiB of TSV in {info['seconds']} s",
              file=sys.stderr, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="ck-dbbench-", dir=args.workdir))
    cnf = _defaults_file(workdir, source)
    results: dict[str, Any] = {"scale": args.scale, "database": source.database, "lines": []}
    lines: list[str] = results["lines"]
    target_name = f"{source.database}_restore"
    try:
        # -- capture -----------------------------------------------------------------------------
        store_dir = workdir / "store"

        usages: dict[str, Usage] = {}

        def ours_capture(planner: PolicyPlanner, label: str = "", level: int | None = None) -> Timing:
            shutil.rmtree(store_dir, ignore_errors=True)
            repo = Repository.open(StoreConfig(url=str(store_dir)))
            if level is not None:  # what a store created with this level would do (the level is per store)
                repo.config = replace(repo.config, zstd_level=level)

            def go() -> tuple[dict[str, Any], Any]:
                with Usage(source) as usage, repo.writer() as writer:
                    section = capture_database(source, planner, writer, workers=args.workers)
                if label and (label not in usages or usage.seconds < usages[label].seconds):
                    usages[label] = usage
                return section, writer.stats

            return time_function("clonekit capture", go)

        dump_zst = workdir / "dump.sql.zst"
        mydumper_dir = workdir / "mydumper"
        def measured(label: str, run: Callable[[], Timing]) -> Callable[[], Timing]:
            def go() -> Timing:
                with Usage(source) as usage:
                    timing = run()
                if label not in usages or usage.seconds < usages[label].seconds:
                    usages[label] = usage
                return timing

            return go

        capture_runs: dict[str, tuple[Callable[[], Timing], Callable[[], None] | None]] = {
            "mysqldump": (measured("mysqldump | zstd -1", lambda: time_command(
                "mysqldump|zstd -1",
                ["bash", "-c", f"set -o pipefail; mysqldump --defaults-file={cnf} --single-transaction --quick "
                               f"{source.database} | zstd -1 -q -f -o {dump_zst}"])), None),
            "mydumper": (measured("mydumper -t 2 -c", lambda: time_command(
                "mydumper -t 2 -c",
                ["mydumper", f"--defaults-file={cnf}", "-h", source.host, "-P", str(source.port), "-u", source.user,
                 "-B", source.database, "-t", "2", "-c", "-o", str(mydumper_dir)])),
                lambda: shutil.rmtree(mydumper_dir, ignore_errors=True)),
            "ours": (lambda: ours_capture(CopyEverything(), f"no rules, zstd level {DEFAULT_ZSTD_LEVEL} (default)"),
                     None),
        }
        for level in args.zstd_levels:
            if level != DEFAULT_ZSTD_LEVEL:
                capture_runs[f"level {level}"] = (
                    lambda level=level: ours_capture(CopyEverything(), f"no rules, zstd level {level}", level), None)
        planner = _sanitizer()
        if planner is not None and not args.skip_sanitized:
            capture_runs["sanitized"] = (lambda: ours_capture(planner, "drupal preset"), None)
        load = os.getloadavg()[0]
        best = _rounds(args.repeat, capture_runs)
        print(f"where the capture's time goes (best run of each; load average {load:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after):", flush=True)
        for label, usage in usages.items():
            print(f"  {label:34} {usage}", flush=True)
        for level in args.zstd_levels:
            if level != DEFAULT_ZSTD_LEVEL:
                other, stats_other = best[f"level {level}"], best[f"level {level}"].result[1]
                lines.append(report(f"capture at zstd level {level} vs mysqldump|zstd -1", other, best["mysqldump"]))
                print(f"  stored at level {level}: {stats_other.new_stored_bytes / 2**20:.1f} MiB", flush=True)
        mysqldump, mydumper, ours = best["mysqldump"], best["mydumper"], best["ours"]
        section, stats = ours.result
        best_anchor = min(mysqldump, mydumper, key=lambda t: t.seconds)
        results["capture"] = {"clonekit": ours.seconds, "mysqldump_zstd": mysqldump.seconds,
                              "mydumper": mydumper.seconds, "stored_bytes": stats.new_stored_bytes,
                              "mysqldump_zstd_bytes": dump_zst.stat().st_size,
                              "mydumper_bytes": sum(p.stat().st_size for p in mydumper_dir.iterdir()),
                              "rows": section["rows"], "plain_bytes": section["bytes"],
                              "consistency": section["consistency"]}
        lines.append(report("capture vs mysqldump|zstd -1", ours, mysqldump))
        lines.append(report("capture vs mydumper -t 2 -c", ours, mydumper))
        lines.append(report("capture vs the faster of both", ours, best_anchor))
        print(f"  stored {stats.new_stored_bytes / 2**20:.1f} MiB (mysqldump|zstd {dump_zst.stat().st_size / 2**20:.1f} MiB,"
              f" mydumper {results['capture']['mydumper_bytes'] / 2**20:.1f} MiB), {section['rows']} rows, "
              f"{section['bytes'] / 2**20:.0f} MiB plain, snapshot: {section['consistency']}", flush=True)

        if "sanitized" in best:
            sanitized = best["sanitized"]
            results["capture"]["clonekit_sanitized"] = sanitized.seconds
            lines.append(report("sanitized capture (drupal preset) vs mydumper -t 2 -c", sanitized, mydumper))
            lines.append(report("sanitized capture (drupal preset) vs mysqldump|zstd -1", sanitized, mysqldump))

        if args.capture_only:
            return results
        # The identity capture again for the restore and the nightly figure.
        ours_capture(CopyEverything())
        repo = Repository.open(StoreConfig(url=str(store_dir)))
        with repo.writer() as writer:
            section = capture_database(source, CopyEverything(), writer, workers=args.workers)
        results["nightly_new_bytes"] = writer.stats.new_stored_bytes
        lines.append(f"nightly capture of unchanged data: {writer.stats.new_chunks} new chunks, "
                     f"{writer.stats.new_stored_bytes} new bytes stored")
        print(lines[-1], flush=True)

        # -- restore -----------------------------------------------------------------------------
        target = source.with_database(target_name)
        dump_sql = workdir / "dump.sql"
        subprocess.run(["zstd", "-d", "-q", "-f", str(dump_zst), "-o", str(dump_sql)], check=True)
        fresh = lambda: _fresh_database(source, target_name)  # noqa: E731
        restores = _rounds(args.repeat, {
            "ours": (lambda: time_function(
                "clonekit restore", lambda: restore_database(repo, section, target, workers=args.workers)), fresh),
            "myloader": (lambda: time_command(
                "myloader -t 2",
                ["myloader", f"--defaults-file={cnf}", "-h", source.host, "-P", str(source.port), "-u", source.user,
                 "-d", str(mydumper_dir), "-B", target_name, "-t", "2", "-o"]), fresh),
            "mysql": (lambda: time_command(
                "mysql < dump.sql", ["bash", "-c", f"mysql --defaults-file={cnf} {target_name} < {dump_sql}"]), fresh),
        })
        # Check the last restore of ours: run it once more at the end so its result is what is compared.
        fresh()
        restore_database(repo, section, target, workers=args.workers)
        same = table_checksums(target) == table_checksums(source)
        restore_ours, myloader, mysql_cli = restores["ours"], restores["myloader"], restores["mysql"]
        results["restore"] = {"clonekit": restore_ours.seconds, "myloader": myloader.seconds,
                              "mysql": mysql_cli.seconds, "checksums_equal": same,
                              "load_seconds": restore_ours.result.load_seconds,
                              "index_seconds": restore_ours.result.index_seconds}
        lines.append(report("restore vs myloader -t 2", restore_ours, myloader))
        lines.append(report("restore vs mysql < dump.sql", restore_ours, mysql_cli))
        print(f"  restored checksums equal to the source: {same} (load {restore_ours.result.load_seconds:.2f} s,"
              f" indexes {restore_ours.result.index_seconds:.2f} s)", flush=True)
        results["peak_rss_mib"] = {
            "clonekit_capture": ours.peak_rss_bytes >> 20, "mysqldump_zstd": mysqldump.peak_rss_bytes >> 20,
            "mydumper": mydumper.peak_rss_bytes >> 20, "clonekit_restore": restore_ours.peak_rss_bytes >> 20,
            "myloader": myloader.peak_rss_bytes >> 20, "mysql": mysql_cli.peak_rss_bytes >> 20,
        }
    finally:
        _drop_database(source, target_name)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", help="tiny, small (~100 MB), medium, top (~1 GB) or a number")
    parser.add_argument("--database", default=None, help="source database (default ck_bench_drupal_<scale>)")
    parser.add_argument("--reuse", action="store_true", help="keep the dataset when it is already there")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best is kept")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-sanitized", action="store_true")
    parser.add_argument("--capture-only", action="store_true", help="stop after the capture figures (no restore)")
    parser.add_argument("--zstd-levels", default="3", type=lambda v: [int(x) for x in v.split(",") if x.strip()],
                        help="also capture into stores with these zstd levels (comma-separated; the default "
                             f"level {DEFAULT_ZSTD_LEVEL} is always measured)")
    parser.add_argument("--workdir", default="/var/tmp")
    parser.add_argument("--keep", action="store_true", help="keep dumps and the store for inspection")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.database = args.database or f"ck_bench_drupal_{str(args.scale).replace('.', '_')}"
    results = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
