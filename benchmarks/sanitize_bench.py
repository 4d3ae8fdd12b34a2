"""Sanitization benchmark: the drupal preset's row transforms, and capture with vs without rules.

    python3 -m benchmarks.sanitize_bench                  # transform throughput (no server needed)
    python3 -m benchmarks.sanitize_bench --capture 0.2    # + capture overhead on the Drupal dataset
    python3 -m benchmarks.sanitize_bench --pairs 3 --database ck_bench_sanitize_top  # A/B pairs only
    python3 -m benchmarks.sanitize_bench --repeated 2000 5000 --rows 100000  # caches on repeated inputs

1. Transform throughput: realistic Drupal rows (benchmarks.drupal_dataset's generators) through
   the compiled transforms of ``build_planner(drupal).plan(...)``: rows/s per table. Each run
   plans afresh, so the per-column caches start cold as in a real capture.
2. Capture overhead: ``capture_database`` of the Drupal-shaped dataset (created at the given
   scale on the test MariaDB) with the drupal preset vs no rules, into a sink that only counts
   bytes; ratio = with rules / without (target ≤ 1.15). Best of ``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from clonekit.config import SanitizeConfig
from clonekit.schema import Column, CopyEverything, Table

from . import drupal_dataset as dd

SECRET_ENV = "CLONEKIT_BENCH_SANITIZE_SECRET"
_COLUMN = re.compile(r"^\s*`?(?P<name>\w+)`?\s+(?P<type>\w+)(?:\((?P<size>[\d,]+)\))?(?P<rest>.*?),?$")
_KEY = re.compile(r"^\s*(?P<kind>PRIMARY|UNIQUE)\s+KEY\s*(?:\w+\s*)?\((?P<cols>[^)]*)\)")


def table_from_ddl(name: str, ddl: str) -> Table:
    """The bench's own reading of drupal_dataset's DDL: enough for the planner (names, types, keys)."""
    columns, primary, uniques = [], (), []
    for line in ddl.strip().strip("()").splitlines():
        key = _KEY.match(line)
        if key:
            cols = tuple(c.strip(" `").split("(")[0] for c in key.group("cols").split(","))
            if key.group("kind") == "PRIMARY":
                primary = cols
            else:
                uniques.append(cols)
            continue
        match = _COLUMN.match(line)
        if not match or match.group("name").upper() in ("KEY", "INDEX", "CONSTRAINT", "FULLTEXT"):
            continue
        data_type = match.group("type").lower()
        size = match.group("size")
        text = data_type in ("char", "varchar")
        columns.append((match.group("name"), data_type, f"{data_type}({size})" if size else data_type,
                        "NOT NULL" not in match.group("rest").upper(), int(size) if text and size else None))
    singles = {u[0] for u in [primary, *uniques] if len(u) == 1}
    return Table(
        name=name,
        columns=tuple(
            Column(name=n, data_type=t, column_type=ct, nullable=nullable, max_chars=size,
                   binary=t.endswith("blob") or t in ("binary", "varbinary"), unique=n in singles)
            for n, t, ct, nullable, size in columns
        ),
        primary_key=primary,
        unique_keys=tuple(uniques),
    )


def drupal_config() -> SanitizeConfig:
    os.environ.setdefault(SECRET_ENV, "benchmark-secret-0123456789abcdef")
    return SanitizeConfig(preset="drupal", secret_env=SECRET_ENV, strict=True)


class RepeatedVocabulary(dd.Vocabulary):
    """The dataset's pools, with people and client addresses drawn from ``people`` and ``addresses``
    of them, as in a production site's logs and comments (the same visitor, the same commenter's
    e-mail, thousands of times), where the generator's own rows are unique per row."""

    def __init__(self, rng: random.Random, people: int, addresses: int) -> None:
        super().__init__(rng)
        self.people = people
        self._persons: dict[int, tuple[str, str, str]] = {}
        self._addresses = [dd.Vocabulary.ip(self) for _ in range(addresses)]

    def person(self, i: int) -> tuple[str, str, str]:
        key = i % self.people
        if key not in self._persons:
            self._persons[key] = super().person(key)
        return self._persons[key]

    def ip(self) -> str:
        return self.rng.choice(self._addresses)


