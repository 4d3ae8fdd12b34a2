"""States that tell the truth after kill -9: a real `clonekit restore` killed half-way shows as
`failed (process gone)` in `clonekit list` and a second run takes its name over; a store lock
left by a killed process of this host is taken over at once, not after 30 minutes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import yaml
from support import runtime_lifecycle, source_project_config

# The runtime tests' "production" (a small database, a folder, a compose project): reused as is.
_lifecycle = runtime_lifecycle("ck_preview_lifecycle_killed")
source = _lifecycle.source

GUARD_SECONDS = 600  # only keeps a broken build from hanging the suite


def _project(source, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    server = source["server"]
    config = source_project_config(source, f"kill{uuid.uuid4().hex[:6]}")
    path = tmp_path / "clonekit.yml"
    path.write_text(yaml.safe_dump(config))
    return path, {**os.environ, "CK_TEST_DB_PASSWORD": server.password}


def _wait_for(predicate, what: str, guard: float = GUARD_SECONDS) -> None:
    """Poll until ``predicate()`` holds (an event, not a duration: the guard only stops a hang)."""
    end = time.monotonic() + guard
    while not predicate():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.02)


def _status(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("status")
    except (OSError, ValueError):
        return None


def test_killed_restore_shows_as_failed_and_a_second_run_takes_over(source, tmp_path):
    config, env = _project(source, tmp_path)

    def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), *args],
                              capture_output=True, text=True, env=env, timeout=GUARD_SECONDS)

    try:
        assert clonekit("-q", "snapshot", "prod").returncode == 0
        state = tmp_path / ".clonekit" / "previews" / "k" / "state.json"
        run = subprocess.Popen([sys.executable, "-m", "clonekit", "-c", str(config), "restore", "prod@latest", "--as", "k"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        try:
            _wait_for(lambda: _status(state) == "creating" or run.poll() is not None, "the restore started creating")
            os.kill(run.pid, signal.SIGKILL)
        finally:
            run.wait()
        assert run.returncode == -signal.SIGKILL  # killed half-way, not finished
        assert _status(state) == "creating"  # what the dead run left on disk

        listed = {p["name"]: p for p in json.loads(clonekit("--json", "list").stdout)}
        assert listed["k"]["status"] == "failed (process gone)"

        again = clonekit("restore", "prod@latest", "--as", "k")
        assert again.returncode == 0, again.stderr
        assert "left half-created" in again.stderr and f"pid {run.pid}" in again.stderr
        listed = {p["name"]: p for p in json.loads(clonekit("--json", "list").stdout)}
        assert listed["k"]["status"] == "running"
    finally:
        clonekit("destroy", "--all", "--yes")


HOLDER = textwrap.dedent("""
    import sys, time
    from clonekit.config import StoreConfig
    from clonekit.repository import Repository
    with Repository.open(StoreConfig(url=sys.argv[1])).lock(exclusive=True, wait_seconds=0):
        print("held", flush=True)
        time.sleep(3600)
""")


def test_lock_of_a_killed_process_is_taken_over_at_once(tmp_path):
    store = tmp_path / "store"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        probe = subprocess.run([sys.executable, "-c", HOLDER.replace("time.sleep(3600)", "pass"), str(store)],
                               capture_output=True, text=True, timeout=GUARD_SECONDS)
        assert probe.returncode != 0 and "LockedError" in probe.stderr  # a live owner still blocks
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.wait()
    assert list((store / "locks").iterdir())  # the dead run's lock is still there
    env = {**os.environ, "CLONEKIT_LOCK_WAIT_SECONDS": "0"}  # no waiting: taken over or refused
    (tmp_path / "clonekit.yml").write_text(f"project: site\nstore: {store}\nsources:\n  prod:\n    files: [{tmp_path}]\n")
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(tmp_path / "clonekit.yml"), "prune"],
                          capture_output=True, text=True, env=env, timeout=GUARD_SECONDS)
    assert done.returncode == 0, done.stderr
    assert "taking over lock" in done.stderr and f"pid {holder.pid}" in done.stderr
    assert list((store / "locks").iterdir()) == []
