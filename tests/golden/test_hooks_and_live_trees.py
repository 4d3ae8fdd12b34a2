"""Working on a clone, on the real engine (one small source for the module).

previews.hooks.after_materialize: run once per golden copy, baked in. A hook writes a row (and a
production URL) into the database and a file into the web tree while materializing; previews made
from the golden copy have both without the hook running again, and run only after_restore. No
secret of the build preview is left in an image; a failing hook leaves nothing behind.

previews.services.S.mount: a live working tree bind-mounted into a service (DDEV-style). The
project folder itself (".", relative to clonekit.yml) is mounted read-write at the web root: an
edit on the host shows in the next HTTP answer without a refresh, a write in the container shows
on the host, clonekit's store and state folder (inside the project folder) are covered by an
empty tmpfs, and `clonekit list --json` shows the mount as the service's code."""

from __future__ import annotations

import json
import stat
import subprocess
import urllib.request

import yaml

from clonekit.config import parse_config
from clonekit.golden import build_preview_name, hooks_log_path, materialize, read_record
from clonekit.preview import create_preview, destroy_preview, list_previews
from clonekit.repository import Repository

from .conftest import PROD_URL, compose_exec, preview_db, take_snapshot
from .test_golden import _cli, _image_config

MYSQL = 'mariadb -uroot "$MARIADB_DATABASE" -e'  # (root over the server's socket)
TABLE = "CREATE TABLE IF NOT EXISTS hook_runs (id INT AUTO_INCREMENT PRIMARY KEY, phase VARCHAR(20), " \
        "preview VARCHAR(80), snapshot VARCHAR(80));"
MATERIALIZE_HOOKS = [
    {"service": "db", "run": f"{MYSQL} \"{TABLE} INSERT INTO hook_runs (phase, preview, snapshot) VALUES "
                             "('materialize', '$CLONEKIT_PREVIEW', '$CLONEKIT_SNAPSHOT'); "
                             f"INSERT INTO options (id, name, value) VALUES (999, 'hooked', '{PROD_URL}/hooked')\" && echo row written"},
    {"service": "web", "run": 'echo "baked $CLONEKIT_SNAPSHOT" > /www/marker.txt && echo "url $CLONEKIT_PREVIEW_URL"'},
]
RESTORE_HOOKS = [
    {"service": "db", "run": f"{MYSQL} \"{TABLE} INSERT INTO hook_runs (phase, preview, snapshot) VALUES "
                             "('restore', '$CLONEKIT_PREVIEW', '$CLONEKIT_SNAPSHOT')\""},
]


def _with_hooks(config, hooks):
    """The same project (same store, same sweep) with previews.hooks set; clonekit.yml too (CLI)."""
    path = config.path
    raw = yaml.safe_load(path.read_text())
    raw["previews"]["hooks"] = hooks
    path.write_text(yaml.safe_dump(raw))
    return parse_config(raw, path)


def _rows(preview, sql: str) -> list[tuple]:
    conn = preview_db(preview)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_after_materialize_then_a_live_tree_on_the_golden_copy(config, source):
    """One snapshot, three steps (each a golden copy's or preview's life): a failing hook leaves
    nothing; the hooks are baked in once; a live working tree runs on a preview of that copy."""
    manifest = take_snapshot(config, source)
    _a_failing_hook_fails_materialize_and_leaves_nothing(config, manifest)
    _hooks_are_baked_into_the_golden_copy_and_run_once(config, manifest)
    _a_live_working_tree_shows_edits_without_a_refresh(config, manifest)


