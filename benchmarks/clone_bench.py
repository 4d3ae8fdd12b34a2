"""Clone benchmark: `clonekit clone` end to end, beside the manual way, on the same machine.

    python3 -m benchmarks.clone_bench --runs 3                       # the WordPress fixture (ckprod)
    python3 -m benchmarks.clone_bench --reference --scale top        # the reference site (below)

``--reference``: the issue's reference site, a Drupal-shaped database (``benchmarks.drupal_dataset``,
top: 2.55 M rows, 1.8 GB of tables) on the benchmark MariaDB, the uploads tree
(``benchmarks.uploads_tree``, large: 20,008 files, 1.33 GiB) and an app service (busybox httpd
serving the tree: no PHP image here). ``clonekit clone prod --as NAME`` is timed whole as a
command (snapshot with the ``--preset`` rules + cold restore, until the app answers), beside the
manual way run by hand, step after step: ``mydumper -t 2 -c``, a MariaDB container,
``myloader -t 2``, ``rsync -a`` of the uploads, the app container, until it answers.

Without ``--reference``:

1. snapshot of ckprod (capture + sanitize + store), once;
2. create_preview from it (cold path), ``--runs`` times: phases files (volumes filled), db start (container up
   and accepting logins), db load (restore_database + URL rewrite), start (every service up),
   HTTP (until the site answers); then destroy; then materialize once and the same from the
   golden copy (restore_path "golden": no load, datadir copy-on-write in an image layer);
3. the anchor, side by side on the same data: the plain manual clone an agency scripts by hand:
   start a MariaDB container, ``mysqldump | mysql`` into it, ``tar | docker run tar -x`` the
   uploads into a volume, start WordPress on it and wait for HTTP. No sanitization, no URL rewrite.

Needs ./scripts/services.sh and ./scripts/wordpress-prod.sh up (started here when missing).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import Timing, ratio_line, time_command
from benchmarks.drupal_dataset import SOURCE_DB_SERVICE

ROOT = Path(__file__).resolve().parents[1]
STATE = Path("/var/tmp/clonekit-wordpress")
PHASES = ("files", "db_start", "db_load", "start", "http")  # db_start includes db_up (compose up of the db)

CONFIG = """
project: {project}
store: {store}
sources:
  prod:
    database: {{engine: mariadb, host: 127.0.0.1, port: 33306, name: wordpress, user: wp, password_env: CKPROD_DB_PASSWORD}}
    files: [{{path: {uploads}}}]
    containers: {{compose_project: ckprod}}
sanitize: {{preset: wordpress, secret_env: CLONEKIT_BENCH_SECRET, strict: false}}
previews:
  http_service: app
  env: {{WP_HOME: "{{url}}", DB_PASSWORD: "{{db.password}}"}}
  replace: {{"http://127.0.0.1:8088": "{{url}}"}}
