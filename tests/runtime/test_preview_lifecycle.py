"""A preview's whole life on the real engine: snapshot (store + db + files + services) → create →
use → list → refresh → destroy; plus same-name refusal, failure cleanup and the per-name lock."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import threading
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pymysql
import pytest
from support import OFFICIAL_LIKE_DB, PROD_SECRETS, build_snapshot, make_manifest, seed_shop_database, source_compose

from clonekit.config import ContainersSource, FileSource, parse_config
from clonekit.containers import capture_services
from clonekit.errors import LockedError, PreviewError
from clonekit.files import capture_files, iter_entries
from clonekit.manifest import Manifest
from clonekit.preview import (
    create_preview,
    destroy_preview,
    expired_previews,
    list_previews,
    preview_lock,
    refresh_preview,
)
from clonekit.repository import Repository

PROD_URL = "https://shop.example.net"
# Debian's mariadb-server as it is: no entrypoint, root over the socket only, MARIADB_* ignored.
PLAIN_DEBIAN_DB = """
    image: clonekit/base-mariadb:10.11
    command: ["sh", "-c", "mkdir -p /run/mysqld && chown mysql /run/mysqld && exec mariadbd --user=mysql --bind-address=0.0.0.0"]
    environment: {MARIADB_DATABASE: shop}
