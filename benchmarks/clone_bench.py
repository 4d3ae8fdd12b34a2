"""Clone benchmark: `clonekit clone` of the WordPress production fixture, split into phases.

    python3 -m benchmarks.clone_bench --runs 3

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
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.common import ratio_line

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="create_preview runs (and anchor runs)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON document too")
    args = parser.parse_args(argv)

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