"""


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))


def _wait_http(port: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/")
            if conn.getresponse().status < 500:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.25)
    raise RuntimeError(f"no HTTP answer on 127.0.0.1:{port}")


def _sh(argv: list[str], **kwargs) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run(argv, check=True, capture_output=True, **kwargs)


def anchor_clone(secrets: dict[str, str]) -> dict[str, float]:
    """The manual dump-and-load clone, phase by phase (seconds)."""
    tag = f"ckbench-{uuid.uuid4().hex[:6]}"
    password = uuid.uuid4().hex
    times: dict[str, float] = {}
    try:
        _sh(["docker", "network", "create", tag])
        started = time.perf_counter()
        _sh(["docker", "volume", "create", f"{tag}-uploads"])
        tar = subprocess.Popen(["tar", "-C", str(STATE / "uploads"), "-c", "."], stdout=subprocess.PIPE)
        _sh(["docker", "run", "-i", "--rm", "-v", f"{tag}-uploads:/dst", "clonekit/busybox:latest",
             "tar", "-x", "-f", "-", "-C", "/dst"], stdin=tar.stdout)
        tar.wait()
        times["files"] = time.perf_counter() - started

        started = time.perf_counter()
        _sh(["docker", "run", "-d", "--name", f"{tag}-db", "--network", tag, "--network-alias", "db",
             "-e", "MARIADB_DATABASE=wordpress", "-e", "MARIADB_USER=wp", "-e", f"MARIADB_PASSWORD={password}",
             "-e", f"MARIADB_ROOT_PASSWORD={password}", "-p", "127.0.0.1::3306", "clonekit/mariadb:10.11"])
        port = _sh(["docker", "port", f"{tag}-db", "3306"], text=True).stdout.split(":")[-1].strip()
        env = {**os.environ, "MYSQL_PWD": password}
        while subprocess.run(["mariadb", "--protocol=tcp", "-h127.0.0.1", f"-P{port}", "-uwp", "-e", "SELECT 1", "wordpress"],
                             capture_output=True, env=env).returncode != 0:
            time.sleep(0.25)
        times["db_start"] = time.perf_counter() - started

        started = time.perf_counter()
        dump = subprocess.Popen(["mysqldump", "--protocol=tcp", "-h127.0.0.1", "-P33306", "-uwp", "--single-transaction",
                                 "wordpress"], stdout=subprocess.PIPE,
                                env={**os.environ, "MYSQL_PWD": secrets["CKPROD_DB_PASSWORD"]})
        _sh(["mariadb", "--protocol=tcp", "-h127.0.0.1", f"-P{port}", "-uwp", "wordpress"], stdin=dump.stdout, env=env)
        if dump.wait() != 0:
            raise RuntimeError("mysqldump of ckprod failed (is ckprod up?)")
        times["db_load"] = time.perf_counter() - started

        started = time.perf_counter()
        _sh(["docker", "run", "-d", "--name", f"{tag}-app", "--network", tag, "-e", "DB_HOST=db", "-e", "DB_NAME=wordpress",
             "-e", "DB_USER=wp", "-e", f"DB_PASSWORD={password}",
             "-v", f"{tag}-uploads:/var/lib/wordpress/wp-content/uploads", "-p", "127.0.0.1::80", "clonekit/wordpress:6.1"])
        app_port = int(_sh(["docker", "port", f"{tag}-app", "80"], text=True).stdout.split(":")[-1].strip())
        times["start"] = time.perf_counter() - started
        started = time.perf_counter()
        _wait_http(app_port)
        times["http"] = time.perf_counter() - started
    finally:
        subprocess.run(["docker", "rm", "-f", f"{tag}-app", f"{tag}-db"], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", f"{tag}-uploads"], capture_output=True)
        subprocess.run(["docker", "network", "rm", tag], capture_output=True)
    return times


REFERENCE_COMPOSE = """
services:
""" + SOURCE_DB_SERVICE + """  app:
    image: clonekit/busybox:latest
    command: ["sh", "-c", "exec httpd -f -p 80 -h /var/www/html"]
    environment: {{DB_HOST: db, DB_PASSWORD: prod-secret}}
    ports: ["127.0.0.1::80"]
    volumes: ["{uploads}:/var/www/html/sites/default/files"]
    depends_on: [db]
volumes: {{dbdata: {{}}}}
"""
REFERENCE_CONFIG = """
project: {project}
store: {store}
sources:
  prod:
    database: {{engine: mariadb, host: {host}, port: {port}, name: {database}, user: {user},
               password_env: CLONEKIT_BENCH_DB_PASSWORD}}
    files: [{{path: {uploads}}}]
    containers: {{compose_project: {compose_project}}}
sanitize: {{preset: {preset}, secret_env: CLONEKIT_BENCH_SECRET, strict: false}}
previews:
  http_service: app
  env: {{DB_PASSWORD: "{{db.password}}"}}
  replace: {{"https://www.example.net": "{{url}}"}}
