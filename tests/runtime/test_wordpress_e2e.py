"""End to end on the WordPress production fixture (compose project ckprod).

`clonekit clone prod --as feature-x` from the CLI → the preview URL shows the site's posts, the
preview database has the source's row counts and none of the seeded personal values, uploads are
served, the source is untouched; then `destroy` through the Python API leaves nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pymysql
import pytest

from clonekit import Project

ROOT = Path(__file__).resolve().parents[2]
STATE = Path("/var/tmp/clonekit-wordpress")
TABLES_WITH_ALL_ROWS = ("wp_posts", "wp_users", "wp_comments", "wp_postmeta", "wp_terms")

CONFIG = """
project: {project}
store: {store}
sources:
  prod:
    database: {{engine: mariadb, host: 127.0.0.1, port: 33306, name: wordpress, user: wp, password_env: CKPROD_DB_PASSWORD}}
    files: [{{path: {uploads}}}]
    containers: {{compose_project: ckprod}}
sanitize: {{preset: wordpress, secret_env: CLONEKIT_E2E_SECRET}}
previews:
  http_service: app
  env: {{WP_HOME: "{{url}}", DB_PASSWORD: "{{db.password}}"}}
  replace: {{"http://127.0.0.1:8088": "{{url}}"}}
  ttl: 1d
"""


@pytest.fixture
def production(ckprod) -> dict:
    return {"secrets": ckprod.secrets, "seeded": ckprod.seeded}


def _connect(port: int, user: str, password: str, database: str) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database=database,
                           charset="utf8mb4", autocommit=True)


def _counts_and_checksums(conn) -> tuple[dict[str, int], dict[str, int]]:
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        tables = [t for (t,) in cur.fetchall()]
        counts = {}
        for table in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = cur.fetchone()[0]
        cur.execute("CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))
        checksums = {name.split(".", 1)[1]: value for name, value in cur.fetchall()}
    return counts, checksums


def _leaks(conn, values: list[str]) -> dict[str, int]:
    """``table.column`` -> how many seeded personal values it still holds (values not shown)."""
    found: dict[str, int] = {}
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM `{table}`")
            names = [d[0] for d in cur.description]
            for row in cur.fetchall():
                for name, value in zip(names, row, strict=True):
                    if value is None:
                        continue
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    hits = sum(1 for v in values if v in text)
                    if hits:
                        found[f"{table}.{name}"] = found.get(f"{table}.{name}", 0) + hits
    return found


def test_clone_wordpress_end_to_end(production, tmp_path, monkeypatch):
    project = f"cktestwp{uuid.uuid4().hex[:6]}"
    config_path = tmp_path / "clonekit.yml"
    config_path.write_text(CONFIG.format(project=project, store=tmp_path / "store", uploads=STATE / "uploads"))
    env = {**os.environ, "CKPROD_DB_PASSWORD": production["secrets"]["CKPROD_DB_PASSWORD"],
           "CLONEKIT_E2E_SECRET": uuid.uuid4().hex}
    for name in ("CKPROD_DB_PASSWORD", "CLONEKIT_E2E_SECRET"):  # the API half reads them too
        monkeypatch.setenv(name, env[name])
    source = _connect(33306, "wp", production["secrets"]["CKPROD_DB_PASSWORD"], "wordpress")
    counts_before, checksums_before = _counts_and_checksums(source)
    with source.cursor() as cur:
        cur.execute("SELECT post_title FROM wp_posts WHERE post_type='post' AND post_status='publish' "
                    "ORDER BY post_date DESC LIMIT 3")
        titles = [t for (t,) in cur.fetchall()]
    try:
        done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config_path), "--json", "clone", "prod",
                               "--as", "feature-x"], capture_output=True, text=True, env=env, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        project_api = Project.load(config_path)
        [preview] = project_api.previews()
        assert preview.name == "feature-x" and preview.status == "running"

        page = urllib.request.urlopen(preview.url + "/", timeout=30).read().decode()
        for title in titles:
            assert title.replace("'", "&#8217;") in page or title in page
        assert "127.0.0.1:8088" not in page  # links point at the preview
        upload = next(p for p in sorted((STATE / "uploads").rglob("*")) if p.is_file())
        relative = upload.relative_to(STATE / "uploads").as_posix()
        assert urllib.request.urlopen(f"{preview.url}/wp-content/uploads/{relative}", timeout=30).read() == upload.read_bytes()

        secrets = json.loads((preview.path / "secrets.json").read_text())["db"]
        address = subprocess.run(["docker", "compose", "-f", str(preview.path / "compose.yml"), "port", "db", "3306"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        clone = _connect(int(address.rsplit(":", 1)[1]), secrets["user"], secrets["password"], secrets["database"])
        counts_after, _ = _counts_and_checksums(clone)
        for table in TABLES_WITH_ALL_ROWS:
            assert counts_after[table] == counts_before[table], table
        seeded = production["seeded"]
        personal = [v for v in [*seeded["emails"], *seeded["phones"], *seeded["addresses"], *seeded["ips"]] if v]
        assert _leaks(clone, personal) == {}
        clone.close()
        assert secrets["password"] != production["secrets"]["CKPROD_DB_PASSWORD"]

        assert _counts_and_checksums(source) == (counts_before, checksums_before)  # the source is untouched

        project_api.destroy("feature-x")
        for args in (["ps", "-aq"], ["volume", "ls", "-q"], ["network", "ls", "-q"]):
            left = subprocess.run(["docker", *args, "--filter", f"label=clonekit.project={project}"],
                                  check=True, capture_output=True, text=True).stdout.split()
            assert left == [], args
    finally:
        source.close()
        subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config_path), "destroy", "--all", "--yes"],
                       capture_output=True, env=env)