@contextlib.contextmanager
def _without_caches() -> Iterator[None]:
    """Plan with the per-column caches of repeated inputs turned off (actions._memo, the PHP keys')."""
    from clonekit.sanitize import actions

    saved = actions._memo, actions.CACHE_ENTRIES
    actions._memo, actions.CACHE_ENTRIES = (lambda fn: fn), 0
    try:
        yield
    finally:
        actions._memo, actions.CACHE_ENTRIES = saved


def transform_throughput(rows_per_table: int, repeat: int, vocabulary: dd.Vocabulary | None = None,
                         *, cached: bool = True) -> list[tuple[str, int, float, float]]:
    """(table, rows, seconds, MB of values) per table whose drupal-preset policy has a transform."""
    from clonekit.sanitize import build_planner

    tables = [table_from_ddl(name, dd.DDL[name]) for name in dd.TABLE_NAMES]
    vocabulary = vocabulary or dd.Vocabulary(random.Random(dd.SEED))
    results = []
    for table in tables:
        planned = build_planner(drupal_config()).plan(tables)[table.name]
        if planned.transform is None:
            continue
        rows = [_typed(row) for row in dd.FACTORIES[table.name](vocabulary, rows_per_table)]
        size = sum(len(v) for row in rows for v in row if isinstance(v, (str, bytes))) / 1e6
        best = float("inf")
        for _ in range(repeat):
            with contextlib.nullcontext() if cached else _without_caches():
                transform = build_planner(drupal_config()).plan(tables)[table.name].transform  # cold caches
            assert transform is not None
            started = time.perf_counter()
            for row in rows:
                transform(row)
            best = min(best, time.perf_counter() - started)
        results.append((table.name, len(rows), best, size))
    return results


def repeated_inputs(rows_per_table: int, repeat: int, people: int, addresses: int) -> None:
    """Throughput on rows whose people and addresses repeat, with the caches off and on, one pass of
    each in turn ``repeat`` times (this machine's speed drifts within a minute), the best of each."""
    def run(cached: bool) -> dict[str, float]:
        vocabulary = RepeatedVocabulary(random.Random(dd.SEED), people, addresses)  # the same rows each time
        return {name: rows / seconds
                for name, rows, seconds, _ in transform_throughput(rows_per_table, 1, vocabulary, cached=cached)}

    off: dict[str, float] = {}
    on: dict[str, float] = {}
    for _ in range(repeat):
        for best, cached in ((off, False), (on, True)):
            for name, rate in run(cached).items():
                best[name] = max(best.get(name, 0.0), rate)
    print(f"repeated inputs ({people:,} people, {addresses:,} addresses over {rows_per_table:,} rows per table), "
          f"rows/s best of {repeat}, caches off / on:")
    for name in on:
        print(f"  {name:26} {off[name]:>10,.0f}  {on[name]:>10,.0f}  x{on[name] / off[name]:.2f}")


def _typed(row: tuple) -> tuple:
    """The generators write TSV-ready values; decimals come back from the server as str too."""
    return row


class CountingSink:
    """A ChunkSink that stores nothing: the capture is measured without the store. It keeps the
    store's memory policy (clonekit/memory.py), as the ChunkWriter it stands for does: the
    process's malloc arenas capped before the capture's threads start, free memory given back
    every GIVE_BACK bytes of chunks done with. Without it the sink's peak was the default
    allocator's, not the capture's (2 arenas per core more, nothing ever trimmed)."""

    def __init__(self) -> None:
        from clonekit.memory import share_malloc_arenas

        share_malloc_arenas()
        self.bytes = 0
        self.chunks = 0

    def put(self, data: bytes):  # noqa: ANN201
        import hashlib

        from clonekit.memory import GIVE_BACK

        self.bytes += len(data)
        self.chunks += 1
        digest = hashlib.sha256(data).hexdigest()
        size = len(data)
        GIVE_BACK.freed(size)  # the chunk is done with, as once a ChunkWriter stored it

        class Ref:
            def to_json(self) -> dict:
                return {"id": digest, "size": size}

        return Ref()