"""


def _serialized(url: str) -> str:
    return 'a:1:{s:4:"home";s:' + str(len(url.encode())) + ':"' + url + '";}'


def _compose_source(root, site, db: str) -> tuple[str, object]:
    project = f"cktest-{uuid.uuid4().hex[:8]}"
    compose_file = root / f"{project}.yml"
    compose_file.write_text(source_compose(prod_url=PROD_URL, site=site, db=db))
    subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", project, "create"], check=True, capture_output=True)
    return project, compose_file


@pytest.fixture(scope="module")
def source(mysql_server, docker, busybox_image, tmp_path_factory):
    """The 'production': a small database, a folder of files and a compose project (created, not started)."""
    root = tmp_path_factory.mktemp("source")
    site = root / "site"
    (site / "sub").mkdir(parents=True)
    (site / "index.html").write_text("hello from the snapshot\n")
    (site / "sub" / "data.txt").write_text("a file in the volume\n")
    project, compose_file = _compose_source(root, site, OFFICIAL_LIKE_DB)
    plain_project, plain_file = _compose_source(root, site, PLAIN_DEBIAN_DB)
    database = seed_shop_database(mysql_server, "cktest_src", {"siteurl": PROD_URL, "widget": _serialized(PROD_URL + "/shop")},
                                  posts=3)
    try:
        yield {"root": root, "site": site, "project": project, "database": database, "server": mysql_server,
               "plain_project": plain_project}
    finally:
        for name, path in ((project, compose_file), (plain_project, plain_file)):
            subprocess.run(["docker", "compose", "-f", str(path), "-p", name, "down", "-v", "-t", "0"], capture_output=True)
        conn = mysql_server.connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


def _config(root, source, project, compose_project=None):
    raw = {
        "project": project,
        "store": str(root / "store"),
        "sources": {"prod": {"files": [str(source["site"])],
                             "containers": {"compose_project": compose_project or source["project"]}}},
        "previews": {
            "env": {"DB_PASSWORD": "{db.password}", "SITE_URL": "{url}", "DB_HOST": "{db.host}"},
            "replace": {PROD_URL: "{url}"},
            "ttl": "1h",
        },
    }
    return parse_config(raw, root / "clonekit.yml")


def _snapshot(config, source) -> Manifest:
    return build_snapshot(config, source, config.sources["prod"].containers.compose_project)


def _labelled(kind: str, project: str) -> list[str]:
    args = {"container": ["ps", "-aq"], "volume": ["volume", "ls", "-q"], "network": ["network", "ls", "-q"]}[kind]
    out = subprocess.run(["docker", *args, "--filter", f"label=clonekit.project={project}"],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def _nothing_left(project: str) -> None:
    for kind in ("container", "volume", "network"):
        assert _labelled(kind, project) == [], kind


def _preview_db(preview) -> tuple[pymysql.connections.Connection, dict]:
    secrets = json.loads((preview.path / "secrets.json").read_text())
    compose = ["docker", "compose", "-f", str(preview.path / "compose.yml")]
    address = subprocess.run([*compose, "port", "db", "3306"], check=True, capture_output=True, text=True).stdout.strip()
    host, port = address.rsplit(":", 1)
    db = secrets["db"]
    conn = pymysql.connect(host=host, port=int(port), user=db["user"], password=db["password"], database=db["database"])
    return conn, secrets


def _env_of(preview, service: str) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=clonekit.preview={preview.name}",
         "--filter", f"label=clonekit.project={preview.project}", "--filter", f"label=clonekit.service={service}"],
        check=True, capture_output=True, text=True).stdout.split()
    inspect = json.loads(subprocess.run(["docker", "inspect", out[0]], check=True, capture_output=True, text=True).stdout)
    return dict(item.split("=", 1) for item in inspect[0]["Config"]["Env"])


def test_preview_lifecycle(source, tmp_path):
    project = f"cktest{uuid.uuid4().hex[:6]}"
    config = _config(tmp_path, source, project)
    repo = Repository.open(config.store)
    manifest = _snapshot(config, source)
    try:
        preview = create_preview(config, repo, manifest, "feature-x")
        assert preview.status == "running" and preview.restore_path == "cold"
        assert preview.url.startswith("http://127.0.0.1:")
        assert preview.expires_at is not None and preview.expires_at - preview.created_at == timedelta(hours=1)

        # files: the snapshot's tree is in the preview's volume, served over HTTP
        assert urllib.request.urlopen(preview.url + "/sub/data.txt", timeout=10).read() == b"a file in the volume\n"

        # database: the rows, the production URL rewritten (serialized length fixed), fresh credentials
        conn, secrets = _preview_db(preview)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM posts")
            assert cur.fetchone()[0] == 3
            cur.execute("SELECT name, value FROM options")
            options = dict(cur.fetchall())
        conn.close()
        assert options["siteurl"] == preview.url
        assert options["widget"] == _serialized(preview.url + "/shop")
        assert secrets["db"]["password"] not in PROD_SECRETS
        assert stat.S_IMODE((preview.path / "secrets.json").stat().st_mode) == 0o600

        # services: rewired, secrets fresh, mail to the sink, nothing secret in compose.yml or labels
        env = _env_of(preview, "web")
        assert env["DB_PASSWORD"] == secrets["db"]["password"] and env["DB_HOST"] == "db"
        assert env["SITE_URL"] == preview.url
        assert env["SECRET_KEY"] not in PROD_SECRETS and len(env["SECRET_KEY"]) >= 32
        assert env["SMTP_HOST"] == "mailsink"
        compose_text = (preview.path / "compose.yml").read_text()
        assert secrets["db"]["password"] not in compose_text and env["SECRET_KEY"] not in compose_text
        smtp = subprocess.run(
            ["docker", "compose", "-f", str(preview.path / "compose.yml"), "exec", "-T", "web",
             "sh", "-c", "printf 'HELO x\\r\\nQUIT\\r\\n' | nc mailsink 25"],
            check=True, capture_output=True, text=True).stdout
        assert smtp.startswith("220 ")

        listed = {p.name: p for p in list_previews(config)}
        assert listed["feature-x"].url == preview.url and listed["feature-x"].snapshot_id == manifest.id
        assert listed["feature-x"].status == "running"
        assert expired_previews(config, preview.created_at + timedelta(minutes=59)) == []
        assert [p.name for p in expired_previews(config, preview.created_at + timedelta(hours=2))] == ["feature-x"]

        with pytest.raises(PreviewError, match="feature-x"):
            create_preview(config, repo, manifest, "feature-x")

        # refresh from a newer snapshot: same URL and credentials, new rows
        server = source["server"]
        conn = server.connect(source["database"])
        with conn.cursor() as cur:
            cur.execute("INSERT INTO posts VALUES (4, 'post 4')")
        conn.close()
        newer = _snapshot(config, source)
        refreshed = refresh_preview(config, repo, "feature-x", newer)
        assert refreshed.url == preview.url and refreshed.snapshot_id == newer.id
        conn, secrets_after = _preview_db(refreshed)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM posts")
            assert cur.fetchone()[0] == 4
        conn.close()
        assert secrets_after == secrets
        assert urllib.request.urlopen(refreshed.url + "/index.html", timeout=10).read() == b"hello from the snapshot\n"

        destroy_preview(config, "feature-x")
        _nothing_left(project)
        assert not preview.path.exists()
        assert list_previews(config) == []
    finally:
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                       capture_output=True)


def _broken(manifest: Manifest) -> Manifest:
    """The same snapshot whose web service exits at once."""
    services = json.loads(json.dumps(manifest.services))
    services["services"]["web"]["command"] = ["sh", "-c", "echo cannot start >&2; exit 3"]
    return dataclasses.replace(manifest, services=services)


def test_failure_removes_what_was_created_unless_kept(source, tmp_path):
    project = f"cktest{uuid.uuid4().hex[:6]}"
    config = _config(tmp_path, source, project)
    repo = Repository.open(config.store)
    broken = _broken(_snapshot(config, source))
    try:
        with pytest.raises(PreviewError, match="web") as info:
            create_preview(config, repo, broken, "broken")
        assert "keep-on-failure" in str(info.value) and "cannot start" not in str(info.value)
        _nothing_left(project)
        assert not (config.state_dir / "previews" / "broken").exists()

        with pytest.raises(PreviewError):
            create_preview(config, repo, broken, "kept", keep_on_failure=True)
        assert _labelled("container", project) and _labelled("volume", project)
        assert (config.state_dir / "previews" / "kept" / "compose.yml").exists()
        destroy_preview(config, "kept")
        _nothing_left(project)
    finally:
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                       capture_output=True)


def test_a_damaged_file_chunk_fails_the_restore_while_the_database_loads(source, tmp_path, monkeypatch):
    """Files fill while the database loads (cold path): both run, and a file failure still fails
    the restore, names the chunk and removes everything, the database's load included."""
    from clonekit.errors import IntegrityError
    from clonekit.repository import chunk_key

    project = f"cktest{uuid.uuid4().hex[:6]}"
    config = _config(tmp_path, source, project)
    repo = Repository.open(config.store)
    manifest = _snapshot(config, source)
    events: list[str] = []
    import clonekit.preview as preview_module
    original_restore = preview_module.restore_database

    def restore_database(*args, **kwargs):
        events.append(f"db load in {threading.current_thread().name}")
        return original_restore(*args, **kwargs)

    monkeypatch.setattr(preview_module, "restore_database", restore_database)
    file_chunks = {ref["id"] for section in manifest.files for item in iter_entries(section, repo)
                   for ref in item.get("chunks", ())}
    assert file_chunks
    for chunk_id in file_chunks:  # damaged on disk: the store's checksum catches it
        (tmp_path / "store" / chunk_key(chunk_id)).write_bytes(b"\0damaged")
    try:
        with pytest.raises((IntegrityError, PreviewError)) as info:
            create_preview(config, repo, manifest, "damaged")
        assert any(chunk_id in str(info.value) for chunk_id in file_chunks) or "chunk" in str(info.value)
        assert events == ["db load in MainThread"]  # the database load ran beside the failing file fill
        _nothing_left(project)
        assert not (config.state_dir / "previews" / "damaged").exists()
    finally:
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                       capture_output=True)


