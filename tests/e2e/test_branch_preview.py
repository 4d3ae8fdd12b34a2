"""A branch's code on production's data, end to end on the WordPress production (ckprod, read-only).

A branch folder whose Dockerfile builds on the production app image (clonekit/wordpress:6.1)
and adds a must-use plugin printing a marker in the footer:

- `clone prod --as br --build app=BRANCH` (cold path) shows production's posts and the marker;
  `list --json` records the folder and its Git commit; the after_restore hook ran in the app
  (seen through `clonekit exec`, whose exit code passes through);
- a change made with `clonekit db --execute` survives `refresh --code` (hooks only with --hooks), which picks up a changed
  marker; a data `refresh` drops the change and keeps the new marker;
- after `materialize`, `restore --build` starts from the golden copy with the branch's code;
- a failing hook fails the restore (exit 1, its last lines quoted) and leaves nothing behind;
- `destroy` removes the images built for the preview; the source is untouched.

Timings of each step are printed (and written to $CLONEKIT_TIMINGS_FILE when set) for the issue note; nothing asserts a duration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from e2e.branch_repo import STATE, commit_branch, production_config

from clonekit.db import DbEndpoint, table_checksums

HOOKS = """  hooks:
    after_restore:
      - service: app
        run: {hook}
"""
GOOD_HOOK = '''echo "hook ran for $CLONEKIT_PREVIEW at $CLONEKIT_PREVIEW_URL from $CLONEKIT_SNAPSHOT" | tee /tmp/clonekit-hook.txt'''
BAD_HOOK = '''echo "migrating..."; echo "boom: table wp_missing does not exist"; exit 3'''


def page(url: str) -> str:
    return urllib.request.urlopen(url + "/", timeout=60).read().decode()


def assert_shows_posts(html: str, titles: list[str]) -> None:
    """Production's posts are on the page (WordPress curls apostrophes)."""
    for title in titles:
        assert title.replace("'", "&#8217;") in html or title in html


def docker_lines(*args: str) -> list[str]:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.split()


@pytest.fixture
def site(ckprod, tmp_path):
    project = f"ckbr{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "CKPROD_DB_PASSWORD": ckprod.secrets["CKPROD_DB_PASSWORD"],
           "CLONEKIT_E2E_SECRET": uuid.uuid4().hex}
    configs = {}
    for name, hook in (("good", GOOD_HOOK), ("bad", BAD_HOOK)):
        path = tmp_path / name / "clonekit.yml"
        path.parent.mkdir()
        path.write_text(production_config(project, tmp_path / "store", password_env="CKPROD_DB_PASSWORD",
                                          secret_env="CLONEKIT_E2E_SECRET", extra=HOOKS.format(hook=json.dumps(hook))))
        configs[name] = path

    def ck(*args: str, config: str = "good") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(configs[config]), *args],
                              capture_output=True, text=True, env=env, timeout=900)

    try:
        yield project, ck
    finally:
        ck("destroy", "--all", "--yes")
        for image in docker_lines("images", "-q", "--filter", f"label=clonekit.project={project}"):
            subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)
        for volume in docker_lines("volume", "ls", "-q", "--filter", f"label=clonekit.project={project}"):
            subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