def _same(value):  # noqa: ANN001, ANN202
    return value


class _IdentityTransforms:
    """The drupal plan with every transform replaced by one that returns the row unchanged; a
    table whose values are transformed field by field (``capture.value_functions``) gets the
    compiled row function over functions that return their value: the same path through the
    capture as the preset's, without the actions' work."""

    def __init__(self, planner) -> None:  # noqa: ANN001
        self.planner = planner

    def plan(self, tables, sample=None):  # noqa: ANN001, ANN201
        from dataclasses import replace

        from clonekit.db.capture import compiled, value_functions

        def same(p):  # noqa: ANN001, ANN202
            pairs = value_functions(p.transform)
            if pairs is not None:
                return replace(p, transform=partial(compiled.transform_plain,
                                                    (tuple((pos, _same) for pos, _ in pairs), (), _same, _same)))
            return replace(p, transform=(lambda row: row) if p.transform else None)

        return {name: same(p) for name, p in self.planner.plan(tables, sample).items()}


def _dataset_rows(endpoint) -> dict[str, int]:  # noqa: ANN001
    """Row counts of the dataset's tables already in ``endpoint.database`` (empty when absent)."""
    import pymysql

    try:
        conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                               password=endpoint.password or "", database=endpoint.database)
    except pymysql.MySQLError:
        return {}
    try:
        with conn.cursor() as cur:
            counts = {}
            for name in dd.TABLE_NAMES:
                cur.execute(f"SELECT COUNT(*) FROM `{name}`")
                counts[name] = int(cur.fetchone()[0])
            return counts
    except pymysql.MySQLError:
        return {}
    finally:
        conn.close()


def capture_overhead(scale: str, repeat: int, workers: int, database: str | None = None) -> dict:
    from benchmarks.resources import Usage
    from clonekit.db.capture import capture_database
    from clonekit.sanitize import build_planner

    endpoint = dd.endpoint_from_env(database or f"ck_bench_sanitize_{str(scale).replace('.', '_')}")
    factor = dd.scale_factor(scale)
    wanted = {name: max(1, round(rows * factor)) for name, rows in dd.ROWS_AT_SMALL.items()}
    counts = _dataset_rows(endpoint)
    if counts != wanted:  # generate once per scale, then reuse
        if database:
            raise SystemExit(f"{database} does not hold the {scale} dataset: leave --database out to generate it")
        print(f"generating the {scale} dataset in {endpoint.database}...", file=sys.stderr, flush=True)
        dd.create_dataset(endpoint, scale)
        counts = wanted
    made = {"rows": sum(counts.values())}
    usages: dict[str, Usage] = {}
    planners: dict[str, Callable[[], object]] = {
        "no rules": CopyEverything,
        "drupal preset": lambda: build_planner(drupal_config()),
        # the same tables through the typed-row path with a transform that changes nothing:
        # what the db layer's Python path costs before any sanitization work
        "typed path only": lambda: _IdentityTransforms(build_planner(drupal_config())),
    }
    for _ in range(repeat):
        for label, make in planners.items():
            with Usage(endpoint) as usage:
                capture_database(endpoint, make(), CountingSink(), workers=workers)  # type: ignore[arg-type]
            if label not in usages or usage.seconds < usages[label].seconds:
                usages[label] = usage
        if shutil.which("mydumper"):
            with Usage(endpoint) as usage:
                _mydumper_seconds(endpoint, workers)
            if "mydumper" not in usages or usage.seconds < usages["mydumper"].seconds:
                usages["mydumper"] = usage
    timings = {label: u.seconds for label, u in usages.items()}
    return {"rows": made["rows"], **timings, "usage": usages, "strict": strict_check_seconds(endpoint),
            "ratio": timings["drupal preset"] / timings["no rules"]}