"""
APP_DOCROOT = "/var/www/html"


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def manual_reference_clone(endpoint, uploads: Path, workdir: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The manual way, by hand, one step after the other (seconds per step, peak RSS of the tools)."""
    tag = f"ckbench-{uuid.uuid4().hex[:6]}"
    password = uuid.uuid4().hex
    cnf = workdir / "manual.cnf"
    cnf.write_text("".join(f"[{g}]\nhost={endpoint.host}\nport={endpoint.port}\nuser={endpoint.user}\n"
                           f"password={endpoint.password or ''}\nprotocol=tcp\n" for g in ("client", "mydumper")))
    cnf.chmod(0o600)
    dump_dir, files_dir = workdir / "manual-dump", workdir / "manual-files"
    times: dict[str, float] = {}
    peaks: list[int] = []

    def step(name: str, timing: Timing) -> None:
        times[name] = timing.seconds
        peaks.append(timing.peak_rss_bytes)

    try:
        step("mydumper", time_command("mydumper -t 2 -c", [
            "mydumper", f"--defaults-file={cnf}", "-B", endpoint.database, "-t", "2", "-c", "-o", str(dump_dir)]))
        started = time.perf_counter()
        _sh(["docker", "network", "create", tag])
        _sh(["docker", "run", "-d", "--name", f"{tag}-db", "--network", tag, "--network-alias", "db",
             "-e", "MARIADB_DATABASE=drupal", "-e", "MARIADB_USER=drupal", "-e", f"MARIADB_PASSWORD={password}",
             "-e", f"MARIADB_ROOT_PASSWORD={password}", "-p", "127.0.0.1::3306", "clonekit/mariadb:10.11"])
        port = _sh(["docker", "port", f"{tag}-db", "3306"], text=True).stdout.split()[0].rsplit(":", 1)[1]
        env = {**os.environ, "MYSQL_PWD": password}
        while subprocess.run(["mariadb", "--protocol=tcp", "-h127.0.0.1", f"-P{port}", "-uroot", "-e", "SELECT 1"],
                             capture_output=True, env=env).returncode != 0:
            time.sleep(0.25)
        times["db_start"] = time.perf_counter() - started
        target_cnf = workdir / "target.cnf"
        target_cnf.write_text(f"[myloader]\nhost=127.0.0.1\nport={port}\nuser=root\npassword={password}\nprotocol=tcp\n")
        target_cnf.chmod(0o600)
        step("myloader", time_command("myloader -t 2", [
            "myloader", f"--defaults-file={target_cnf}", "-d", str(dump_dir), "-B", "drupal", "-t", "2", "-o"]))
        step("rsync", time_command("rsync -a", ["rsync", "-a", f"{uploads}/", f"{files_dir}/"]))
        started = time.perf_counter()
        _sh(["docker", "run", "-d", "--name", f"{tag}-app", "--network", tag, "-e", "DB_HOST=db",
             "-e", f"DB_PASSWORD={password}", "-v", f"{files_dir}:{APP_DOCROOT}/sites/default/files",
             "-p", "127.0.0.1::80", "clonekit/busybox:latest", "sh", "-c", f"exec httpd -f -p 80 -h {APP_DOCROOT}"])
        app_port = int(_sh(["docker", "port", f"{tag}-app", "80"], text=True).stdout.split()[0].rsplit(":", 1)[1])
        _wait_http(app_port)
        times["app_up"] = time.perf_counter() - started
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", f"{tag}-app", f"{tag}-db"], capture_output=True)
        subprocess.run(["docker", "network", "rm", tag], capture_output=True)
        shutil.rmtree(dump_dir, ignore_errors=True)
        shutil.rmtree(files_dir, ignore_errors=True)
    times["total"] = sum(times.values())
    times["peak_rss"] = max(peaks)
    return times


