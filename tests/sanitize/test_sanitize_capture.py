"""The leak proof through the real capture and restore (clonekit.db) of the Drupal fixture: no
seeded personal value in the stored chunks nor in the restored database."""

from __future__ import annotations

from clonekit.config import StoreConfig
from clonekit.db import DbEndpoint, capture_database, restore_database
from clonekit.repository import Repository
from clonekit.sanitize import build_planner
from clonekit.sanitize.passwords import check_password
from tests.fixtures.drupal_fixture import PEOPLE, SEEDED_PERSONAL_VALUES

from .conftest import read_rows, read_tables, sanitize_config


def endpoint(db) -> DbEndpoint:  # noqa: ANN001
    s = db.server
    return DbEndpoint(host=s.host, port=s.port, user=s.user, password=s.password, database=db.name)


def test_drupal_snapshot_and_restore_leak_nothing(drupal_db, mysql_target_db, tmp_path) -> None:
    repo = Repository.open(StoreConfig(url=str(tmp_path / "store")))
    planner = build_planner(sanitize_config(preset="drupal", dev_password="letmein"))
    with repo.writer() as writer:
        section = capture_database(endpoint(drupal_db), planner, writer, workers=2)
    chunk_ids = [c["id"] for t in section["tables"] for c in t["chunks"]]
    stored = b"".join(repo.iter_chunks(chunk_ids)).decode("utf-8", "replace").casefold()
    assert stored and [v for v in SEEDED_PERSONAL_VALUES if v.casefold() in stored] == []

    restore_database(repo, section, endpoint(mysql_target_db), workers=2)  # UNIQUE keys load
    restored = []
    for table in read_tables(mysql_target_db):
        for row in read_rows(mysql_target_db, table):
            restored.extend(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row)
    text = "\n".join(restored).casefold()
    assert [v for v in SEEDED_PERSONAL_VALUES if v.casefold() in text] == []
    users = {r[0]: r for r in mysql_target_db.query("SELECT uid, name, pass, mail FROM users_field_data")}
    comments = {r[0]: r for r in mysql_target_db.query("SELECT uid, name, mail FROM comment_field_data WHERE uid > 0")}
    assert len(users) == len(PEOPLE) + 2  # anonymous and staff too: nothing was dropped
    for person in PEOPLE:
        assert check_password("letmein", users[person.uid][2])
        assert comments[person.uid][1:] == users[person.uid][1:2] + users[person.uid][3:]  # joins still match
    assert mysql_target_db.query("SELECT COUNT(*) FROM sessions")[0][0] == 0