def strict_check_seconds(endpoint) -> dict[str, float]:  # noqa: ANN001
    """What strict mode adds before the first row: the drupal plan with and without it (best of 3)."""
    from dataclasses import replace

    from clonekit.db.connection import connect
    from clonekit.db.introspect import describe
    from clonekit.db.sample import sample_table
    from clonekit.sanitize import build_planner

    conn = connect(endpoint)
    try:
        tables = [info.table for info in describe(conn, endpoint.database)]
        result = {}
        for label, strict in (("strict", True), ("not strict", False)):
            wall = cpu = float("inf")
            for _ in range(3):
                planner = build_planner(replace(drupal_config(), strict=strict))
                started, cpu_started = time.perf_counter(), time.process_time()
                planner.plan(tables, lambda table, limit: sample_table(conn, table, limit))
                wall = min(wall, time.perf_counter() - started)
                cpu = min(cpu, time.process_time() - cpu_started)
            result[f"{label} wall"], result[f"{label} cpu"] = wall, cpu
        return result
    finally:
        conn.close()


def _mydumper_seconds(endpoint, workers: int) -> float:  # noqa: ANN001
    """The anchor: mydumper (no masking, compressed files), credentials in a 0600 defaults file."""
    with tempfile.TemporaryDirectory(prefix="ck-sanbench-") as tmp:
        cnf = Path(tmp) / "client.cnf"
        fd = os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"[mydumper]\nhost={endpoint.host}\nport={endpoint.port}\nuser={endpoint.user}\n"
                     f"password={endpoint.password or ''}\n")
        started = time.perf_counter()
        subprocess.run(["mydumper", f"--defaults-file={cnf}", "-h", endpoint.host, "-P", str(endpoint.port),
                        "-u", endpoint.user, "-B", endpoint.database, "-t", str(workers), "-c", "-o", f"{tmp}/out"],
                       check=True, capture_output=True)
        return time.perf_counter() - started


ONE_CAPTURE = {"no-rules": "no rules", "preset": "drupal preset"}
ONE_LABELS = {**ONE_CAPTURE, "typed": "typed path only"}


def one_capture(label: str, database: str, workers: int) -> dict:
    """One capture of an existing dataset in this process: what ``--pairs`` runs in a child."""
    import json

    from benchmarks.resources import Usage
    from clonekit.db.capture import capture_database
    from clonekit.sanitize import build_planner

    endpoint = dd.endpoint_from_env(database)
    planner = {"no-rules": CopyEverything, "preset": lambda: build_planner(drupal_config()),
               "typed": lambda: _IdentityTransforms(build_planner(drupal_config()))}[label]()
    load = os.getloadavg()[0]
    with Usage(endpoint) as usage:
        capture_database(endpoint, planner, CountingSink(), workers=workers)  # type: ignore[arg-type]
    result = {"label": ONE_LABELS[label], "wall": usage.seconds, "client_cpu": usage.client_cpu,
              "sampler_cpu": usage.sampler_cpu,
              "server_cpu": usage.server_cpu, "pss_mib": usage.peak_pss / 2**20, "rss_mib": usage.peak_rss / 2**20,
              "processes": usage.processes, "load": [load, os.getloadavg()[0]]}
    print(json.dumps(result), flush=True)
    return result


