"""The preview's database load, variant against variant, on the same stored snapshot.

    python3 -m benchmarks.load_variants --database ck_bench_clone_top --rounds 2 --variants data,bind

Captures the database once with the ``drupal`` preset into a local store, then per round and
variant (alternated): a fresh ``clonekit/mariadb:10.11`` container, ``bulk_load`` around
``restore_database`` as the cold path does, and prints the seconds before, during and after the
load, the server's CPU (the container's cgroup) and this process's CPU and peak RSS. Variants:
``data`` (LOAD DATA) and ``bind`` (prepared INSERTs) set ``CLONEKIT_LOAD``'s switch; ``data+bulk``
and ``bind+bulk`` also turn ``unique_checks`` off in the load's sessions (the setting before 2026-12-03).
Needs ./scripts/services.sh up and the dataset (``benchmarks.drupal_dataset``, as ``clone_bench`` builds it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.db_bench import _sanitizer
from benchmarks.drupal_dataset import endpoint_from_env
from clonekit.config import StoreConfig
from clonekit.db import DbEndpoint, capture_database, restore_database
from clonekit.db import restore as restore_module
from clonekit.db.target import bulk_load, wait_for_database
from clonekit.repository import Repository

IMAGE = "clonekit/mariadb:10.11"
SESSION_SQL = restore_module.SESSION_SQL


def _container_cpu(container_id: str) -> float:
    """CPU seconds of a container so far (cgroup v1 or v2), NaN when neither is readable."""
    for path in (f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage",
                 f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        return int(text) / 1e9 if path.endswith("usage") else int(text.split()[1]) / 1e6
    return float("nan")


def _restore_once(repo: Repository, section: dict, variant: str) -> str:
    mode, _, extra = variant.partition("+")
    restore_module.LOAD_MODE = mode
    # "+bulk": unique_checks off as well, as before 2026-12-03 (MariaDB's bulk insert into an empty table)
    restore_module.SESSION_SQL = SESSION_SQL + (("SET SESSION unique_checks = 0",) if extra == "bulk" else ())
    name, password = f"ck-loadvar-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    container = subprocess.run(
        ["docker", "run", "-d", "--name", name, "-e", f"MARIADB_ROOT_PASSWORD={password}", "-e", "MARIADB_DATABASE=site",
         "-e", "MARIADB_USER=site", "-e", f"MARIADB_PASSWORD={password}", "-p", "127.0.0.1::3306", IMAGE],
        check=True, capture_output=True, text=True).stdout.strip()
    try:
        port = int(subprocess.run(["docker", "port", name, "3306/tcp"], check=True, capture_output=True,
                                  text=True).stdout.split()[0].rsplit(":", 1)[-1])
        target = DbEndpoint("127.0.0.1", port, "site", password, "site")
        wait_for_database(target)

        def as_root(argv: list[str], stdin: bytes) -> None:
            subprocess.run(["docker", "exec", "-i", name, *argv], input=stdin, check=True, capture_output=True)

        cpu, usage, started = _container_cpu(container), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        with bulk_load(target, as_root, password, int(section["bytes"])):
            loading = time.monotonic()
            restore_database(repo, section, target, workers=2)
            loaded = time.monotonic()
        ended = time.monotonic()
        after = resource.getrusage(resource.RUSAGE_SELF)
        client = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
        return (f"{variant:5} whole {ended - started:5.1f} s (before {loading - started:.1f}, load {loaded - loading:.1f}, "
                f"after {ended - loaded:.1f}); server CPU {_container_cpu(container) - cpu:.1f} s, client CPU "
                f"{client:.1f} s, peak RSS {after.ru_maxrss >> 10} MiB")
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="ck_bench_clone_top", help="the source database (the dataset)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="data,bind", help="comma-separated: data, bind, data+bulk, bind+bulk")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ck-loadvar-", dir="/var/tmp") as tmp:
        repo = Repository.open(StoreConfig(url=str(Path(tmp) / "store")))
        started = time.monotonic()
        with repo.writer() as writer:
            section = json.loads(json.dumps(capture_database(endpoint_from_env(args.database), _sanitizer(), writer)))
        print(f"captured {section['rows']} rows ({section['bytes'] >> 20} MiB) in {time.monotonic() - started:.1f} s",
              flush=True)
        for _ in range(args.rounds):
            for variant in args.variants.split(","):
                print(_restore_once(repo, section, variant), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