def reference(args: argparse.Namespace) -> int:
    from benchmarks.drupal_dataset import create_dataset, endpoint_from_env
    from benchmarks.uploads_tree import generate

    size = {"small": ("small", "small"), "top": ("top", "large")}[args.scale]
    database = args.database or f"ck_bench_clone_{args.scale}"
    endpoint = endpoint_from_env(database)
    check = subprocess.run(["mariadb", "--protocol=tcp", f"-h{endpoint.host}", f"-P{endpoint.port}", f"-u{endpoint.user}",
                            "-N", "-e", f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{database}'"],
                           capture_output=True, text=True, env={**os.environ, "MYSQL_PWD": endpoint.password or ""})
    if not (args.reuse and check.stdout.strip() not in ("", "0")):
        print(f"building the Drupal-shaped dataset ({size[0]}) in {database}", flush=True)
        create_dataset(endpoint, size[0])
    uploads = Path(os.environ.get("CLONEKIT_BENCH_DIR", "/var/tmp/ck-clone-bench")) / f"uploads-{size[1]}"
    tree = generate(uploads, size[1])
    print(f"reference site: database {database}, uploads {tree} ({_tree_bytes(uploads) / 2**30:.2f} GiB)", flush=True)
    os.environ["CLONEKIT_BENCH_DB_PASSWORD"] = endpoint.password or ""
    os.environ.setdefault("CLONEKIT_BENCH_SECRET", uuid.uuid4().hex)
    clonekit = str(Path(sys.executable).with_name("clonekit"))
    ours: list[dict[str, float]] = []
    manual: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="ck-clone-ref-", dir=os.environ.get("CLONEKIT_BENCH_DIR")) as tmp:
        root = Path(tmp)
        compose_project = f"ckbench-ref-{uuid.uuid4().hex[:6]}"
        compose_file = root / "compose.yml"
        compose_file.write_text(REFERENCE_COMPOSE.format(uploads=uploads))
        _sh(["docker", "compose", "-f", str(compose_file), "-p", compose_project, "create"])
        project = f"ckbench{uuid.uuid4().hex[:4]}"
        config_path = root / "clonekit.yml"
        config_path.write_text(REFERENCE_CONFIG.format(
            project=project, store=root / "store", host=endpoint.host, port=endpoint.port, database=database,
            user=endpoint.user, uploads=uploads, compose_project=compose_project, preset=args.preset))
        try:
            for run in range(args.runs):
                name = f"ref-{run}"
                # a fresh store each run: the first clone of a site (nothing to deduplicate against)
                shutil.rmtree(root / "store", ignore_errors=True)
                log_file = ["--log-file", args.log_file] if args.log_file else []
                timing = time_command("clonekit clone", [clonekit, "-q", *log_file, "-c", str(config_path), "clone",
                                                         "prod", "--as", name])
                state = json.loads((root / ".clonekit" / "previews" / name / "state.json").read_text())
                phases = {k: float(v) for k, v in (state.get("timings") or {}).items()}
                ours.append({"total": timing.seconds, "peak_rss": timing.peak_rss_bytes, **phases})
                print(f"clonekit clone run {run + 1}: {timing.seconds:.1f} s, peak RSS "
                      f"{timing.peak_rss_bytes / 2**20:.0f} MiB (restore phases: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()) + ")", flush=True)
                _sh([clonekit, "-q", "-c", str(config_path), "destroy", name, "--yes"])
                if args.ours_only:
                    continue
                times = manual_reference_clone(endpoint, uploads, root)
                manual.append(times)
                print(f"manual run {run + 1}: {times['total']:.1f} s ("
                      + ", ".join(f"{k} {v:.1f}" for k, v in times.items() if k not in ("total", "peak_rss")) + ")",
                      flush=True)
        finally:
            subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", compose_project, "down", "-v", "-t", "0"],
                           capture_output=True)
            label = f"label=clonekit.project={project}"
            subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter {label}) 2>/dev/null;"
                            f"docker volume rm -f $(docker volume ls -q --filter {label}) 2>/dev/null;"
                            f"docker network rm $(docker network ls -q --filter {label}) 2>/dev/null"],
                           capture_output=True)
    if args.ours_only:
        return 0
    best, anchor = min(r["total"] for r in ours), min(r["total"] for r in manual)
    peak = max(r["peak_rss"] for r in ours)
    print("\n" + ratio_line(f"clonekit clone of the reference site ({args.scale}, preset {args.preset}) vs the manual way",
                            best, anchor))
    print(f"RESULT cold clone of the reference site ({args.scale}, preset {args.preset}): {best:.1f} s vs anchor "
          f"{anchor:.1f} s (mydumper + myloader + rsync + app by hand), ratio {best / anchor:.2f}; "
          f"goal <= 60 s and <= 0.5x: {'met' if best <= 60 and best <= 0.5 * anchor else 'MISSED'}; "
          f"peak RSS {peak / 2**20:.0f} MiB")
    if args.json:
        print(json.dumps({"clonekit": ours, "manual": manual}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="create_preview runs (and anchor runs)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document too")
    parser.add_argument("--reference", action="store_true",
                        help="the reference site (Drupal-shaped DB + uploads tree + app) instead of ckprod")
    parser.add_argument("--scale", choices=["small", "top"], default="small", help="reference site size")
    parser.add_argument("--preset", choices=["drupal", "none"], default="drupal", help="reference site rules")
    parser.add_argument("--database", help="reference site: the source database (default ck_bench_clone_SCALE)")
    parser.add_argument("--ours-only", action="store_true",
                        help="reference site: clonekit's clone alone, no manual way and no ratio (to iterate)")
    parser.add_argument("--log-file", help="reference site: the clone's --log-file (its operations and durations)")
    parser.add_argument("--reuse", action="store_true", help="reference site: keep a database built earlier")
    args = parser.parse_args(argv)
    if args.reference:
        return reference(args)

    subprocess.run([str(ROOT / "scripts" / "wordpress-prod.sh"), "up"], check=True, capture_output=True)
    secrets = _env_file(STATE / "prod.env")
    os.environ["CKPROD_DB_PASSWORD"] = secrets["CKPROD_DB_PASSWORD"]
    os.environ.setdefault("CLONEKIT_BENCH_SECRET", uuid.uuid4().hex)

    from clonekit import Project
    from clonekit.golden import materialize, prune_golden_images
    from clonekit.preview import create_preview, destroy_preview

    with tempfile.TemporaryDirectory(prefix="ck-clone-bench-") as tmp:
        config_path = Path(tmp) / "clonekit.yml"
        config_path.write_text(CONFIG.format(project=f"ckbench{uuid.uuid4().hex[:4]}", store=Path(tmp) / "store",
                                             uploads=STATE / "uploads"))
        project = Project.load(config_path)
        started = time.perf_counter()
        manifest = project.snapshot("prod")
        snapshot_seconds = time.perf_counter() - started
        print(f"snapshot of ckprod (capture + sanitize + store): {snapshot_seconds:.2f} s", flush=True)

        ours: list[dict[str, float]] = []
        for run in range(args.runs):
            name = f"bench-{run}"
            started = time.perf_counter()
            preview = create_preview(project.config, project.repository, manifest, name)
            total = time.perf_counter() - started
            timings = json.loads((preview.path / "state.json").read_text())["timings"]
            destroy_preview(project.config, name)
            ours.append({**{p: float(timings.get(p, 0.0)) for p in PHASES}, "total": total})
            print(f"restore run {run + 1}: total {total:.2f} s ("
                  + ", ".join(f"{p} {timings.get(p, 0.0):.2f}" for p in PHASES)
                  + f"; of db_start, compose up {timings.get('db_up', 0.0):.2f})", flush=True)

        started = time.perf_counter()
        materialize(project.config, project.repository, manifest)
        materialize_seconds = time.perf_counter() - started
        print(f"materialize (golden copy, once per snapshot): {materialize_seconds:.2f} s", flush=True)
        golden: list[dict[str, float]] = []
        for run in range(args.runs):
            name = f"golden-{run}"
            started = time.perf_counter()
            preview = create_preview(project.config, project.repository, manifest, name)
            total = time.perf_counter() - started
            assert preview.restore_path == "golden"
            timings = json.loads((preview.path / "state.json").read_text())["timings"]
            destroy_preview(project.config, name)
            golden.append({**{p: float(timings.get(p, 0.0)) for p in PHASES}, "total": total})
            print(f"golden run {run + 1}: total {total:.2f} s ("
                  + ", ".join(f"{p} {timings.get(p, 0.0):.2f}" for p in PHASES) + ")", flush=True)
        prune_golden_images(project.config, keep=[])

        anchors: list[dict[str, float]] = []
        for run in range(args.runs):
            times = anchor_clone(secrets)
            times["total"] = sum(times.values())
            anchors.append(times)
            print(f"anchor run {run + 1}: total {times['total']:.2f} s ("
                  + ", ".join(f"{p} {times.get(p, 0.0):.2f}" for p in PHASES) + ")", flush=True)

    median = {k: statistics.median(r[k] for r in ours) for k in (*PHASES, "total")}
    anchor = {k: statistics.median(r[k] for r in anchors) for k in (*PHASES, "total")}
    print("\nmedians (clonekit cold restore vs manual mysqldump|mysql + tar clone, same machine):")
    for key in (*PHASES, "total"):
        print("  " + ratio_line(key, median[key], anchor[key]))
    print(f"  clone end to end (snapshot + restore): {snapshot_seconds + median['total']:.2f} s")
    gold = {k: statistics.median(r[k] for r in golden) for k in (*PHASES, "total")}
    print("\nmedians (clonekit clone from the golden copy vs the same manual clone):")
    for key in (*PHASES, "total"):
        print("  " + ratio_line(key, gold[key], anchor[key]))
    print(f"  materialize once: {materialize_seconds:.2f} s")
    if args.json:
        print(json.dumps({"snapshot_seconds": snapshot_seconds, "restore": median, "golden": gold,
                          "materialize_seconds": materialize_seconds, "anchor": anchor, "runs": args.runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
