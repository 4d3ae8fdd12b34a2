"""Helpers shared by test folders (on pytest's pythonpath: `from support import ...`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from clonekit.config import Config, ContainersSource, FileSource
from clonekit.containers import capture_services
from clonekit.db import DbEndpoint, capture_database
from clonekit.files import capture_files
from clonekit.manifest import Manifest, new_snapshot_id
from clonekit.repository import Repository
from clonekit.schema import CopyEverything


def build_snapshot(config: Config, source: dict[str, Any], compose_project: str) -> Manifest:
    """A committed snapshot of a test 'production' (database, one folder, a compose project), copied
    as is: the preview and golden tests exercise restore, not sanitization."""
    server = source["server"]
    endpoint = DbEndpoint(server.host, server.port, server.user, server.password, source["database"])
    repo = Repository.open(config.store)
    started = datetime.now(UTC)
    with repo.writer() as writer:
        database = capture_database(endpoint, CopyEverything(), writer)
        files = capture_files(FileSource(str(source["site"])), writer)
    manifest = Manifest(
        id=new_snapshot_id("prod", started), source="prod", project=config.project, created_at=started,
        tool_version="test", rules_digest="none", database=database, files=(files,),
        services=capture_services(ContainersSource(compose_project)),
    )
    repo.commit(manifest)
    return manifest


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``clonekit ARGS`` in this process: (exit code, stdout, stderr)."""
    from clonekit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err