def test_same_name_runs_never_interleave(tmp_path, source):
    config = _config(tmp_path, source, "cktestlock")
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with preview_lock(config, "busy", wait_seconds=0.3):
                pass
        except LockedError as exc:
            errors.append(exc)

    with preview_lock(config, "busy"):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
    assert len(errors) == 1 and "busy" in str(errors[0])
    with preview_lock(config, "busy", wait_seconds=0):  # free again
        pass


def test_plain_debian_mariadb_image(source, tmp_path):
    """A database image that ignores MARIADB_*: the preview account is created over its socket."""
    project = f"cktest{uuid.uuid4().hex[:6]}"
    config = _config(tmp_path, source, project, source["plain_project"])
    repo = Repository.open(config.store)
    manifest = _snapshot(config, source)
    assert manifest.services["services"]["db"]["image"] == "clonekit/base-mariadb:10.11"
    try:
        preview = create_preview(config, repo, manifest, "plain")
        conn, secrets = _preview_db(preview)
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM posts")
            assert cur.fetchone()[0] >= 3
            cur.execute("SELECT value FROM options WHERE name = 'siteurl'")
            assert cur.fetchone()[0] == preview.url
        conn.close()
        assert secrets["db"]["user"] == "clonekit"
        destroy_preview(config, "plain")
        _nothing_left(project)
    finally:
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                       capture_output=True)


STATIC_COMPOSE = """
services:
  web:
    image: clonekit/busybox:latest
    command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1::80"]
    volumes: ["{site}:/www"]
"""


@pytest.fixture
def static_site(source, tmp_path):
    """A database-less snapshot (files + a busybox httpd service) and its config."""
    compose_file = tmp_path / "static.yml"
    compose_file.write_text(STATIC_COMPOSE.format(site=source["site"]))
    static_project = f"cktest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", static_project, "create"], check=True, capture_output=True)
    project = f"cktest{uuid.uuid4().hex[:6]}"
    config = _config(tmp_path, source, project, static_project)
    repo = Repository.open(config.store)
    started = datetime.now(UTC)
    with repo.writer() as writer:
        files = capture_files(FileSource(str(source["site"])), writer)
    manifest = make_manifest(project=project, at=started, files=(files,),
                             services=capture_services(ContainersSource(static_project)))
    repo.commit(manifest)
    try:
        yield config, repo, manifest
    finally:
        subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", static_project, "down", "-v", "-t", "0"],
                       capture_output=True)
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                       capture_output=True)


