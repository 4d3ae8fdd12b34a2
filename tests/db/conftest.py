"""Fixtures of the db tests: endpoints on the real MariaDB, a real local repository."""

from __future__ import annotations

import pytest

from clonekit.config import StoreConfig
from clonekit.db import DbEndpoint
from clonekit.repository import Repository


def endpoint_of(db) -> DbEndpoint:  # type: ignore[no-untyped-def]
    server = db.server
    return DbEndpoint(host=server.host, port=server.port, user=server.user, password=server.password, database=db.name)


@pytest.fixture
def source(mysql_db) -> DbEndpoint:
    return endpoint_of(mysql_db)


@pytest.fixture
def target(mysql_target_db) -> DbEndpoint:
    return endpoint_of(mysql_target_db)


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.open(StoreConfig(url=str(tmp_path / "store")))
