"""Golden copies on the real engine: materialize a small snapshot, clone it twice, let the clones
diverge; the golden copy and the other clone never change; credentials are each clone's own;
prune keeps what a preview uses."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
import sys
import urllib.request

import pymysql
import pytest
import yaml

from clonekit.db.rewrite import Replacement, rewrite_value
from clonekit.golden import materialize, prune_golden_images, read_record, record_path
from clonekit.preview import create_preview, destroy_preview, refresh_preview
from clonekit.repository import Repository
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.golden_engine import layer_files

from .conftest import OPTIONS, PROD_URL, WATCHDOG_LOCATION, compose_exec, preview_db, take_snapshot


def _count(conn, sql: str) -> int:
    with conn.cursor() as cur:
        cur.execute(sql)
        return int(cur.fetchone()[0])


def _image_config(image: str) -> dict:
    out = subprocess.run(["docker", "image", "inspect", image], check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def _login_fails(preview, user: str, password: str) -> bool:
    try:
        preview_db(preview, user=user, password=password).close()
    except pymysql.err.OperationalError as exc:
        return exc.args[0] == 1045
    return False


def test_two_clones_of_one_golden_copy_diverge(config, source):
    repo = Repository.open(config.store)
    manifest = take_snapshot(config, source)

    result = materialize(config, repo, manifest)
    assert result.snapshot_id == manifest.id and not result.reused
    assert result.image == f"clonekit-golden/{config.project}-db:{manifest.id}"
    assert len(result.files_images_or_volumes) == 1
    record = read_record(config, manifest.id)
    assert record is not None and record.db_image == result.image
    assert stat.S_IMODE(record_path(config, manifest.id).stat().st_mode) == 0o600
    golden_db = record.db
    # previews.replace strings were looked for once: clones rewrite only these tables (a log table
    # too: previews.replace_skip is applied per clone, so a clone may opt it back in)
    assert record.replace_tables == {PROD_URL: ["options", "watchdog"]}
    # ... and the rows holding one, by primary key (every option but "other"): clones read nothing
    # else. The log table (replace_skip by default) is not searched: a clone opting it in scans it.
    assert record.replace_rows is not None and record.replace_rows["watchdog"] is None
    assert {c: sorted(keys) for c, keys in record.replace_rows["options"].items()} == {"value": [[1], [2], [3], [4], [6]]}
    image = _image_config(result.image)
    labels = image["Config"]["Labels"]
    assert labels["clonekit.project"] == config.project and labels["clonekit.snapshot"] == manifest.id
    assert labels["clonekit.golden"] == "db"
    # the golden credentials are nowhere in the image's configuration
    assert golden_db is not None and golden_db.password not in json.dumps(image)
    assert golden_db.root_password not in json.dumps(image)
    # a second run finds it
    assert materialize(config, repo, manifest).reused

    files_image = f"clonekit-golden/{config.project}-files-web:{manifest.id}"
    assert result.files_images_or_volumes == (files_image,)
    assert record.files_images["web"]["paths"] == [str(source["site"])] and record.volumes == {}

    a = create_preview(config, repo, manifest, "golden-a")
    # Copy-on-write holds: of the golden table files, the clone's start and rewrite copied up only the
    # rewritten table's (a file opened for writing is copied up whole into the clone's layer: on
    # ext4, its size in time and disk).
    assert _changed_table_files(a) == ["options.ibd"]
    b = create_preview(config, repo, manifest, "golden-b")
    assert a.restore_path == b.restore_path == "golden"
    for preview in (a, b):  # the web service runs the files image: no volume to fill or copy
        web = yaml.safe_load((preview.path / "compose.yml").read_text())["services"]["web"]
        assert web["image"] == files_image and "volumes" not in web
    for preview in (a, b):
        assert urllib.request.urlopen(preview.url + "/index.html", timeout=10).read() == b"golden files\n"
        conn = preview_db(preview)
        assert _count(conn, "SELECT COUNT(*) FROM posts") == 5
        with conn.cursor() as cur:  # previews.replace applied per clone, exactly as the cold path does
            cur.execute("SELECT name, value FROM options")
            options = dict(cur.fetchall())
        assert options["siteurl"] == preview.url
        assert options == {k: rewrite_value(v, [Replacement(PROD_URL, preview.url)]) for k, v in OPTIONS.items()}
        with conn.cursor() as cur:  # the log table is left alone by default (DEFAULT_REPLACE_SKIP)
            cur.execute("SELECT location FROM watchdog")
            assert cur.fetchall() == ((WATCHDOG_LOCATION,),)
            # the golden image's server reads its table files through the page cache (the image's
            # default, O_DIRECT, read every page from the disk in every clone)
            cur.execute("SELECT @@innodb_flush_method")
            assert cur.fetchone()[0] == "fsync"
        conn.close()

    # ... but reading a table copies it up too: InnoDB opens its file read-write (docker container
    # diff does not show such a copy: the file is unchanged).
    assert _changed_table_files(a) == ["options.ibd", "posts.ibd", "watchdog.ibd"]
    # fresh credentials: each clone's own, none of them the golden copy's
    secrets_a = json.loads((a.path / "secrets.json").read_text())["db"]
    secrets_b = json.loads((b.path / "secrets.json").read_text())["db"]
    assert secrets_a["password"] != secrets_b["password"] and secrets_a["root_password"] != secrets_b["root_password"]
    assert golden_db.password not in (secrets_a["password"], secrets_b["password"])
    for preview in (a, b):
        assert _login_fails(preview, golden_db.user, golden_db.password)
        assert _login_fails(preview, "root", golden_db.root_password)
    preview_db(a, user="root", password=secrets_a["root_password"]).close()
    assert _login_fails(a, secrets_b["user"], secrets_b["password"])

    # diverge: rows and files written in A are not in B
    conn = preview_db(a)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO posts VALUES (100, 'only in a')")
        cur.execute("DELETE FROM posts WHERE id = 1")
    conn.commit()
    conn.close()
    compose_exec(a, "web", "echo changed > /www/index.html && echo new > /www/only-a.txt")
    conn = preview_db(b)
    assert _count(conn, "SELECT COUNT(*) FROM posts") == 5
    assert _count(conn, "SELECT COUNT(*) FROM posts WHERE id = 100") == 0
    conn.close()
    assert urllib.request.urlopen(b.url + "/index.html", timeout=10).read() == b"golden files\n"
    assert compose_exec(b, "web", "ls /www").split() == ["index.html"]
    conn = preview_db(a)
    assert _count(conn, "SELECT COUNT(*) FROM posts WHERE id IN (1, 100)") == 1
    conn.close()

    # the golden copy did not change: a refresh of A (same snapshot) starts again from it
    refreshed = refresh_preview(config, repo, "golden-a", manifest)
    assert refreshed.restore_path == "golden" and refreshed.url == a.url
    conn = preview_db(refreshed)
    assert _count(conn, "SELECT COUNT(*) FROM posts") == 5
    assert _count(conn, "SELECT COUNT(*) FROM posts WHERE id = 100") == 0
    conn.close()
    assert urllib.request.urlopen(a.url + "/index.html", timeout=10).read() == b"golden files\n"

    destroy_preview(config, "golden-a")
    destroy_preview(config, "golden-b")

    # a clone that opts the log table back in (previews.replace_skip: []) rewrites it, from the same record
    everything = dataclasses.replace(config, previews=dataclasses.replace(config.previews, replace_skip=()))
    c = create_preview(everything, repo, manifest, "golden-c")
    assert c.restore_path == "golden"
    conn = preview_db(c)
    with conn.cursor() as cur:
        cur.execute("SELECT location FROM watchdog")
        assert cur.fetchall() == ((c.url + "/user/login",),)
        cur.execute("SELECT value FROM options WHERE name = 'siteurl'")
        assert cur.fetchall() == ((c.url,),)
    conn.close()
    destroy_preview(everything, "golden-c")


def _changed_table_files(preview) -> list[str]:
    """The files of the preview database's tables in its container's own layer (its overlay upper
    directory: ``docker container diff`` does not list a file copied up unchanged)."""
    database = json.loads((preview.path / "secrets.json").read_text())["db"]["database"]
    compose = ["docker", "compose", "-f", str(preview.path / "compose.yml")]
    container = subprocess.run([*compose, "ps", "-q", "db"], check=True, capture_output=True, text=True).stdout.strip()
    files = layer_files(DockerEngine(), container)
    assert files is not None, "the preview database container's layer is not readable here"
    return sorted(path.split("/")[-1] for path in files if f"/{database}/" in path)


def test_prune_keeps_the_golden_copy_in_use(config, source):
    repo = Repository.open(config.store)
    used = take_snapshot(config, source)
    unused = take_snapshot(config, source)
    kept = take_snapshot(config, source)
    results = {m.id: materialize(config, repo, m) for m in (used, unused, kept)}
    preview = create_preview(config, repo, used, "golden-p")
    assert preview.restore_path == "golden"

    removed = prune_golden_images(config, keep=[kept.id])
    assert results[unused.id].image in removed
    assert set(results[unused.id].files_images_or_volumes) <= set(removed)
    assert results[used.id].image not in removed and results[kept.id].image not in removed
    for m in (used, kept):
        subprocess.run(["docker", "image", "inspect", results[m.id].image], check=True, capture_output=True)
    assert read_record(config, unused.id) is None and read_record(config, kept.id) is not None
    # the preview still works on its golden image
    conn = preview_db(preview)
    assert _count(conn, "SELECT COUNT(*) FROM posts") == 5
    conn.close()

    # once the preview is gone, its golden copy goes too
    destroy_preview(config, "golden-p")
    removed = prune_golden_images(config, keep=[kept.id])
    assert set(removed) == {results[used.id].image, *results[used.id].files_images_or_volumes}
    assert read_record(config, used.id) is None
    assert prune_golden_images(config, keep=[kept.id]) == []


def test_a_snapshot_not_materialized_is_not_golden(config, source):
    from clonekit.golden import is_materialized

    manifest = take_snapshot(config, source)
    assert not is_materialized(config, DockerEngine(), manifest.id)
    with pytest.raises(FileNotFoundError):
        record_path(config, manifest.id).stat()


def test_an_image_with_a_volume_on_the_datadir_moves_it(volume_config, volume_source):
    config, source = volume_config, volume_source
    repo = Repository.open(config.store)
    manifest = take_snapshot(config, source)
    result = materialize(config, repo, manifest)
    record = read_record(config, manifest.id)
    assert record is not None and record.datadir == "/var/lib/clonekit-mysql"
    preview = create_preview(config, repo, manifest, "golden-v")
    assert preview.restore_path == "golden"
    conn = preview_db(preview)
    assert _count(conn, "SELECT COUNT(*) FROM posts") == 5
    with conn.cursor() as cur:
        cur.execute("SELECT @@datadir")
        assert cur.fetchone()[0].rstrip("/") == "/var/lib/clonekit-mysql"
    conn.close()
    destroy_preview(config, "golden-v")
    assert set(prune_golden_images(config, keep=[])) == {result.image, *result.files_images_or_volumes}


def _cli(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clonekit", *args], cwd=config.path.parent, capture_output=True,
                          text=True, timeout=600)


def test_cli_materialize_then_restore_takes_the_golden_path(config, source):
    manifest = take_snapshot(config, source)
    done = _cli(config, "--json", "materialize", manifest.id)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["snapshot_id"] == manifest.id and result["image"].startswith("clonekit-golden/")
    again = _cli(config, "materialize", manifest.id)
    assert again.returncode == 0 and again.stdout.strip() == f"materialized {manifest.id}: {result['image']}"
    restored = _cli(config, "--json", "restore", manifest.id, "--as", "golden-cli")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["restore_path"] == "golden"
    assert _cli(config, "destroy", "golden-cli", "--yes").returncode == 0


def test_a_minimal_image_gets_its_files_without_running_anything(minimal_config, minimal_source, minimal_image):
    """The web image has one static binary: no shell, no mkdir, no /etc/passwd, no USER. The golden
    files image is made without running it and keeps its start-up; a preview of it serves the files."""
    config = minimal_config
    repo = Repository.open(config.store)
    manifest = take_snapshot(config, minimal_source)
    result = materialize(config, repo, manifest)
    files_image = f"clonekit-golden/{config.project}-files-web:{manifest.id}"
    assert files_image in result.files_images_or_volumes
    base, golden = _image_config(minimal_image)["Config"], _image_config(files_image)["Config"]
    assert golden["User"] in ("", "0") and base["User"] == ""
    assert (golden["WorkingDir"], golden["Entrypoint"], golden["Cmd"]) == (
        "/www", ["/bin/busybox"], ["httpd", "-f", "-p", "80", "-h", "/www"])
    assert golden["Labels"]["clonekit.golden"] == "files"
    preview = create_preview(config, repo, manifest, "minimal")
    assert preview.restore_path == "golden"
    assert urllib.request.urlopen(preview.url + "/index.html", timeout=10).read() == b"golden files\n"
    destroy_preview(config, "minimal")