def capture_pairs(rounds: int, database: str, workers: int) -> None:
    """``rounds`` pairs, each a capture without rules then one with the drupal preset, every
    capture in a fresh process (no arena or cache carried over), so the two sides of a pair run
    in the same minutes on a shared machine."""
    import json

    for number in range(rounds):
        pair = {}
        for label in ONE_CAPTURE:
            done = subprocess.run([sys.executable, "-m", "benchmarks.sanitize_bench", "--one", label, "--database", database,
                                   "--workers", str(workers)], check=True, capture_output=True, text=True)
            pair[label] = json.loads(done.stdout.strip().splitlines()[-1])
        a, b = pair["no-rules"], pair["preset"]
        print(f"pair {number + 1}: no rules wall {a['wall']:.1f} s, client CPU {a['client_cpu']:.1f} s, server CPU "
              f"{a['server_cpu'] or 0:.1f} s, PSS {a['pss_mib']:.0f} MiB (load {a['load'][0]:.1f}-{a['load'][1]:.1f}) | "
              f"preset wall {b['wall']:.1f} s, client CPU {b['client_cpu']:.1f} s, server CPU {b['server_cpu'] or 0:.1f} s, "
              f"PSS {b['pss_mib']:.0f} MiB, RSS {b['rss_mib']:.0f} MiB, {b['processes']} processes "
              f"(load {b['load'][0]:.1f}-{b['load'][1]:.1f}) | ratio wall {b['wall'] / a['wall']:.2f}, "
              f"client CPU {b['client_cpu'] / a['client_cpu']:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per table for the transform throughput")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--capture", default=None, metavar="SCALE",
                        help="also measure capture overhead on the Drupal dataset at this scale: "
                             "tiny, small (~100 MB), medium, top or a multiplier of small")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", default=None,
                        help="read the dataset from this database (never written; default ck_bench_sanitize_<scale>, "
                             "generated when absent)")
    parser.add_argument("--pairs", type=int, default=0, metavar="N",
                        help="only N alternated pairs of captures of --database (no rules, then the drupal preset), "
                             "each in a fresh process: wall, CPU, memory and load average per capture")
    parser.add_argument("--one", choices=sorted(ONE_LABELS),
                        help="one capture of --database in this process (no-rules, preset, or typed: the sanitizing "
                             "path with transforms that change nothing); prints a JSON line")
    parser.add_argument("--repeated", type=int, nargs=2, metavar=("PEOPLE", "ADDRESSES"),
                        help="only the throughput on rows whose people and client addresses come from these many "
                             "(production logs repeat them), with the per-column caches off and on")
    args = parser.parse_args(argv)
    if args.repeated:
        repeated_inputs(args.rows, args.repeat, *args.repeated)
        return 0
    if args.one or args.pairs:
        if not args.database:
            parser.error("--pairs needs --database (a dataset generated by an earlier --capture run)")
        if args.one:
            one_capture(args.one, args.database, args.workers)
        else:
            capture_pairs(args.pairs, args.database, args.workers)
        return 0

    total_rows, total_seconds = 0, 0.0
    print(f"transform throughput, drupal preset, {args.rows} rows per table, best of {args.repeat}:")
    for name, rows, seconds, megabytes in transform_throughput(args.rows, args.repeat):
        total_rows += rows
        total_seconds += seconds
        print(f"  {name:26} {rows / seconds:>10,.0f} rows/s  {megabytes / seconds:7.1f} MB/s of values")
    print(f"  {'all transformed tables':26} {total_rows / total_seconds:>10,.0f} rows/s")
    if args.capture is not None:
        load = os.getloadavg()
        result = capture_overhead(args.capture, args.repeat, args.workers, args.database)
        print(f"capture of the Drupal dataset (scale {args.capture}: {result['rows']:,} rows), "
              f"{args.workers} workers, into a sink that stores nothing, best of {args.repeat} "
              f"(load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after):")
        usage = result["usage"]
        print(f"  no rules                      {usage['no rules']}")
        print(f"  drupal preset                 {usage['drupal preset']}")
        print(f"  typed path, no-op transforms  {usage['typed path only']} (the db layer's share)")
        print(f"  overhead ratio {result['ratio']:.2f} (target <= 1.15); typed path alone "
              f"{result['typed path only'] / result['no rules']:.2f}")
        if "mydumper" in result:
            print(f"  mydumper -t {args.workers} -c, no masking  {usage['mydumper']}: drupal preset / mydumper = "
                  f"{result['drupal preset'] / result['mydumper']:.2f} (target <= 1.0)")
        strict = result["strict"]
        print(f"  planning before the first row: {strict['strict wall']:.2f} s (CPU {strict['strict cpu']:.2f} s) in "
              f"strict mode (200 sampled rows per table), {strict['not strict wall']:.2f} s "
              f"(CPU {strict['not strict cpu']:.2f} s) without")
    return 0


if __name__ == "__main__":
    sys.exit(main())
