"""Store fixtures: every repository test runs on the folder store and on the real S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import support

from clonekit.config import StoreConfig
from clonekit.manifest import Manifest
from clonekit.repository import ChunkRef

KEY_HEX = "8f" * 32  # a test key; real ones come from `openssl rand -hex 32`


def s3_config(bucket: Any, **extra: Any) -> StoreConfig:
    return StoreConfig(url=bucket.url, endpoint_url=bucket.endpoint_url, region="us-east-1", path_style=True, **extra)


@pytest.fixture(params=["local", "moto", "rgw"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store_config(store_kind, request, tmp_path) -> StoreConfig:
    """A StoreConfig for an empty store: a folder, a fresh bucket on moto (a mock of S3) or on
    Ceph's RADOS Gateway (a real S3 server). A missing server fails the test, never skips it."""
    if store_kind == "local":
        return StoreConfig(url=str(tmp_path / "store"))
    return s3_config(request.getfixturevalue(f"{store_kind}_bucket"))


@pytest.fixture(params=["moto", "rgw"])
def s3_bucket(request):
    """In the store tests every S3 test runs on both servers, the fault-proxy ones included."""
    return request.getfixturevalue(f"{request.param}_bucket")


@pytest.fixture
def encryption_key(monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("CLONEKIT_TEST_STORE_KEY", KEY_HEX)
    yield "CLONEKIT_TEST_STORE_KEY"


def make_manifest(
    refs: list[ChunkRef], *, source: str = "prod", at: datetime | None = None, files: tuple = ()
) -> Manifest:
    return support.make_manifest(
        source=source, project="news", at=at, rules_digest="digest",
        database={"engine": "mariadb", "tables": [{"name": "node", "rows": 3, "chunks": [r.to_json() for r in refs]}]},
        files=files, stats={"plain_bytes": sum(r.size for r in refs)},
    )


def hours_ago(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def payloads(count: int, size: int = 4096, seed: bytes = b"") -> list[bytes]:
    """Distinct, partly compressible chunks."""
    return [seed + os.urandom(size // 4) + bytes([i % 251]) * (size - size // 4) for i in range(count)]
