"""A clone of the real WordPress production through the Python API (the CLI path is covered by
tests/runtime/test_wordpress_e2e.py).

The preview renders the site's posts at its own URL; it has the source's row counts and none
of its seeded personal values (neither in the preview database nor in the decompressed store);
the same person keeps the same fake email across tables; WordPress accepts the development
password; the source is untouched; `destroy` leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
import uuid
from http.client import HTTPConnection
from pathlib import Path

import pymysql
import pytest

from clonekit import Project
from clonekit.config import load_config
from clonekit.db import DbEndpoint, table_checksums
from clonekit.repository import Repository

ROOT = Path(__file__).resolve().parents[2]
PERSONAL_KEYS = ("emails", "phones", "full_names", "ips", "addresses")


@pytest.fixture
def project(tmp_path: Path, ckprod, monkeypatch) -> tuple[Path, dict[str, str]]:
    name = f"e2e{uuid.uuid4().hex[:6]}"
    text = (ROOT / "demo" / "clonekit.yml").read_text().replace("project: demo", f"project: {name}")
    (tmp_path / "clonekit.yml").write_text(text)
    import os

    env = {**os.environ, **ckprod.secrets, "CLONEKIT_SECRET": "e2e-secret-" + name}
    return tmp_path / "clonekit.yml", env


def source_endpoint(ckprod) -> DbEndpoint:
    return DbEndpoint("127.0.0.1", ckprod.db_port, "wp", ckprod.secrets["CKPROD_DB_PASSWORD"], "wordpress")


def preview_connection(config_path: Path, name: str) -> pymysql.connections.Connection:
    folder = config_path.parent / ".clonekit" / "previews" / name
    secrets = json.loads((folder / "secrets.json").read_text())["db"]
    state = json.loads((folder / "state.json").read_text())
    container = f"{state['compose_project']}-{state['db_service']}-1"
    inspect = json.loads(subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout)
    port = int(inspect[0]["NetworkSettings"]["Ports"]["3306/tcp"][0]["HostPort"])
    return pymysql.connect(host="127.0.0.1", port=port, user=secrets["user"], password=secrets["password"],
                           database=secrets["database"], charset="utf8mb4")


def all_text(conn: pymysql.connections.Connection) -> str:
    parts = []
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT * FROM `{table}`")
            for row in cur.fetchall():
                parts.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(parts)


def seeded_values(ckprod) -> list[str]:
    values = [v for key in PERSONAL_KEYS for v in ckprod.seeded[key] if v and len(v) >= 6]
    assert len(values) > 100
    return values


def test_clone_wordpress_through_the_api(project, ckprod, monkeypatch) -> None:
    config_path, env = project
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = table_checksums(source_endpoint(ckprod))

    api = Project.load(config_path)
    preview = api.clone("prod", name="feature-x")
    url = preview.url
    assert preview.status == "running" and preview.source == "prod"
    assert url.startswith("http://127.0.0.1:") and url != ckprod.url
    try:
        # The page renders the site's posts, with links rewritten to the preview URL.
        page = urllib.request.urlopen(url + "/", timeout=30).read().decode()
        titles = [t for (t,) in ckprod.query(
            "SELECT post_title FROM wp_posts WHERE post_type='post' AND post_status='publish' ORDER BY post_date DESC LIMIT 3")]
        for title in titles:
            assert title in page
        assert "127.0.0.1:8088" not in page

        conn = preview_connection(config_path, "feature-x")
        try:
            # Same row counts as the source.
            for table in ("wp_posts", "wp_users", "wp_comments", "wp_usermeta", "wp_postmeta"):
                with conn.cursor() as cur:
                    cur.execute(f"SELECT COUNT(*) FROM {table}")
                    assert cur.fetchone()[0] == ckprod.query(f"SELECT COUNT(*) FROM {table}")[0][0], table
            # No seeded personal value anywhere in the preview database.
            text = all_text(conn)
            leaked = [v for v in seeded_values(ckprod) if v in text]
            assert not leaked, f"{len(leaked)} personal values survived, e.g. {leaked[:3]}"
            # The same person keeps the same (fake) email in wp_users and in billing_email.
            same_in_source = ckprod.query(
                "SELECT u.ID FROM wp_users u JOIN wp_usermeta m ON m.user_id = u.ID AND m.meta_key = 'billing_email' "
                "WHERE m.meta_value = u.user_email")
            assert len(same_in_source) > 10
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT u.ID, u.user_email, m.meta_value FROM wp_users u JOIN wp_usermeta m "
                    "ON m.user_id = u.ID AND m.meta_key = 'billing_email'")
                preview_pairs = {uid: (mail, billing) for uid, mail, billing in cur.fetchall()}
                for (uid,) in same_in_source:
                    mail, billing = preview_pairs[uid]
                    assert mail == billing and "@" in mail
                cur.execute("SELECT user_login FROM wp_users ORDER BY ID DESC LIMIT 1")
                login = cur.fetchone()[0]
        finally:
            conn.close()

        # WordPress accepts the development password for a sanitized account.
        parsed = urllib.parse.urlparse(url)
        http = HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        body = urllib.parse.urlencode({"log": login, "pwd": "clonekit", "testcookie": "1", "wp-submit": "Log In"})
        http.request("POST", "/wp-login.php", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                      "Cookie": "wordpress_test_cookie=WP%20Cookie%20check"})
        response = http.getresponse()
        cookies = " ".join(v for k, v in response.getheaders() if k.lower() == "set-cookie")
        http.close()
        assert response.status == 302 and "wordpress_logged_in" in cookies

        # Nothing personal in the store either: every chunk, decompressed and verified.
        repo = Repository.open(load_config(config_path).store, create=False)
        store_text = "\n".join(
            repo.get_chunk(p.name).decode("utf-8", "replace")
            for p in (config_path.parent / ".clonekit" / "store" / "chunks").rglob("*") if p.is_file()
        )
        assert store_text
        leaked = [v for v in seeded_values(ckprod) if v in store_text]
        assert not leaked, f"{len(leaked)} personal values in the store, e.g. {leaked[:3]}"

        # The source is untouched.
        assert table_checksums(source_endpoint(ckprod)) == before

        assert [(p.name, p.url, p.status) for p in api.previews()] == [("feature-x", url, "running")]
        # clone took exactly one snapshot.
        assert len(api.snapshots("prod")) == 1
    finally:
        api.destroy("feature-x")
    assert api.previews() == []
    project_name = load_config(config_path).project
    for kind in ("ps -a", "volume ls", "network ls"):
        left = subprocess.run(["docker", *kind.split(), "-q", "--filter", f"label=clonekit.project={project_name}"],
                              capture_output=True, text=True, check=True).stdout.split()
        assert not left, f"docker {kind} still lists {left}"
    assert not (config_path.parent / ".clonekit" / "previews" / "feature-x" / "compose.yml").exists()
    shutil.rmtree(config_path.parent / ".clonekit", ignore_errors=True)
