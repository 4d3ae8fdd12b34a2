"""previews.services.S.mount: a live working tree bind-mounted into a service (DDEV-style).

The project folder itself (".", relative to clonekit.yml) is mounted read-write at the web root:
an edit on the host shows in the next HTTP answer without a refresh, a write in the container
shows on the host, clonekit's store and state folder (inside the project folder) are covered by
an empty tmpfs, and `clonekit list --json` shows the mount as the service's code."""

from __future__ import annotations

import json
import urllib.request

import yaml

from .conftest import compose_exec, take_snapshot
from .test_golden import _cli


def test_a_live_working_tree_shows_edits_without_a_refresh(config, source):
    project_folder = config.path.parent
    raw = yaml.safe_load(config.path.read_text())
    raw["previews"]["services"] = {"web": {"mount": {".": "/www"}}}
    config.path.write_text(yaml.safe_dump(raw))
    (project_folder / "index.html").write_text("version 1\n")
    manifest = take_snapshot(config, source)
    (project_folder / ".clonekit").mkdir(exist_ok=True)
    assert any((project_folder / "store").iterdir())

    done = _cli(config, "--json", "restore", manifest.id, "--as", "live")
    assert done.returncode == 0, done.stderr
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


def test_a_missing_live_tree_is_refused_before_anything(config, source):
    manifest = take_snapshot(config, source)
    done = _cli(config, "restore", manifest.id, "--as", "nolive", "--mount", "web=./no-such-folder:/www")
    assert done.returncode == 2, done.stderr
    assert "no-such-folder" in done.stderr and "no such folder" in done.stderr
    assert not (config.path.parent / ".clonekit" / "previews" / "nolive").exists()
