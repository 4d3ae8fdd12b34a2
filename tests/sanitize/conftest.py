"""Helpers for the sanitization tests: the live schema as ``schema.Table`` and plain row reads.

The db layer has its own introspection; these few lines keep the sanitizer's tests independent
of it (the contract is ``schema.Table``), reading the same information_schema on the real server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clonekit.config import SanitizeConfig
from clonekit.schema import Column, Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `tests.fixtures...` importable

from tests.fixtures.drupal_fixture import DEV_SECRET, seed_drupal  # noqa: E402

SECRET_ENV = "CLONEKIT_TEST_SANITIZE_SECRET"
BINARY_TYPES = {"blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary", "bit"}
WP_USERMETA = Table("wp_usermeta", (  # WordPress' key/value table, for tests without a server
    Column("umeta_id", "bigint", "bigint(20) unsigned", unique=True),
    Column("user_id", "bigint", "bigint(20) unsigned"),
    Column("meta_key", "varchar", "varchar(255)", max_chars=255),
    Column("meta_value", "longtext", "longtext"),
), primary_key=("umeta_id",))


def read_tables(db) -> list[Table]:  # noqa: ANN001 - tests.conftest.MysqlDatabase
    """Every base table of the database, as the db layer would describe it."""
    rows = db.query(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_MAXIMUM_LENGTH, EXTRA "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME, ORDINAL_POSITION",
        (db.name,),
    )
    keys = db.query(
        "SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND NON_UNIQUE = 0 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
        (db.name,),
    )
    unique: dict[str, dict[str, list[str]]] = {}
    for table, index, column in keys:
        unique.setdefault(table, {}).setdefault(index, []).append(column)
    columns: dict[str, list[Column]] = {}
    for table, name, data_type, column_type, nullable, max_chars, extra in rows:
        singles = {cols[0] for cols in unique.get(table, {}).values() if len(cols) == 1}
        columns.setdefault(table, []).append(Column(
            name=name, data_type=data_type.lower(), column_type=column_type, nullable=nullable == "YES",
            max_chars=int(max_chars) if max_chars is not None else None,
            generated="generated" in extra.lower() or "virtual" in extra.lower() or "persistent" in extra.lower(),
            binary=data_type.lower() in BINARY_TYPES, unique=name in singles,
        ))
    return [
        Table(
            name=name,
            columns=tuple(cols),
            primary_key=tuple(unique.get(name, {}).get("PRIMARY", ())),
            unique_keys=tuple(tuple(c) for i, c in sorted(unique.get(name, {}).items()) if i != "PRIMARY"),
        )
        for name, cols in sorted(columns.items())
    ]


def read_rows(db, table: Table, where: str | None = None, limit: int | None = None) -> list[tuple]:  # noqa: ANN001
    names = ", ".join(f"`{c.name}`" for c in table.data_columns)
    sql = f"SELECT {names} FROM `{table.name}`" + (f" WHERE {where}" if where else "") + (f" LIMIT {limit}" if limit else "")
    return db.query(sql)


def sanitize_config(**kwargs) -> SanitizeConfig:  # noqa: ANN003
    kwargs.setdefault("secret_env", SECRET_ENV)
    return SanitizeConfig(**kwargs)


@pytest.fixture(autouse=True)
def _secret(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv(SECRET_ENV, DEV_SECRET)


@pytest.fixture
def drupal_db(mysql_db):  # noqa: ANN001, ANN201
    conn = mysql_db.connect()
    try:
        seed_drupal(conn)
    finally:
        conn.close()
    return mysql_db
