"""docs/ci.md's GitHub Actions workflow and GitLab CI job, run as written (their shell steps, with
bash -e as both CIs do) against the WordPress production (ckprod, read-only): a pull request
opened → a preview with the branch's code; updated → `refresh --code` picks up the new commit;
closed → nothing left. What cannot run here (checkout, the comment through the GitHub API,
GitLab's environment) is only parsed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from e2e.branch_repo import commit_branch, production_config

ROOT = Path(__file__).resolve().parents[2]
def ci_files() -> tuple[dict, dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "ci.md").read_text(), re.S)
    docs = [yaml.safe_load(b) for b in blocks]
    github = next(d for d in docs if isinstance(d, dict) and "jobs" in d)
    gitlab = next(d for d in docs if isinstance(d, dict) and "preview-stop" in d)
    return github, gitlab


def test_the_ci_files_are_what_the_docs_promise() -> None:
    github, gitlab = ci_files()
    assert set(github[True]["pull_request"]["types"]) >= {"opened", "synchronize", "closed"}  # YAML 1.1: on → True
    steps = github["jobs"]["preview"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert 'clone prod --as "$NAME" --max-age 24h --build app=.' in runs and 'destroy "pr-$PR_NUMBER" --yes' in runs
    assert gitlab["preview"]["environment"]["on_stop"] == "preview-stop"
    assert gitlab["preview-stop"]["environment"]["action"] == "stop"


@pytest.fixture
def repo(ckprod, tmp_path):
    project = f"ckci{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "clonekit.yml").write_text(production_config(project, tmp_path / "store", password_env="PROD_DB_PASSWORD",
                                                           secret_env="CLONEKIT_SECRET"))
    (folder / ".gitignore").write_text(".clonekit/\npreview.json\npreview.env\n")
    commit_branch(folder, "PR-FIRST")
    bin_dir = tmp_path / "bin"  # `clonekit` on PATH, as `pip install clonekit` gives it
    bin_dir.mkdir()
    (bin_dir / "clonekit").write_text(f"#!/bin/sh\nexec {sys.executable} -m clonekit \"$@\"\n")
    (bin_dir / "clonekit").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PROD_DB_PASSWORD": ckprod.secrets["CKPROD_DB_PASSWORD"],
           "CLONEKIT_SECRET": uuid.uuid4().hex}
    try:
        yield folder, env, project
    finally:
        subprocess.run(["clonekit", "destroy", "--all", "--yes"], cwd=folder, env=env, capture_output=True)


def run_script(script: str, folder: Path, env: dict[str, str]) -> None:
    done = subprocess.run(["bash", "-e", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def leftovers(project: str) -> list[str]:
    return subprocess.run(["docker", "ps", "-aq", "--filter", f"label=clonekit.project={project}"],
                          capture_output=True, text=True, check=True).stdout.split()


def test_github_workflow_and_gitlab_job_run_as_written(repo, tmp_path):
    folder, env, project = repo
    github, gitlab = ci_files()
    steps = {s.get("name"): s for s in github["jobs"]["preview"]["steps"]}
    gh_env = {**env, "PR_NUMBER": "7", "GITHUB_ENV": str(tmp_path / "github_env")}

    # GitHub: opened, then synchronize (a new commit), then closed
    run_script(steps["clone or update the preview"]["run"], folder, gh_env)
    url = json.loads((folder / "preview.json").read_text())["url"]
    assert f"PREVIEW_URL={url}" in (tmp_path / "github_env").read_text()
    assert "PR-FIRST" in urllib.request.urlopen(url + "/", timeout=60).read().decode()
    commit_branch(folder, "PR-SECOND")
    run_script(steps["clone or update the preview"]["run"], folder, gh_env)
    assert json.loads((folder / "preview.json").read_text())["url"] == url  # same preview, same URL
    assert "PR-SECOND" in urllib.request.urlopen(url + "/", timeout=60).read().decode()
    run_script(steps["destroy the preview"]["run"], folder, gh_env)
    assert leftovers(project) == []

    # GitLab: the merge request pipeline, then the environment's stop job
    gl_env = {**env, "CI_MERGE_REQUEST_IID": "12"}
    run_script("\n".join(gitlab["preview"]["script"]), folder, gl_env)
    url = (folder / "preview.env").read_text().strip().removeprefix("PREVIEW_URL=")
    assert "PR-SECOND" in urllib.request.urlopen(url + "/", timeout=60).read().decode()
    listed = json.loads(subprocess.run(["clonekit", "--json", "list"], cwd=folder, env=env, capture_output=True,
                                       text=True, check=True).stdout)
    assert [p["name"] for p in listed] == ["mr-12"]
    run_script("\n".join(gitlab["preview-stop"]["script"]), folder, gl_env)
    assert leftovers(project) == []
