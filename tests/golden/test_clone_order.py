"""The order of a golden clone on the real engine: its services start while its rows are
rewritten, yet none of them can read a row before the rewrite has committed (the preview's
credentials are refused until the re-key, which follows the commit); the HTTP service, stopped
meanwhile, is restarted at once; the rewritten table's file is copied up ahead of the rewrite."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pymysql
import pytest

import clonekit.preview as preview_module
from clonekit.db.endpoint import DbEndpoint
from clonekit.db.target import rekey_over_tcp
from clonekit.errors import PreviewError
from clonekit.golden import materialize, read_record
from clonekit.preview import create_preview, destroy_preview
from clonekit.previews.plan import compose_project_name
from clonekit.repository import Repository
from clonekit.retry import poll
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.golden_engine import copy_up, layer_files

from .conftest import OFFICIAL_LIKE_DB, PROD_URL, _config, _source, preview_db, take_snapshot

# An application that reads the site's URL from its database every 0.2 s with the credentials the
# preview gives it (DB_PASSWORD), and says what it got: "refused" or "read <url>".
APP = """
  app:
    image: clonekit/mariadb:10.11
    entrypoint: ["sh", "-c", "while :; do if v=$$(mariadb -h db -u shop -p\\"$$DB_PASSWORD\\" -N -B -e \\"SELECT value FROM shop.options WHERE name = 'siteurl'\\" 2>/dev/null); then echo \\"read $$v\\"; else echo refused; fi; sleep 0.2; done"]
    environment: {DB_PASSWORD: prod-db-secret}
    depends_on: [db]
"""
WAIT_SECONDS = 120.0


@pytest.fixture(scope="module")
def app_source(mysql_server, images, tmp_path_factory):
    yield from _source(mysql_server, tmp_path_factory.mktemp("golden-app-source"), OFFICIAL_LIKE_DB,
                       more_services=APP)


@pytest.fixture
def app_config(app_source, tmp_path):
    yield from _config(app_source, tmp_path)


def _logs(compose_project: str, service: str) -> list[str]:
    ids = DockerEngine().ids("container", {"com.docker.compose.project": compose_project,
                                           "com.docker.compose.service": service})
    if not ids:
        return []
    done = subprocess.run(["docker", "logs", ids[0]], capture_output=True, text=True, check=False)
    return done.stdout.split("\n")


def _until(condition, what: str) -> None:
    if not poll(lambda: True if condition() else None, timeout=WAIT_SECONDS, interval=0.2):
        raise AssertionError(f"{what} within {WAIT_SECONDS:.0f} s")


def test_services_run_during_the_rewrite_but_read_only_rewritten_rows(app_config, app_source, monkeypatch):
    repo = Repository.open(app_config.store)
    manifest = take_snapshot(app_config, app_source)
    materialize(app_config, repo, manifest)
    compose_project = compose_project_name(app_config, "order")
    real_rewrite = preview_module.rewrite_urls
    before_rewrite: list[list[str]] = []

    def rewrite_once_the_app_was_refused(*args, **kwargs):
        # The application runs already, and its database refuses it: the rows still hold PROD_URL.
        _until(lambda: "refused" in _logs(compose_project, "app"), "the app was not refused before the rewrite")
        before_rewrite.append(_logs(compose_project, "app"))
        return real_rewrite(*args, **kwargs)

    monkeypatch.setattr(preview_module, "rewrite_urls", rewrite_once_the_app_was_refused)
    preview = create_preview(app_config, repo, manifest, "order")
    assert preview.restore_path == "golden"
    assert before_rewrite and not any(line.startswith("read") for line in before_rewrite[0])

    _until(lambda: any(line.startswith("read") for line in _logs(compose_project, "app")), "the app read nothing")
    lines = [line for line in _logs(compose_project, "app") if line]
    reads = [line for line in lines if line.startswith("read")]
    # refused until the re-key, then only the rewritten URL: never the production one
    assert lines.index(reads[0]) > 0 and set(lines[:lines.index(reads[0])]) == {"refused"}
    assert set(reads) == {f"read {preview.url}"}
    assert not any(PROD_URL in line for line in lines)
    destroy_preview(app_config, "order")


def test_the_http_service_stopped_meanwhile_is_restarted_once(config, source, monkeypatch):
    repo = Repository.open(config.store)
    manifest = take_snapshot(config, source)
    golden = materialize(config, repo, manifest)
    # A golden copy whose root does not log in over TCP (an image or hook changed it) is re-keyed
    # over the server's socket, after the rewrite as well.
    monkeypatch.setattr(preview_module, "rekey_over_tcp", lambda *args: False)
    preview = create_preview(config, repo, manifest, "revive")
    record = read_record(config, golden.snapshot_id)
    assert record is not None and record.db is not None
    conn = preview_db(preview)  # the preview's own credentials, not the golden copy's
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM options WHERE name = 'siteurl'")
        assert cur.fetchall() == ((preview.url,),)
    conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        preview_db(preview, password=record.db.password)
    engine = DockerEngine()
    plan = SimpleNamespace(name="revive", compose_project=compose_project_name(config, "revive"), http_service="web")
    web = preview_module.compose_container(engine, plan, "web")["Id"]  # type: ignore[arg-type]
    alive = preview_module._alive_or_revived(engine, plan)  # type: ignore[arg-type]
    alive()  # running: nothing to do
    subprocess.run(["docker", "stop", "-t", "0", web], check=True, capture_output=True)
    alive()  # stopped: started again at once
    assert preview_module.compose_container(engine, plan, "web")["State"]["Running"]  # type: ignore[arg-type]
    subprocess.run(["docker", "stop", "-t", "0", web], check=True, capture_output=True)
    with pytest.raises(PreviewError, match="'web' service of preview revive stopped"):
        alive()  # a second stop is a failure, as without the restart
    destroy_preview(config, preview.name)


def test_root_refused_over_tcp_is_not_an_error(mysql_server):
    wrong = DbEndpoint(mysql_server.host, mysql_server.port, "root", "not-the-password", "")
    assert rekey_over_tcp(wrong, "nobody", "x", "nothing", "y") is False


def test_copy_up_moves_a_file_into_the_layer_unchanged(docker, images):
    engine = DockerEngine()
    container = subprocess.run(["docker", "run", "-d", "--rm", "clonekit/busybox:latest", "sleep", "60"],
                               check=True, capture_output=True, text=True).stdout.strip()
    try:
        show = ["sh", "-c", "ls -l --full-time /etc/passwd /etc/group && md5sum /etc/passwd /etc/group"]
        before = engine.exec(container, show, what="show")
        assert layer_files(engine, container) == {}
        copy_up(engine, container, ["/etc/passwd", "/no/such/file", "/etc/group"])  # a missing file is passed over
        files = layer_files(engine, container)
        assert files is not None and sorted(files) == ["/etc/group", "/etc/passwd"]
        # unchanged: content, size, modification time
        assert engine.exec(container, show, what="show") == before
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
