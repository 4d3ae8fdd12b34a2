"""Instructions per row of the sanitizing path, per table: load-independent (valgrind).

    python3 -m benchmarks.transform_instructions [--rows 2000] [--tables watchdog,users_data]

For each table the ``drupal`` preset transforms, the Drupal-shaped dataset's rows are rendered as
the server renders them for the sanitizing path (tsv-1 lines) and run through the capture's own
line transformer (split, decode of the columns the rules read, transform, re-encode), the part a
worker process spends its CPU on. Each table runs twice under ``valgrind --tool=callgrind``, once
transforming no row and once ``--rows`` rows, with the same rows generated and the same transform
planned both times: the difference divided by the rows is the cost per row, startup excluded.
Wall times on a shared machine move with the load; these counts do not.

``CLONEKIT_PURE_PYTHON=1`` in the environment measures the pure-Python fallback
(clonekit/_speedups.c not used).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile

from . import drupal_dataset as dd
from .sanitize_bench import drupal_config, table_from_ddl

_COLLECTED = re.compile(rb"Collected : (\d+)")


def run_rows(table_name: str, rows: int, transformed: int) -> None:
    """Generate ``rows`` rows of the table, plan, and transform the first ``transformed``."""
    from clonekit.db.capture import _RowTransformer
    from clonekit.sanitize import build_planner

    tables = [table_from_ddl(name, dd.DDL[name]) for name in dd.TABLE_NAMES]
    table = next(t for t in tables if t.name == table_name)
    vocabulary = dd.Vocabulary(random.Random(dd.SEED))
    lines = [b"\t".join(dd.tsv_field(v) for v in row) for row in dd.FACTORIES[table_name](vocabulary, rows)]
    policy = build_planner(drupal_config()).plan(tables)[table_name]
    assert policy.transform is not None
    out, _, _ = _RowTransformer(policy, table.data_columns).batch(b"".join(line + b"\n" for line in lines[:transformed]))
    print(len(out))


def instructions(table_name: str, rows: int, transformed: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--cache-sim=no", "--branch-sim=no",
             f"--callgrind-out-file={tmp}/out", sys.executable, "-m", "benchmarks.transform_instructions",
             "--run", table_name, "--rows", str(rows), "--transformed", str(transformed)],
            capture_output=True, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])
    return int(found.group(1))


def transformed_tables() -> list[str]:
    from clonekit.sanitize import build_planner

    tables = [table_from_ddl(name, dd.DDL[name]) for name in dd.TABLE_NAMES]
    plan = build_planner(drupal_config()).plan(tables)
    return [t.name for t in tables if plan[t.name].transform is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--tables", default=None, help="comma-separated (default: every transformed table)")
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--transformed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        run_rows(args.run, args.rows, args.transformed)
        return 0
    from clonekit.sanitize import phpserialize

    print(f"compiled fast path: {'no' if phpserialize.compiled is None else 'yes'}"
          f" (CLONEKIT_PURE_PYTHON={os.environ.get('CLONEKIT_PURE_PYTHON', '')})")
    total = 0.0
    for name in args.tables.split(",") if args.tables else transformed_tables():
        base = instructions(name, args.rows, 0)
        full = instructions(name, args.rows, args.rows)
        per_row = (full - base) / args.rows
        total += per_row * dd.ROWS_AT_SMALL[name]
        print(f"{name:28s} {per_row / 1000:8.1f} k instructions per row", flush=True)
    print(f"{'small dataset, all tables':28s} {total / 1e9:8.2f} G instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
