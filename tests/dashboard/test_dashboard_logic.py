"""The dashboard's pieces that need no service: its config section, who may start it, the chart,
the job table (one run per preview), and the records it shows (last hook, sanitization)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import make_manifest

from clonekit.config import parse_config
from clonekit.dashboard.auth import Credentials, credentials_for, safe_next
from clonekit.dashboard.chart import CHART_POINTS, chart_points, snapshot_chart
from clonekit.dashboard.jobs import Jobs
from clonekit.errors import ConfigError, PreviewError
from clonekit.oplog import OperationLog
from clonekit.previews.hooks import last_result

BASE = {"project": "news", "sources": {"prod": {"files": ["/srv/files"]}}}
SVG = "{http://www.w3.org/2000/svg}"


def _dashboard(section: object, tmp_path: Path):
    return parse_config({**BASE, "dashboard": section}, tmp_path / "clonekit.yml").dashboard


def test_dashboard_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _dashboard({"user": "agency", "password_env": "AGENCY_PW", "url": "https://ck.agency.example"}, tmp_path)
    assert (cfg.user, cfg.password_env, cfg.url) == ("agency", "AGENCY_PW", "https://ck.agency.example")
    monkeypatch.delenv("AGENCY_PW", raising=False)
    with pytest.raises(ConfigError, match="AGENCY_PW is not set"):  # named in the file: it must be set
        cfg.password()
    monkeypatch.setenv("AGENCY_PW", "pw")
    assert cfg.password() == "pw"
    default = parse_config(BASE, tmp_path / "clonekit.yml").dashboard
    monkeypatch.delenv("CLONEKIT_DASHBOARD_PASSWORD", raising=False)
    assert default.password() is None  # the default variable may be unset: loopback only
    assert "pw" not in repr(credentials_for(cfg, "0.0.0.0"))


def test_dashboard_section_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        _dashboard({"user": "a:b", "password_env": "not a name", "url": "ftp://x", "pasword_env": "X"}, tmp_path)
    text = str(raised.value)
    for expected in ("dashboard.user", "dashboard.password_env", "dashboard.url",
                     "dashboard.pasword_env: unknown key (did you mean 'password_env'?)"):
        assert expected in text


def test_serve_refuses_a_bind_others_reach_without_a_password(tmp_path: Path) -> None:
    config = tmp_path / "clonekit.yml"
    config.write_text("project: news\nsources: {prod: {files: [/srv/files]}}\n")
    env = {k: v for k, v in os.environ.items() if k != "CLONEKIT_DASHBOARD_PASSWORD"}
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "serve", "--bind", "0.0.0.0", "--port", "1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert "not loopback, and no password is set" in done.stderr and "CLONEKIT_DASHBOARD_PASSWORD" in done.stderr
    config.write_text(config.read_text() + "dashboard: {bogus: 1}\n")
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "serve"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "dashboard.bogus: unknown key" in done.stderr


def test_credentials() -> None:
    creds = Credentials("agency", "s3cret")
    assert creds.check_basic("Basic YWdlbmN5OnMzY3JldA==")  # agency:s3cret
    for header in (None, "", "Bearer x", "Basic !!!", "Basic YWdlbmN5", "Basic YWdlbmN5Om5v"):
        assert not creds.check_basic(header), header
    assert Credentials("agency", None).check("anyone", "")
    assert [safe_next(p) for p in ("/snapshots", "//evil.example", "https://evil.example", "/\\evil", None)] == \
        ["/snapshots", "/", "/", "/", "/"]


def test_chart_is_svg_of_the_last_snapshots() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    manifests = [make_manifest(at=start + timedelta(days=i), stats={"seconds": 60 + i, "new_bytes": 1000 * i})
                 for i in range(CHART_POINTS + 5)]
    points = chart_points(manifests)
    assert len(points) == CHART_POINTS and points[0].at == start + timedelta(days=5)
    svg = ET.fromstring(snapshot_chart(points, title="last <snapshots> of prod"))
    assert svg.tag == f"{SVG}svg"
    bars = svg.findall(f"{SVG}rect[@class='bar']")
    assert len(bars) == CHART_POINTS
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights == sorted(heights) and heights[-1] > heights[0]  # new bytes grow: so do the bars
    line = svg.find(f"{SVG}polyline")
    assert line is not None and len((line.get("points") or "").split()) == CHART_POINTS
    title = svg.find(f"{SVG}title")
    assert title is not None and title.text == "last <snapshots> of prod"  # escaped, parsed back
    empty = ET.fromstring(snapshot_chart([], title="none"))
    assert empty.findall(f"{SVG}rect[@class='bar']") == []


def test_one_run_per_preview() -> None:
    jobs = Jobs()
    release = threading.Event()
    runs: list[str] = []

    def slow(progress) -> None:
        runs.append("slow")
        progress("database", total=10)
        progress("database", advance=4)
        release.wait(30)

    first, started = jobs.start("one", "refresh", slow)
    again, started_again = jobs.start("one", "refresh", slow)
    assert started and not started_again and again is first
    other, other_started = jobs.start("two", "destroy", lambda progress: None)
    assert other_started and other is not first
    release.set()
    for job in (first, other):
        _wait_done(jobs, job.id)
    assert runs == ["slow"]
    assert first.to_json()["state"] == "ok" and (first.task, first.done, first.total) == ("database", 4, 10)

    def failing(progress) -> None:
        raise PreviewError("preview one did not answer", hint="read its logs")

    failed, _ = jobs.start("one", "refresh", failing)
    _wait_done(jobs, failed.id)
    assert failed.state == "failed" and "did not answer" in failed.message and "read its logs" in failed.message
    assert [j.id for j in jobs.recent()] == [failed.id, other.id, first.id]


def _wait_done(jobs: Jobs, job_id: str) -> None:
    for _ in range(3000):  # bounded: a broken build must not hang the suite
        job = jobs.get(job_id)
        if job is not None and job.state != "running":
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"job {job_id} did not end")


def test_last_hook_result(tmp_path: Path) -> None:
    assert last_result(tmp_path) == ""
    (tmp_path / "hooks.log").write_text("== hook a\nsome output == exit 9\n== exit 0\n== hook b\nsecret@example.com\n== exit 3\n")
    assert last_result(tmp_path) == "failed (exit 3)"
    (tmp_path / "hooks.log").write_text("== hook a\n== exit 0\n")
    assert last_result(tmp_path) == "ok"


def test_sanitization_summary_from_the_manifest() -> None:
    database = {"tables": [
        {"name": "users", "policy": "preset drupal: mail=fake_email", "rows_policy": "all", "rows": 7},
        {"name": "sessions", "policy": "preset drupal: rows none", "rows_policy": "none", "rows": 0},
        {"name": "node", "policy": "copy", "rows_policy": "all", "rows": 100},
    ]}
    summary = make_manifest(database=database, stats={"strict": 1}).summary()["sanitization"]
    assert summary == {"rules": {"users": "preset drupal: mail=fake_email", "sessions": "preset drupal: rows none"},
                       "tables_sanitized": 1, "tables_emptied": 1, "rows_transformed": 7, "strict": "passed"}
    assert make_manifest(database=database).sanitization()["strict"] == "not recorded"  # older snapshots


def test_operation_log_last_records(tmp_path: Path) -> None:
    log = OperationLog(tmp_path / "ops.jsonl", project="news")
    with log.operation("verify", snapshot="a") as record:
        record.update(ok=False)
    with log.operation("verify", snapshot="a") as record:
        record.update(ok=True)
    with log.operation("verify", snapshot="b") as record:
        record.update(ok=True)
    (tmp_path / "ops.jsonl").open("a").write("not json\n")
    last = log.last_records("verify", "snapshot")
    assert set(last) == {"a", "b"} and last["a"]["ok"] is True
    assert OperationLog(None, project="news").last_records("verify", "snapshot") == {}