def _hooks_are_baked_into_the_golden_copy_and_run_once(config, manifest):
    config = _with_hooks(config, {"after_materialize": MATERIALIZE_HOOKS, "after_restore": RESTORE_HOOKS})
    repo = Repository.open(config.store)

    result = materialize(config, repo, manifest)
    assert [(h["service"], h["exit_code"]) for h in result.hooks] == [("db", 0), ("web", 0)]
    record = read_record(config, manifest.id)
    assert record is not None and [h["run"] for h in record.hooks] == [h["run"] for h in MATERIALIZE_HOOKS]
    log_file = hooks_log_path(config, manifest.id)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert "row written" in log_file.read_text() and "== exit 0" in log_file.read_text()
    # the build preview is gone: no preview, no container of it
    build = build_preview_name(manifest.id)
    assert [p.name for p in list_previews(config)] == []
    assert subprocess.run(["docker", "ps", "-aq", "--filter", f"label=clonekit.preview={build}"],
                          capture_output=True, text=True, check=True).stdout.strip() == ""
    # the table now holding the production URL is known to the golden copy (hooks added a row; the
    # log table, left out by previews.replace_skip, is listed too: a clone may opt it in); the rows
    # are not known after hooks: clones scan those tables
    assert record.replace_tables == {PROD_URL: ["options", "watchdog"]}
    assert record.replace_rows is None

    # no secret anywhere in the images (ContainerConfig too: the committed container's own
    # configuration), and nothing of the build preview in their configuration
    assert record.db is not None
    for image in (result.image, *result.files_images_or_volumes):
        text = json.dumps(_image_config(image))
        for secret in (record.db.password, record.db.root_password):
            assert secret not in text
        assert build not in json.dumps(_image_config(image)["Config"])
        env = dict(e.partition("=")[::2] for e in _image_config(image)["Config"]["Env"] or [])
        for name in ("MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD", "MYSQL_PASSWORD", "DB_PASSWORD", "SECRET_KEY"):
            assert env.get(name, "") == "", (image, name)
    assert _image_config(result.image)["Config"]["Labels"]["clonekit.golden"] == "db"

    preview = create_preview(config, repo, manifest, "hooked-a")
    assert preview.restore_path == "golden"
    # the materialize hook ran once, in the build preview; the preview ran its after_restore hook only
    runs = _rows(preview, "SELECT phase, preview, snapshot FROM hook_runs ORDER BY id")
    assert runs == [("materialize", build, manifest.id), ("restore", preview.name, manifest.id)]
    # its row was baked with the production URL, rewritten per preview like the snapshot's rows
    assert _rows(preview, "SELECT value FROM options WHERE name = 'hooked'") == [(preview.url + "/hooked",)]
    marker = urllib.request.urlopen(preview.url + "/marker.txt", timeout=10).read()
    assert marker == f"baked {manifest.id}\n".encode()
    assert compose_exec(preview, "web", "ls /www").split() == ["index.html", "marker.txt"]
    # a second materialize is a no-op: the hook does not run again
    assert materialize(config, repo, manifest).reused
    assert _rows(preview, "SELECT COUNT(*) FROM hook_runs WHERE phase = 'materialize'") == [(1,)]
    assert log_file.read_text().count("== exit 0") == 2

    listed = _cli(config, "--json", "golden")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["snapshot_id"] for r in rows] == [manifest.id]
    assert [h["service"] for h in rows[0]["hooks"]] == ["db", "web"] and "db" not in rows[0]
    assert record.db.password not in listed.stdout
    destroy_preview(config, "hooked-a")


def _a_failing_hook_fails_materialize_and_leaves_nothing(config, manifest):
    config = _with_hooks(config, {"after_materialize": [
        {"service": "web", "run": "echo first line; echo 'the cache is broken' >&2; exit 3"}]})
    done = _cli(config, "materialize", manifest.id)
    assert done.returncode == 1, done.stderr
    assert "failed with exit code 3" in done.stderr and "the cache is broken" in done.stderr
    assert "Traceback" not in done.stderr
    assert read_record(config, manifest.id) is None
    label = f"label=clonekit.project={config.project}"
    for kind in (["ps", "-aq"], ["images", "-q"], ["volume", "ls", "-q"], ["network", "ls", "-q"]):
        left = subprocess.run(["docker", *kind, "--filter", label], capture_output=True, text=True, check=True).stdout
        assert left.strip() == "", kind
    # the hook's output stays for the person who reads the error
    assert "the cache is broken" in hooks_log_path(config, manifest.id).read_text()


def _a_live_working_tree_shows_edits_without_a_refresh(config, manifest):
    """The project folder itself (".") at the web root: edits on either side show on the other."""
    project_folder = config.path.parent
    raw = yaml.safe_load(config.path.read_text())
    raw["previews"]["services"] = {"web": {"mount": {".": "/www"}}}
    config.path.write_text(yaml.safe_dump(raw))
    (project_folder / "index.html").write_text("version 1\n")
    assert any((project_folder / "store").iterdir()) and (project_folder / ".clonekit" / "golden").is_dir()

    done = _cli(config, "--json", "restore", manifest.id, "--as", "live")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["restore_path"] == "golden"
    url = json.loads(done.stdout)["url"]
    assert urllib.request.urlopen(url + "/index.html", timeout=10).read() == b"version 1\n"
    (project_folder / "index.html").write_text("version 2\n")  # no refresh
    assert urllib.request.urlopen(url + "/index.html", timeout=10).read() == b"version 2\n"

    preview_path = project_folder / ".clonekit" / "previews" / "live"

    class Preview:  # what compose_exec needs
        path = preview_path

    compose_exec(Preview, "web", "echo from-the-container > /www/written.txt")
    assert (project_folder / "written.txt").read_text() == "from-the-container\n"
    # the store and the state folder (secrets) are not visible from the container
    assert compose_exec(Preview, "web", "find /www/store /www/.clonekit -mindepth 1 | wc -l").strip() == "0"

    listed = _cli(config, "--json", "list")
    assert listed.returncode == 0, listed.stderr
    code = json.loads(listed.stdout)[0]["code"]
    assert [(c["service"], c["origin"], c["mounts"]) for c in code] == [("web", "mount", {str(project_folder): "/www"})]
    table = _cli(config, "list").stdout
    assert f"web={project_folder} mounted at /www" in table

    assert _cli(config, "destroy", "live", "--yes").returncode == 0
    assert (project_folder / "index.html").read_text() == "version 2\n"  # the developer's tree is theirs


def test_a_missing_live_tree_is_refused_before_anything(config):
    done = _cli(config, "restore", "latest", "--as", "nolive", "--mount", "web=./no-such-folder:/www")
    assert done.returncode == 2, done.stderr
    assert "no-such-folder" in done.stderr and "no such folder" in done.stderr
    assert not (config.path.parent / ".clonekit" / "previews" / "nolive").exists()
