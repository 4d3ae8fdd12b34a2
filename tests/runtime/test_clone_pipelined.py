"""The pipelined cold clone (clonekit.pipeline) on the real services: `clonekit clone` builds the
preview while the snapshot is captured. It gives the database a snapshot-then-restore gives, and
a failure in each phase leaves nothing half-made: a capture that fails leaves no snapshot and no
preview, a load that fails leaves the snapshot committed and no preview."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml
from support import run_cli, source_compose

from clonekit import Project

PROD_URL = "https://shop.example.net"
ACCOUNTS = 3000
ARTICLES = 4000


@pytest.fixture(scope="module")
def shop(mysql_server, docker, busybox_image, tmp_path_factory):
    """A production with several tables loaded in turn: secondary indexes, a foreign key, a view,
    a trigger, a table without an integer key, one with `rows: none`, personal data, its URL."""
    root = tmp_path_factory.mktemp("pipelined")
    site = root / "site"
    site.mkdir()
    (site / "index.html").write_text("the shop's files\n")
    project = f"cktest-{uuid.uuid4().hex[:8]}"
    compose_file = root / "compose.yml"
    compose_file.write_text(source_compose(prod_url=PROD_URL, site=site))
    subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", project, "create"], check=True, capture_output=True)
    database = f"cktest_pipe_{uuid.uuid4().hex[:8]}"
    conn = mysql_server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
            cur.execute(f"USE `{database}`")
            cur.execute("CREATE TABLE accounts (id INT PRIMARY KEY, mail VARCHAR(100), name VARCHAR(64), KEY by_mail (mail))")
            cur.execute("CREATE TABLE articles (id INT PRIMARY KEY, account_id INT NOT NULL, body TEXT, link VARCHAR(40),"
                        " KEY by_account (account_id), FULLTEXT KEY words (body),"
                        " CONSTRAINT by_owner FOREIGN KEY (account_id) REFERENCES accounts (id))")
            cur.execute("CREATE TABLE cache_page (id INT PRIMARY KEY, data BLOB)")
            cur.execute("CREATE TABLE flags (name VARCHAR(20) PRIMARY KEY, value INT)")
            cur.execute("CREATE TABLE counts (what VARCHAR(20) PRIMARY KEY, n INT)")
            cur.execute("CREATE VIEW recent AS SELECT id, link FROM articles WHERE id > 100")
            cur.execute("CREATE TRIGGER counted AFTER INSERT ON articles FOR EACH ROW "
                        "UPDATE counts SET n = n + 1 WHERE what = 'articles'")
            cur.executemany("INSERT INTO accounts VALUES (%s, %s, %s)",
                            [(i, f"person{i}@real-mail.example", f"Person {i}") for i in range(1, ACCOUNTS + 1)])
            cur.executemany("INSERT INTO articles VALUES (%s, %s, %s, %s)",
                            [(i, i % ACCOUNTS + 1, f"article {i} " + "words " * 50 + f"see {PROD_URL}/a/{i}",
                              PROD_URL if i % 3 == 0 else "none") for i in range(1, ARTICLES + 1)])
            cur.executemany("INSERT INTO cache_page VALUES (%s, %s)", [(i, b"cached" * 10) for i in range(1, 200)])
            cur.executemany("INSERT INTO flags VALUES (%s, %s)", [(f"flag{i}", i) for i in range(50)])
            cur.execute("INSERT INTO counts VALUES ('articles', 0)")
        conn.commit()
        yield {"root": root, "site": site, "project": project, "database": database, "server": mysql_server}
    finally:
        subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", project, "down", "-v", "-t", "0"],
                       capture_output=True)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


def _write_config(shop: dict[str, Any], tmp_path: Path, *, tables: dict[str, Any] | None = None, strict: bool = False,
                  replace_with: str = "{url}") -> tuple[Path, str]:
    server = shop["server"]
    project = f"cktest{uuid.uuid4().hex[:6]}"
    raw = {
        "project": project,
        "store": str(tmp_path / "store"),
        "sources": {"prod": {
            "database": {"host": server.host, "port": server.port, "user": server.user,
                         "password_env": "CK_TEST_DB_PASSWORD", "name": shop["database"]},
            "files": [str(shop["site"])],
            "containers": {"compose_project": shop["project"]},
        }},
        "sanitize": {"secret_env": "CK_TEST_SECRET", "strict": strict,
                     "tables": tables if tables is not None else {"accounts": {"columns": {"mail": "email", "name": "name"}},
                                                                  "cache_page": {"rows": "none"}}},
        "previews": {"env": {"DB_PASSWORD": "{db.password}", "SITE_URL": "{url}"}, "ttl": "1h",
                     "replace": {PROD_URL: replace_with}},
    }
    path = tmp_path / "clonekit.yml"
    path.write_text(yaml.safe_dump(raw))
    return path, project


@pytest.fixture
def env(shop, monkeypatch):
    monkeypatch.setenv("CK_TEST_DB_PASSWORD", shop["server"].password)
    monkeypatch.setenv("CK_TEST_SECRET", "a-test-secret-of-enough-length-0123456789")
    monkeypatch.delenv("CLONEKIT_CLONE_PIPELINE", raising=False)


def _labelled(project: str) -> list[str]:
    found = []
    for args in (["ps", "-aq"], ["volume", "ls", "-q"], ["network", "ls", "-q"]):
        found += subprocess.run(["docker", *args, "--filter", f"label=clonekit.project={project}"],
                                check=True, capture_output=True, text=True).stdout.split()
    return found


def _remove_all(project: str) -> None:
    subprocess.run(["sh", "-c", f"docker rm -f -v $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                    f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                    f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                   capture_output=True)


def _containers_created_since(since: float, project: str) -> list[str]:
    """Containers of ``project`` the engine created since ``since`` (removed or not), from its events."""
    out = subprocess.run(["docker", "events", "--since", str(int(since) - 1), "--until", str(int(time.time()) + 1),
                          "--filter", "type=container", "--filter", "event=create",
                          "--filter", f"label=clonekit.project={project}", "--format", "{{.Actor.Attributes.name}}"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def _connect(preview_path: Path) -> pymysql.connections.Connection:
    secrets = json.loads((preview_path / "secrets.json").read_text())["db"]
    address = subprocess.run(["docker", "compose", "-f", str(preview_path / "compose.yml"), "port", "db", "3306"],
                             check=True, capture_output=True, text=True).stdout.strip()
    host, port = address.rsplit(":", 1)
    return pymysql.connect(host=host, port=int(port), user=secrets["user"], password=secrets["password"],
                           database=secrets["database"])


def _content(preview: Any) -> dict[str, Any]:
    """Every table's definition and rows, views, triggers; the preview's own URL as a marker."""
    conn = _connect(preview.path)
    content: dict[str, Any] = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                        "ORDER BY TABLE_NAME")
            for name, kind in cur.fetchall():
                cur.execute(f"SHOW CREATE TABLE `{name}`")
                create = cur.fetchone()[1]
                if kind == "VIEW":
                    content[name] = ("view", create.split(" VIEW ", 1)[1])
                    continue
                cur.execute(f"SELECT * FROM `{name}` ORDER BY 1")
                rows = [tuple(v.replace(preview.url, "{url}") if isinstance(v, str) else v for v in row)
                        for row in cur.fetchall()]
                content[name] = (create.split(" AUTO_INCREMENT=")[0], rows)
            cur.execute("SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
                        "WHERE TRIGGER_SCHEMA = DATABASE()")
            content["triggers"] = sorted(cur.fetchall())
    finally:
        conn.close()
    return content


def _operations(log_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_file.read_text().splitlines()]


def test_a_pipelined_clone_loads_what_snapshot_then_restore_loads(shop, env, tmp_path) -> None:
    config_path, project = _write_config(shop, tmp_path)
    log_file = tmp_path / "ops.jsonl"
    project_api = Project.load(config_path, log_file=log_file)
    try:
        piped = project_api.clone("prod", name="piped")
        operations = _operations(log_file)
        assert [(o["operation"], o["status"], o.get("pipelined")) for o in operations] == [
            ("snapshot", "ok", True), ("restore", "ok", True)]
        snapshots = project_api.snapshots("prod")
        assert [s.id for s in snapshots] == [piped.snapshot_id] == [operations[1]["snapshot"]]
        assert project_api.verify(snapshots[0]).ok

        serial = project_api.restore(snapshots[0], name="serial")  # the stored snapshot, loaded the usual way
        piped_content, serial_content = _content(piped), _content(serial)
        assert piped_content == serial_content
        assert sorted(piped_content) == ["accounts", "articles", "cache_page", "counts", "flags", "recent", "triggers"]
        accounts = piped_content["accounts"][1]
        assert len(accounts) == ACCOUNTS and len(piped_content["articles"][1]) == ARTICLES
        assert piped_content["cache_page"][1] == []  # rows: none
        assert "KEY `by_mail`" in piped_content["accounts"][0] and "FULLTEXT KEY `words`" in piped_content["articles"][0]
        assert "CONSTRAINT `by_owner` FOREIGN KEY" in piped_content["articles"][0]
        assert [t[0] for t in piped_content["triggers"]] == ["counted"]
        # sanitized: no address or name of the production reached the preview; its URL rewritten
        assert not any("real-mail.example" in str(row) or "Person " in str(row) for row in accounts)
        assert all(PROD_URL not in str(row) for row in piped_content["articles"][1])
        assert any("{url}/a/" in str(row) for row in piped_content["articles"][1])
        assert urllib.request.urlopen(piped.url + "/index.html", timeout=10).read() == b"the shop's files\n"
        state = json.loads((piped.path / "state.json").read_text())
        assert state["status"] == "running" and state["snapshot_id"] == piped.snapshot_id
    finally:
        _remove_all(project)


def test_a_capture_that_fails_midway_leaves_no_snapshot_and_no_preview(shop, env, tmp_path, capsys) -> None:
    # `flags` is read last (the smallest table, no integer key): the others are captured, and
    # loading, when its rows condition fails on the server.
    tables = {"accounts": {"columns": {"mail": "email", "name": "name"}}, "cache_page": {"rows": "none"},
              "flags": {"rows": "value < (SELECT id FROM accounts)"}}
    config_path, project = _write_config(shop, tmp_path, tables=tables)
    since = time.time()
    try:
        code, _out, err = run_cli(["-c", str(config_path), "clone", "prod", "--as", "broken"], capsys)
        assert code == 1, err
        assert "flags" in err and "Traceback" not in err
        assert _containers_created_since(since, project), "the preview's database had been started beside the capture"
        assert _labelled(project) == []
        assert not (tmp_path / ".clonekit" / "previews" / "broken").exists()
        assert Project.load(config_path).repository.manifests() == []
    finally:
        _remove_all(project)


def test_a_load_that_fails_leaves_the_snapshot_committed_and_no_preview(shop, env, tmp_path, capsys) -> None:
    # articles.link is VARCHAR(40): the rewritten URL no longer fits, the load fails.
    config_path, project = _write_config(shop, tmp_path, replace_with="{url}/" + "x" * 60)
    try:
        code, _out, err = run_cli(["-c", str(config_path), "clone", "prod", "--as", "too-long"], capsys)
        assert code == 1, err
        assert "articles" in err and "no longer fits" in err and "Traceback" not in err
        assert _labelled(project) == []
        assert not (tmp_path / ".clonekit" / "previews" / "too-long").exists()
        manifests = Project.load(config_path).repository.manifests()
        assert len(manifests) == 1 and {t["name"] for t in manifests[0].database["tables"]} >= {"accounts", "articles"}
        code, out, err = run_cli(["-c", str(config_path), "verify", manifests[0].id], capsys)
        assert code == 0, err
    finally:
        _remove_all(project)


def test_strict_mode_refusal_leaves_nothing_and_exits_3(shop, env, tmp_path, capsys) -> None:
    config_path, project = _write_config(shop, tmp_path, tables={"cache_page": {"rows": "none"}}, strict=True)
    try:
        code, _out, err = run_cli(["-c", str(config_path), "clone", "prod", "--as", "refused"], capsys)
        assert code == 3, err
        assert "accounts" in err and "Traceback" not in err
        assert _labelled(project) == []
        assert not (tmp_path / ".clonekit" / "previews" / "refused").exists()
        assert Project.load(config_path).repository.manifests() == []
    finally:
        _remove_all(project)
