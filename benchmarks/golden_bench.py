"""Clone time from a golden copy, flat in size: Drupal-shaped datasets ten times apart.

    python3 -m benchmarks.golden_bench                  # scale small (~100 MB of SQL) and 1/10 of it
    python3 -m benchmarks.golden_bench --scale top      # top (~1 GB), small and 1/10 of small
    python3 -m benchmarks.golden_bench --scale 0.2 --runs 3 --reuse
    DOCKER_HOST=unix:///run/ckxfs.sock python3 -m benchmarks.golden_bench --scale top --largest-only --reuse
                                                        # the same on an engine whose storage is on XFS

For each size: a source database (``benchmarks.drupal_dataset``) on the benchmark MariaDB, a
snapshot of it (copied as it is: the clone is what is measured), then

* cold: ``create_preview`` of the snapshot before it is materialized (load from the store);
* materialize: ``clonekit.golden.materialize`` once (load, clean shutdown, commit);
* golden: ``create_preview`` of the materialized snapshot, ``--runs`` times (median reported),
  with ``previews.replace`` rewriting the production URL (one article body in ten links to the
  site, some serialized settings hold it; every ``watchdog`` row does, left out by default);
* golden, all tables: the same with ``previews.replace_skip: []`` (log rows rewritten too: the
  behaviour before log tables were left out), once; golden without ``replace``: the floor;
* anchor: the plain dump-and-load of the same data: ``docker run`` of the same MariaDB image,
  then ``mysqldump --single-transaction | mariadb`` into it.

Every clone is timed until it is usable: ``create_preview`` returns when the preview's HTTP
service answers (its database loaded, re-keyed and ``previews.replace`` applied); the anchor
when the load has finished. The preview's own phase timings (state.json) are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymysql

from benchmarks.common import time_function
from benchmarks.drupal_dataset import (
    SOURCE_DB_SERVICE,
    TABLE_OPTIONS,
    create_dataset,
    endpoint_from_env,
    php_serialize,
    scale_factor,
)
from clonekit.config import ContainersSource, FileSource, parse_config
from clonekit.containers import capture_services
from clonekit.db import DbEndpoint, capture_database
from clonekit.files import capture_files
from clonekit.golden import materialize
from clonekit.manifest import Manifest, new_snapshot_id
from clonekit.preview import create_preview, destroy_preview
from clonekit.repository import Repository
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.golden_engine import layer_files
from clonekit.schema import CopyEverything

DB_IMAGE = "clonekit/mariadb:10.11"
PROD_URL = "https://www.example.net"
SOURCE_COMPOSE = """
services:
""" + SOURCE_DB_SERVICE.replace(f"image: {DB_IMAGE}", "image: {db_image}") + """  web:
    image: clonekit/busybox:latest
    command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1::80"]
    volumes: ["{site}:/www"]
    depends_on: [db]
