"""Manifests: pure logic (canonical JSON, chunk-reference convention, ids, versions)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from support import make_manifest

from clonekit.errors import IntegrityError
from clonekit.manifest import SNAPSHOT_ID, Manifest, new_snapshot_id

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def _manifest(**overrides) -> Manifest:
    fields = dict(
        id="prod-20261126-053012-7f3a",
        source="prod",
        project="news",
        created_at=datetime(2026, 11, 26, 5, 30, 12, 500, tzinfo=UTC),
        tool_version="0.1.0",
        rules_digest="r1",
        database={"tables": [{"name": "node", "schema": {"chunks": "not a list: ignored"}, "chunks": [{"id": A, "size": 3}]},
                             {"name": "users", "parts": [{"chunks": [{"id": B, "size": 5}]}]}]},
        files=({"path": "/srv/files", "entries": [{"name": "x.jpg", "chunks": [{"id": C, "size": 7}, {"id": A, "size": 3}]}]},),
        services={"services": {"app": {"image": "wordpress@sha256:...", "env": {"DB_PASSWORD": {"secret": True}}}},
                  "extra": {"chunks": [{"id": D, "size": 1}]}},
        stats={"plain_bytes": 16, "chunks": 4},
    )
    fields.update(overrides)
    return make_manifest(**fields)


def test_chunk_ids_follow_the_convention_everywhere():
    m = _manifest()
    assert m.chunk_ids() == frozenset({A, B, C, D})
    assert m.chunk_refs() == {A: 3, B: 5, C: 7, D: 1}
    assert _manifest(database=None, files=(), services=None).chunk_ids() == frozenset()


def test_json_round_trip_is_canonical():
    m = _manifest()
    data = m.to_json()
    assert Manifest.from_json(data) == m
    assert Manifest.from_json(data).to_json() == data
    raw = json.loads(data)
    assert list(raw) == sorted(raw) and raw["created_at"] == "2026-11-26T05:30:12.000500Z"
    assert b'", "' not in data and b'": ' not in data  # compact separators


def test_created_at_is_normalised_to_utc():
    paris = timezone(timedelta(hours=1))
    m = _manifest(created_at=datetime(2026, 11, 26, 6, 30, 12, tzinfo=paris))
    assert Manifest.from_json(m.to_json()).created_at == datetime(2026, 11, 26, 5, 30, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        _manifest(created_at=datetime(2026, 11, 26))


def test_newer_format_and_garbage_are_refused():
    raw = json.loads(_manifest().to_json())
    raw["format_version"] = 99
    with pytest.raises(IntegrityError, match="(?s)format 99.*upgrade"):
        Manifest.from_json(json.dumps(raw).encode())
    with pytest.raises(IntegrityError, match="not valid JSON"):
        Manifest.from_json(b"{nope")
    del raw["source"]
    raw["format_version"] = 1
    with pytest.raises(IntegrityError, match="malformed"):
        Manifest.from_json(json.dumps(raw).encode())


def test_snapshot_ids_are_readable_sortable_unique():
    at = datetime(2026, 11, 26, 5, 30, 12, tzinfo=UTC)
    ids = {new_snapshot_id("prod", at) for _ in range(50)}
    assert len(ids) > 40  # 16 random bits: collisions within one second are rare (commit refuses them)
    one = ids.pop()
    assert re.fullmatch(r"prod-20261126-053012-[0-9a-f]{4}", one) and SNAPSHOT_ID.match(one)
    later = new_snapshot_id("prod", at + timedelta(seconds=1))
    assert later > one
