"""Webhook notifications against a local HTTP server, and the JSON-lines operation log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clonekit.config import NotifyConfig
from clonekit.errors import SourceError
from clonekit.notify import send_webhook
from clonekit.oplog import OperationLog


def test_webhook_posts_slack_compatible_json(webhook_server, monkeypatch) -> None:
    url, received = webhook_server
    monkeypatch.setenv("CK_TEST_WEBHOOK", url)
    assert send_webhook(NotifyConfig(webhook_env="CK_TEST_WEBHOOK"), "Preview feature-x is ready: http://x")
    assert received == [
        {"path": "/hooks/T000/B000", "type": "application/json", "body": {"text": "Preview feature-x is ready: http://x"}}
    ]


def test_webhook_failure_never_fails_the_operation(monkeypatch) -> None:
    monkeypatch.setenv("CK_TEST_WEBHOOK", "http://127.0.0.1:9/nothing-listens-here")
    assert send_webhook(NotifyConfig(webhook_env="CK_TEST_WEBHOOK"), "hello") is False
    monkeypatch.delenv("CK_TEST_WEBHOOK")
    assert send_webhook(NotifyConfig(webhook_env="CK_TEST_WEBHOOK"), "hello") is False
    assert send_webhook(NotifyConfig(), "hello") is False


def test_operation_log_lines_and_failure_hook(tmp_path: Path) -> None:
    failures: list[tuple[str, str]] = []
    log = OperationLog(tmp_path / "ops.jsonl", project="news", on_failure=lambda op, exc: failures.append((op, exc.message)))
    with log.operation("snapshot", source="prod") as record:
        record.update(snapshot="prod-1", new_bytes=42, rows=[("secret row",)])  # non-scalars are never logged
    with pytest.raises(SourceError), log.operation("refresh", preview="feature-x"):
        raise SourceError("database unreachable")
    lines = [json.loads(line) for line in (tmp_path / "ops.jsonl").read_text().splitlines()]
    assert [(e["operation"], e["status"]) for e in lines] == [("snapshot", "ok"), ("refresh", "failed")]
    assert lines[0]["new_bytes"] == 42 and lines[0]["snapshot"] == "prod-1" and "rows" not in lines[0]
    assert lines[1]["error"] == "database unreachable" and lines[1]["preview"] == "feature-x"
    assert all(e["project"] == "news" and e["seconds"] >= 0 for e in lines)
    assert failures == [("refresh", "database unreachable")]