def test_concurrent_creates(static_site):
    """Different names build side by side; the same name twice at once: one preview, one clear refusal."""
    config, repo, manifest = static_site
    project = config.project
    results: dict[str, object] = {}

    def create(key: str, name: str) -> None:
        try:
            results[key] = create_preview(config, repo, manifest, name)
        except PreviewError as exc:
            results[key] = exc

    threads = [threading.Thread(target=create, args=(key, name))
               for key, name in (("a1", "alpha"), ("a2", "alpha"), ("b", "beta"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alphas = [results["a1"], results["a2"]]
    refused = [r for r in alphas if isinstance(r, PreviewError)]
    made = [r for r in alphas if not isinstance(r, PreviewError)]
    assert len(made) == 1 and len(refused) == 1 and "alpha" in str(refused[0]) and "already exists" in str(refused[0])
    beta = results["b"]
    assert not isinstance(beta, PreviewError)
    assert made[0].url != beta.url
    for preview in (made[0], beta):
        assert urllib.request.urlopen(preview.url + "/index.html", timeout=10).read() == b"hello from the snapshot\n"
    assert sorted(p.name for p in list_previews(config)) == ["alpha", "beta"]
    destroy_preview(config, "alpha")
    destroy_preview(config, "beta")
    _nothing_left(project)


def test_failed_refresh_keeps_name_url_and_state(static_site):
    config, repo, manifest = static_site
    preview = create_preview(config, repo, manifest, "gamma")
    with pytest.raises(PreviewError, match="web"):
        refresh_preview(config, repo, "gamma", _broken(manifest))
    [listed] = list_previews(config)
    assert listed.status == "failed" and listed.url == preview.url
    again = refresh_preview(config, repo, "gamma", manifest)
    assert again.url == preview.url and again.status == "running"
    assert urllib.request.urlopen(again.url + "/index.html", timeout=10).read() == b"hello from the snapshot\n"
    destroy_preview(config, "gamma")
    _nothing_left(config.project)


def _post_count(preview) -> int:
    conn, _ = _preview_db(preview)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM posts")
        count = cur.fetchone()[0]
    conn.close()
    return count


def test_previews_from_a_golden_copy_diverge_and_get_fresh_credentials(source, tmp_path):
    """The preview side of golden copies (clonekit.golden makes them): no load, re-keyed accounts,
    writes stay in each preview's own layer."""
    from clonekit.golden import materialize, prune_golden_images
    from clonekit.runtime.docker import DockerEngine
    from clonekit.runtime.golden_record import find_golden

    project = f"cktest{uuid.uuid4().hex[:6]}"
    config = _config(tmp_path, source, project)
    repo = Repository.open(config.store)
    manifest = _snapshot(config, source)
    rows = _post_count_source(source)
    try:
        result = materialize(config, repo, manifest)
        golden = find_golden(config.state_dir, DockerEngine(), manifest.id)
        assert golden is not None and golden.db_image == result.image and golden.db is not None
        one = create_preview(config, repo, manifest, "one")
        two = create_preview(config, repo, manifest, "two")
        assert one.restore_path == two.restore_path == "golden"
        secrets_one = json.loads((one.path / "secrets.json").read_text())["db"]
        secrets_two = json.loads((two.path / "secrets.json").read_text())["db"]
        assert secrets_one["password"] != secrets_two["password"] != golden.db.password
        conn, _ = _preview_db(one)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO posts VALUES (1000, 'only in one')")
            cur.execute("SELECT value FROM options WHERE name = 'siteurl'")
            assert cur.fetchone()[0] == one.url
        conn.commit()
        conn.close()
        assert _post_count(one) == rows + 1 and _post_count(two) == rows
        assert urllib.request.urlopen(two.url + "/sub/data.txt", timeout=10).read() == b"a file in the volume\n"
        destroy_preview(config, "one")
        three = create_preview(config, repo, manifest, "three")  # the golden copy did not see one's write
        assert _post_count(three) == rows
        destroy_preview(config, "two")
        assert golden.db_image not in prune_golden_images(config, keep=[])  # "three" still runs from it
        destroy_preview(config, "three")
        assert golden.db_image in prune_golden_images(config, keep=[])
        assert _labelled("volume", project) == []
    finally:
        subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker volume rm -f $(docker volume ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker network rm $(docker network ls -q --filter label=clonekit.project={project}) 2>/dev/null;"
                        f"docker image rm -f $(docker image ls -q --filter label=clonekit.project={project}) 2>/dev/null"],
                       capture_output=True)


def _post_count_source(source) -> int:
    conn = source["server"].connect(source["database"])
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM posts")
        count = cur.fetchone()[0]
    conn.close()
    return count