volumes: {{dbdata: {{}}}}
"""


def _log(message: str) -> None:
    print(f"[golden-bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _backing_filesystem() -> str:
    """The engine's storage driver and the filesystem under it: what a preview's first write to a
    golden table file costs depends on it (overlayfs copies the whole file up, in O(1) on a
    reflink filesystem such as XFS or btrfs)."""
    done = subprocess.run(["docker", "info", "--format", "{{.Driver}} {{json .DriverStatus}}"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or done.stderr.strip()


def _data_bytes(endpoint: DbEndpoint) -> int:
    conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = %s", (endpoint.database,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _database_exists(endpoint: DbEndpoint) -> bool:
    conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (endpoint.database,))
            return int(cur.fetchone()[0]) > 0
    finally:
        conn.close()


def _snapshot(config: Any, endpoint: DbEndpoint, site: Path, compose_project: str) -> Manifest:
    repo = Repository.open(config.store)
    started = datetime.now(UTC)
    with repo.writer() as writer:
        database = capture_database(endpoint, CopyEverything(), writer)
        files = capture_files(FileSource(str(site)), writer)
    manifest = Manifest(
        id=new_snapshot_id("prod", started), source="prod", project=config.project, created_at=started,
        tool_version="bench", rules_digest="none", database=database, files=(files,),
        services=capture_services(ContainersSource(compose_project)),
    )
    repo.commit(manifest)
    return manifest


def _timed_preview(config: Any, repo: Repository, manifest: Manifest, name: str) -> tuple[float, str, dict[str, float], int]:
    """(seconds until the preview answers, restore path, its phase timings, peak RSS of this process)."""
    timing = time_function(name, lambda: create_preview(config, repo, manifest, name))
    preview = timing.result
    timings = json.loads((preview.path / "state.json").read_text()).get("timings", {})
    timings["db_layer_mb"], timings["db_files_copied"] = _db_layer(preview)
    destroy_preview(config, name)
    return timing.seconds, preview.restore_path, timings, timing.peak_rss_bytes


def _db_layer(preview: Any) -> tuple[float, list[str]]:
    """The preview database container's own layer: its size (MB) and the table files copied up into
    it (overlayfs copies a golden file whole when it is opened for writing, which InnoDB does to
    every table it reads or writes: what a clone pays besides its start). Read from the layer's
    upper directory; ``docker container diff`` (the fallback) misses files copied up unchanged."""
    compose = ["docker", "compose", "-f", str(preview.path / "compose.yml")]
    container = subprocess.run([*compose, "ps", "-q", "db"], capture_output=True, text=True, check=False).stdout.strip()
    if not container:
        return 0.0, []
    layer = layer_files(DockerEngine(), container)
    if layer is not None:
        paths = list(layer)
        size = sum(layer.values())
    else:
        size = int(subprocess.run(["docker", "container", "inspect", "--size", "--format", "{{.SizeRw}}", container],
                                  capture_output=True, text=True, check=False).stdout.strip() or 0)
        diff = subprocess.run(["docker", "container", "diff", container], capture_output=True, text=True, check=False).stdout
        paths = [line.split(" ", 1)[-1] for line in diff.splitlines()]
    # the tables' files and the system tablespace, not the server's own tables (the re-key writes those)
    files = sorted(path.rsplit("/", 1)[-1] for path in paths if path.endswith("/ibdata1")
                   or path.endswith((".ibd", ".MAD", ".MAI", ".MYD"))
                   and path.rsplit("/", 2)[-2] not in ("mysql", "sys", "performance_schema"))
    return round(size / 1e6, 1), files


def _link_content(endpoint: DbEndpoint) -> int:
    """What a real site holds besides its logs: links to itself in content (one article body in
    ten links to another page) and PHP-serialized settings in a text column (``settings``, as
    WordPress's ``wp_options``; one entry in ten holds the site's URL). Idempotent; returns the
    rows holding PROD_URL outside the log."""
    conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password or "",
                           database=endpoint.database, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE node__body SET body_value = CONCAT(body_value, '<p><a href=\"', %s, '/node/', "
                        "entity_id + 1, '\">next</a></p>') WHERE entity_id %% 10 = 0 AND body_value NOT LIKE %s",
                        (PROD_URL, f"%{PROD_URL}%"))
            cur.execute("CREATE TABLE IF NOT EXISTS settings (name varchar(128) NOT NULL PRIMARY KEY, value longtext) "
                        + TABLE_OPTIONS)
            cur.execute("SELECT COUNT(*) FROM settings")
            if not cur.fetchone()[0]:
                rows = []
                for i in range(500):
                    value: dict[str, Any] = {"uuid": uuid.UUID(int=i).hex, "langcode": "en", "weight": i}
                    if i % 10 == 0:
                        value["link"] = {"uri": f"{PROD_URL}/page/{i}", "title": f"Page {i}"}
                    rows.append((f"bench.settings_{i}", php_serialize(value)))
                cur.executemany("INSERT INTO settings VALUES (%s, %s)", rows)
            cur.execute("SELECT (SELECT COUNT(*) FROM node__body WHERE body_value LIKE %s) "
                        "+ (SELECT COUNT(*) FROM settings WHERE value LIKE %s)", (f"%{PROD_URL}%", f"%{PROD_URL}%"))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _anchor_dump_and_load(endpoint: DbEndpoint) -> float:
    """docker run of the same image, then mysqldump | mariadb into it: the plain clone."""
    name = f"ckbench-anchor-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    subprocess.run(["docker", "run", "-d", "--name", name, "-p", "127.0.0.1::3306", "-e", "MARIADB_DATABASE=clone",
                    "-e", "MARIADB_ROOT_PASSWORD=anchor", DB_IMAGE], check=True, capture_output=True)
    try:
        port = subprocess.run(["docker", "port", name, "3306"], check=True, capture_output=True,
                              text=True).stdout.split()[0].rsplit(":", 1)[1]
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=int(port), user="root", password="anchor", database="clone").close()
                break
            except pymysql.MySQLError:
                time.sleep(0.2)
        env = {**os.environ, "MYSQL_PWD": endpoint.password or ""}
        dump = subprocess.Popen(["mysqldump", "--single-transaction", "--quick", "-h", endpoint.host, "-P", str(endpoint.port),
                                 "-u", endpoint.user, endpoint.database], stdout=subprocess.PIPE, env=env)
        subprocess.run(["mariadb", "-h", "127.0.0.1", "-P", port, "-u", "root", "clone"], stdin=dump.stdout, check=True,
                       env={**os.environ, "MYSQL_PWD": "anchor"})
        assert dump.stdout is not None
        dump.stdout.close()
        if dump.wait() != 0:
            raise RuntimeError("mysqldump failed")
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


def bench_size(scale: float, runs: int, reuse: bool, workdir: Path, *, cold: bool = True) -> dict[str, Any]:
    database = f"ck_bench_golden_{str(scale).replace('.', '_')}"
    endpoint = endpoint_from_env(database)
    if not (reuse and _database_exists(endpoint)):
        _log(f"building the dataset at scale {scale} in {database}")
        create_dataset(endpoint, scale)
    linked = _link_content(endpoint)
    size = _data_bytes(endpoint)
    root = workdir / database
    site = root / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text("clone\n")
    compose_project = f"ckbench-src-{uuid.uuid4().hex[:6]}"
    compose_file = root / "compose.yml"
    compose_file.write_text(SOURCE_COMPOSE.format(db_image=DB_IMAGE, site=site))
    subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", compose_project, "create"], check=True,
                   capture_output=True)
    project = f"ckbench{uuid.uuid4().hex[:6]}"
    config = parse_config({
        "project": project, "store": str(root / "store"),
        "sources": {"prod": {"files": [str(site)], "containers": {"compose_project": compose_project}}},
        "previews": {"env": {"DB_PASSWORD": "{db.password}"}, "replace": {PROD_URL: "{url}"}},
    }, root / "clonekit.yml")
    repo = Repository.open(config.store)
    out: dict[str, Any] = {"scale": scale, "data_bytes": size, "linked_rows": linked, "peak_rss": {}}
    try:
        _log(f"scale {scale}: snapshot of {size / 1e6:.0f} MB of tables ({linked} content rows link to {PROD_URL})")
        manifest = _snapshot(config, endpoint, site, compose_project)
        out["cold_seconds"] = float("nan")
        if cold:
            _log("cold clone")
            out["cold_seconds"], path, out["cold_phases"], out["peak_rss"]["cold"] = _timed_preview(
                config, repo, manifest, "cold")
            assert path == "cold", path
        _log("materialize")
        timing = time_function("materialize", lambda: materialize(config, repo, manifest))
        out["materialize_seconds"], out["peak_rss"]["materialize"] = timing.seconds, timing.peak_rss_bytes
        golden, peaks = [], []
        for run in range(runs):
            seconds, path, phases, peak = _timed_preview(config, repo, manifest, f"golden-{run}")
            assert path == "golden", path
            golden.append(seconds)
            peaks.append(peak)
            out["golden_phases"] = phases
            _log(f"golden clone {run + 1}/{runs}: {seconds:.2f}s {phases}")
        out["golden_seconds"] = golden
        out["golden_median"] = statistics.median(golden)
        out["peak_rss"]["golden"] = max(peaks)
        # The behaviour before log tables were left out by default: every table holding the URL
        # rewritten (previews.replace_skip: []), watchdog's log rows included. Once: it is the slow one.
        everything = replace(config, previews=replace(config.previews, replace_skip=()))
        seconds, path, phases, _peak = _timed_preview(everything, repo, manifest, "all-tables")
        assert path == "golden", path
        out["golden_all_tables_seconds"] = seconds
        _log(f"golden clone rewriting the log tables too: {seconds:.2f}s {phases}")
        # The same clones without previews.replace: the floor of a golden clone.
        plain = replace(config, previews=replace(config.previews, replace={}))
        bare = []
        for run in range(max(1, runs - 1)):
            seconds, path, phases, _peak = _timed_preview(plain, repo, manifest, f"plain-{run}")
            assert path == "golden", path
            bare.append(seconds)
            _log(f"golden clone without replace {run + 1}: {seconds:.2f}s {phases}")
        out["golden_no_replace_median"] = statistics.median(bare)
        _log("anchor: dump and load")
        out["anchor_seconds"] = _anchor_dump_and_load(endpoint)
    finally:
        label = f"label=clonekit.project={project}"
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter {label}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter {label}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter {label}) 2>/dev/null;"
                        f"docker image rm -f $(docker images -q --filter {label}) 2>/dev/null"], capture_output=True)
        subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", compose_project, "down", "-v", "-t", "0"],
                       capture_output=True)
    return out


def files_compare(megabytes: int, files: int = 200) -> dict[str, float]:
    """A preview's own writable copy of a file tree: a golden volume copied (``cp -a`` in the engine)
    against an image whose layer holds the tree (a container started on it: copy-on-write)."""
    tag = uuid.uuid4().hex[:6]
    golden, copy, image, builder = f"ckbench-gv-{tag}", f"ckbench-cv-{tag}", f"ckbench-gi:{tag}", f"ckbench-gb-{tag}"
    size_kb = max(1, megabytes * 1024 // files)
    busybox = "clonekit/busybox:latest"

    def docker(*args: str) -> None:
        subprocess.run(["docker", *args], check=True, capture_output=True)

    try:
        docker("volume", "create", golden)
        docker("run", "--rm", "-v", f"{golden}:/d", busybox, "sh", "-c",
               f"for i in $(seq 1 {files}); do head -c {size_kb}k /dev/urandom > /d/f$i; done")
        docker("run", "--name", builder, "-v", f"{golden}:/src:ro", busybox, "sh", "-c", "mkdir /www && cp -a /src/. /www/")
        docker("commit", builder, image)
        started = time.monotonic()
        docker("volume", "create", copy)
        docker("run", "--rm", "-v", f"{golden}:/src:ro", "-v", f"{copy}:/dst", busybox, "cp", "-a", "/src/.", "/dst/")
        docker("run", "--rm", "-v", f"{copy}:/www", busybox, "sh", "-c", "echo x >> /www/f1")
        volume_seconds = time.monotonic() - started
        started = time.monotonic()
        docker("run", "--rm", image, "sh", "-c", "echo x >> /www/f1")
        layer_seconds = time.monotonic() - started
        started = time.monotonic()
        docker("run", "--rm", busybox, "true")
        bare_seconds = time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", builder], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", golden, copy], capture_output=True)
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
    return {"megabytes": megabytes, "volume_copy_seconds": volume_seconds, "image_layer_seconds": layer_seconds,
            "bare_container_seconds": bare_seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", help="the larger size; the other is a tenth of it")
    parser.add_argument("--runs", type=int, default=3, help="golden clones per size (median reported)")
    parser.add_argument("--reuse", action="store_true", help="keep a source database built by an earlier run")
    parser.add_argument("--files-mb", type=int, nargs="*", default=[],
                        help="also compare a golden volume copy with an image layer for file trees of these sizes")
    parser.add_argument("--skip-cold", action="store_true", help="no cold clone (issue 6's clone bench times it)")
    parser.add_argument("--files-only", action="store_true", help="only the file tree comparison")
    parser.add_argument("--largest-only", action="store_true", help="only the largest size (with --scale top: 1.8 GB)")
    args = parser.parse_args(argv)
    for megabytes in args.files_mb:
        result = files_compare(megabytes)
        print(f"files {megabytes} MB: golden volume copied {result['volume_copy_seconds']:.2f}s, "
              f"image layer {result['image_layer_seconds']:.2f}s (a bare container {result['bare_container_seconds']:.2f}s)")
    if args.files_only:
        return 0
    big = scale_factor(args.scale)
    # sizes ten times apart: small -> 0.1, 1; top -> 0.1, 1, 10 (21 MB, 190 MB, 1.8 GB of tables)
    scales = sorted({round(big / 100, 4), round(big / 10, 4), big} if big >= 10 else {round(big / 10, 4), big})
    if args.largest_only:
        scales = [big]
    _log(f"engine storage: {_backing_filesystem()} (DOCKER_HOST={os.environ.get('DOCKER_HOST', 'default')})")
    workdir = Path(tempfile.mkdtemp(prefix="ck-golden-bench-"))
    results = []
    try:
        for scale in scales:
            results.append(bench_size(scale, args.runs, args.reuse, workdir, cold=not args.skip_cold))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=2))
    print()
    print(f"{'tables':>10} {'golden':>8} {'all-tables':>10} {'no-repl':>8} {'cold':>8} {'dump+load':>10} "
          f"{'materialize':>12} {'peak RSS':>9}  golden/anchor")
    for r in results:
        peak = max(r["peak_rss"].values()) / 2**20
        print(f"{r['data_bytes'] / 1e6:>8.0f}MB {r['golden_median']:>7.1f}s {r['golden_all_tables_seconds']:>9.1f}s "
              f"{r['golden_no_replace_median']:>7.1f}s {r['cold_seconds']:>7.1f}s "
              f"{r['anchor_seconds']:>9.1f}s {r['materialize_seconds']:>11.1f}s {peak:>7.0f}MiB  "
              f"{r['golden_median'] / r['anchor_seconds']:>12.2f}")
    for r in results:  # the lines benchmarks.run collects into its summary
        print(f"RESULT golden clone {r['data_bytes'] / 1e6:.0f} MB: {r['golden_median']:.2f} s vs anchor "
              f"{r['anchor_seconds']:.2f} s (dump and load), ratio {r['golden_median'] / r['anchor_seconds']:.2f}; "
              f"goal <= 5 s: {'met' if r['golden_median'] <= 5 else 'MISSED'}; "
              f"peak RSS {max(r['peak_rss'].values()) / 2**20:.0f} MiB")
    if len(results) >= 2:
        growth = results[-1]["golden_median"] / results[0]["golden_median"]
        print(f"golden clone time x{growth:.2f} for x{results[-1]['data_bytes'] / max(1, results[0]['data_bytes']):.1f} "
              "the data (target: flat, <= 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
