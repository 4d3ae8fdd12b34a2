"""Cron behaviour from the CLI: `refresh --all` goes on past a preview another run holds,
prints a summary and exits 1; the log file and the webhook say what happened."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import yaml
from support import runtime_lifecycle, source_project_config

# The runtime tests' "production" (a small database, a folder, a compose project): reused as is.
_lifecycle = runtime_lifecycle("ck_preview_lifecycle")
source = _lifecycle.source


def test_refresh_all_goes_on_past_a_busy_preview(source, webhook_server, tmp_path: Path) -> None:
    url, received = webhook_server
    server = source["server"]
    project = f"cron{uuid.uuid4().hex[:6]}"
    config = {**source_project_config(source, project), "notify": {"webhook_env": "CK_TEST_WEBHOOK"}}
    path = tmp_path / "clonekit.yml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "CK_TEST_DB_PASSWORD": server.password, "CK_TEST_WEBHOOK": url,
           "CLONEKIT_PREVIEW_LOCK_WAIT": "1"}
    log_file = tmp_path / "ops.jsonl"

    def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(path), "--log-file", str(log_file), *args],
                              capture_output=True, text=True, env=env, timeout=600)

    try:
        done = clonekit("clone", "prod", "--as", "one")
        assert done.returncode == 0, done.stderr
        done = clonekit("restore", "prod@latest", "--as", "two")
        assert done.returncode == 0, done.stderr
        assert clonekit("-q", "snapshot", "prod").returncode == 0

        # Another run is busy with preview "two": the nightly refresh must not wait forever,
        # must not touch it, and must still refresh "one".
        lock_path = tmp_path / ".clonekit" / "previews" / ".locks" / "two.lock"
        with open(lock_path, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            done = clonekit("-q", "refresh", "--all")
        assert done.returncode == 1
        assert "refreshed one" in done.stdout
        assert "FAILED two" in done.stdout and "another clonekit run" in done.stdout
        assert "1 refreshed, 1 failed" in done.stdout

        listed = {p["name"]: p for p in json.loads(clonekit("--json", "list").stdout)}
        assert listed["one"]["status"] == "running" and listed["two"]["status"] == "running"

        lines = [json.loads(line) for line in log_file.read_text().splitlines()]
        refreshes = {(e.get("preview"), e["status"]) for e in lines if e["operation"] == "refresh"}
        assert refreshes == {("one", "ok"), ("two", "failed")}
        assert any("ready" in m["body"]["text"] for m in received)  # clone/restore ready messages
        assert any("failed" in m["body"]["text"] and "two" in m["body"]["text"] for m in received)
    finally:
        clonekit("destroy", "--all", "--yes")
    assert _lifecycle._labelled("container", project) == []