def test_branch_code_on_production_data(site, ckprod, tmp_path):
    project, ck = site
    timings: dict[str, float] = {}

    def timed(step: str, *args: str, config: str = "good") -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = ck(*args, config=config)
        timings[step] = round(time.monotonic() - started, 1)
        return done

    source = DbEndpoint("127.0.0.1", ckprod.db_port, "wp", ckprod.secrets["CKPROD_DB_PASSWORD"], "wordpress")
    before = table_checksums(source)
    titles = [t for (t,) in ckprod.query("SELECT post_title FROM wp_posts WHERE post_type='post' AND post_status='publish' "
                                         "ORDER BY post_date DESC LIMIT 3")]
    [(post_id, original_title)] = ckprod.query("SELECT ID, post_title FROM wp_posts WHERE post_type='post' "
                                               "AND post_status='publish' ORDER BY post_date DESC LIMIT 1")
    branch = tmp_path / "branch"
    commit_one = commit_branch(branch, "MARKER-ONE")

    # 1. clone with the branch's code (cold: no golden copy yet)
    done = timed("clone --build (cold)", "--json", "clone", "prod", "--as", "br", "--build", f"app={branch}")
    assert done.returncode == 0, done.stderr[-3000:]
    preview = json.loads(done.stdout)
    assert preview["restore_path"] == "cold"
    html = page(preview["url"])
    assert "MARKER-ONE" in html
    assert_shows_posts(html, titles)
    [listed] = json.loads(ck("--json", "list").stdout)
    [code] = listed["code"]
    assert (code["service"], code["origin"], code["context"], code["commit"]) == ("app", "build", str(branch), commit_one)
    assert code["image"] == f"clonekit-preview/{project}-br-app:latest"
    assert "app=" in ck("list").stdout  # the table says which service runs which code

    # 2. the after_restore hook ran in the app, with the preview's variables; exec passes exit codes
    done = timed("exec", "exec", "br", "--", "cat", "/tmp/clonekit-hook.txt")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"hook ran for br at {preview['url']} from {preview['snapshot_id']}"
    assert ck("exec", "br", "--", "sh", "-c", "exit 7").returncode == 7
    assert ck("exec", "br", "-s", "db", "--", "sh", "-c", "echo in-db").stdout.strip() == "in-db"
    assert ck("logs", "br", "--tail", "5").returncode == 0

    # 3. a change through `clonekit db`
    done = timed("db --execute", "db", "br", "--execute", f"UPDATE wp_posts SET post_title='Edited in the preview' WHERE ID={post_id}")
    assert done.returncode == 0, done.stderr
    done = ck("db", "br", "--execute", f"SELECT post_title FROM wp_posts WHERE ID={post_id}")
    assert "Edited in the preview" in done.stdout and "|" in done.stdout  # a table
    assert "Edited in the preview" in page(preview["url"])

    # 4. refresh --code: new marker, same data
    commit_two = commit_branch(branch, "MARKER-TWO")
    done = timed("refresh --code", "--json", "refresh", "br", "--code")
    assert done.returncode == 0, done.stderr[-3000:]
    html = page(preview["url"])
    assert "MARKER-TWO" in html and "MARKER-ONE" not in html
    assert "Edited in the preview" in html
    [listed] = json.loads(ck("--json", "list").stdout)
    assert listed["code"][0]["commit"] == commit_two and listed["url"] == preview["url"]
    # the app container is new and the hooks did not run (no --hooks): cat's exit code passes through
    assert ck("exec", "br", "--", "cat", "/tmp/clonekit-hook.txt").returncode == 1
    done = ck("refresh", "br", "--code", "--hooks")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "hook ran for br" in ck("exec", "br", "--", "cat", "/tmp/clonekit-hook.txt").stdout
    assert "Edited in the preview" in page(preview["url"])

    # 5. data refresh: production's data again, the branch's code kept
    done = timed("refresh (data)", "refresh", "br")
    assert done.returncode == 0, done.stderr[-3000:]
    html = page(preview["url"])
    assert "MARKER-TWO" in html and "Edited in the preview" not in html
    assert original_title.replace("'", "&#8217;") in html or original_title in html
    assert "hook ran for br" in ck("exec", "br", "--", "cat", "/tmp/clonekit-hook.txt").stdout  # ran again

    # 6. from the golden copy
    done = timed("materialize", "materialize", "prod@latest")
    assert done.returncode == 0, done.stderr[-3000:]
    done = timed("restore --build (golden)", "--json", "restore", "prod@latest", "--as", "br2", "--build", f"app={branch}")
    assert done.returncode == 0, done.stderr[-3000:]
    second = json.loads(done.stdout)
    assert second["restore_path"] == "golden"
    html = page(second["url"])
    assert "MARKER-TWO" in html
    assert_shows_posts(html, titles)
    assert "hook ran for br2" in ck("exec", "br2", "--", "cat", "/tmp/clonekit-hook.txt").stdout
    # the uploads reach the branch's container although its image is not the golden files image
    upload = next(p for p in sorted((STATE / "uploads").rglob("*")) if p.is_file())
    relative = upload.relative_to(STATE / "uploads").as_posix()
    assert urllib.request.urlopen(f"{second['url']}/wp-content/uploads/{relative}", timeout=30).read() == upload.read_bytes()

    # 6b. --image: a reference run as is (here the image built for br2); never removed by destroy
    image = f"clonekit-preview/{project}-br2-app:latest"
    done = timed("restore --image (golden)", "--json", "restore", "prod@latest", "--as", "br4", "--image", f"app={image}")
    assert done.returncode == 0, done.stderr[-3000:]
    fourth = json.loads(done.stdout)
    assert "MARKER-TWO" in page(fourth["url"])
    assert [(c["origin"], c["image"]) for c in fourth["code"]] == [("image", image)]
    assert ck("destroy", "br4", "--yes").returncode == 0
    assert docker_lines("images", "-q", image)

    # 6c. a build that fails: exit 1 with the build's last lines, nothing created
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Dockerfile").write_text("FROM clonekit/wordpress:6.1\nRUN echo 'compiling assets' && exit 9\n")
    done = ck("restore", "prod@latest", "--as", "br5", "--build", f"app={broken}")
    assert done.returncode == 1 and "compiling assets" in done.stderr and "Traceback" not in done.stderr
    assert docker_lines("ps", "-aq", "--filter", "label=clonekit.preview=br5", "--filter", f"label=clonekit.project={project}") == []
    done = ck("restore", "prod@latest", "--as", "br5", "--build", f"app={tmp_path / 'nowhere'}")
    assert done.returncode == 2 and "does not exist" in done.stderr

    # 7. a failing hook fails the restore and leaves nothing
    done = timed("restore with a failing hook", "restore", "prod@latest", "--as", "br3", "--build", f"app={branch}", config="bad")
    assert done.returncode == 1
    assert "boom: table wp_missing does not exist" in done.stderr and "exit code 3" in done.stderr
    assert "Traceback" not in done.stderr
    assert docker_lines("ps", "-aq", "--filter", "label=clonekit.preview=br3", "--filter", f"label=clonekit.project={project}") == []
    assert docker_lines("images", "-q", f"clonekit-preview/{project}-br3-app") == []
    assert not (tmp_path / "bad" / ".clonekit" / "previews" / "br3").exists()

    # 8. destroy removes the images built for the preview
    assert docker_lines("images", "-q", f"clonekit-preview/{project}-br-app")
    done = ck("destroy", "br", "--yes")
    assert done.returncode == 0, done.stderr
    assert docker_lines("images", "-q", f"clonekit-preview/{project}-br-app") == []
    assert docker_lines("images", "-q", f"clonekit-preview/{project}-br2-app")  # another preview's: kept

    assert table_checksums(source) == before  # the source is untouched
    print("\nbranch preview timings (s):", json.dumps(timings))
    if os.environ.get("CLONEKIT_TIMINGS_FILE"):  # (xdist hides stdout)
        Path(os.environ["CLONEKIT_TIMINGS_FILE"]).write_text(json.dumps(timings, indent=1))
    assert re.match(r"^[0-9a-f]{40}$", commit_two)
