"""The drupal preset on the Drupal-shaped fixture in the real MariaDB: rows read, transformed by the
plan, written into a second database with the same schema (so VARCHAR limits and UNIQUE keys are
enforced by the server), then searched for every seeded personal value."""

from __future__ import annotations

import pytest

from clonekit.errors import ConfigError, PolicyError
from clonekit.sanitize import build_planner, phpserialize
from clonekit.sanitize.passwords import check_password
from tests.fixtures.drupal_fixture import DDL, PEOPLE, SEEDED_PERSONAL_VALUES, STAFF

from .conftest import read_rows, read_tables, sanitize_config


def sanitized_copy(source, target, cfg) -> dict[str, list[tuple]]:  # noqa: ANN001
    """Plan, read every table as the db layer would, transform, and load into ``target``."""
    tables = read_tables(source)
    policies = build_planner(cfg).plan(tables)
    out: dict[str, list[tuple]] = {}
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE'")
            for table in tables:
                cur.execute(f"CREATE TABLE `{table.name}` {DDL[table.name]} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
                policy = policies[table.name]
                if policy.rows == "none":
                    out[table.name] = []
                    continue
                rows = read_rows(source, table, where=policy.where)
                if policy.transform is not None:
                    rows = [policy.transform(row) for row in rows]
                out[table.name] = rows
                names = ", ".join(f"`{c.name}`" for c in table.data_columns)
                marks = ", ".join(["%s"] * len(table.data_columns))
                if rows:
                    cur.executemany(f"INSERT INTO `{table.name}` ({names}) VALUES ({marks})", rows)
    finally:
        conn.close()
    return out


def dump_text(db) -> str:  # noqa: ANN001
    """Every value of every table of ``db``, as one searchable text."""
    parts = []
    for table in read_tables(db):
        for row in read_rows(db, table):
            for value in row:
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                parts.append(str(value))
    return "\n".join(parts)


def test_no_seeded_personal_value_survives(drupal_db, mysql_target_db) -> None:
    sanitized_copy(drupal_db, mysql_target_db, sanitize_config(preset="drupal"))
    text = dump_text(mysql_target_db).casefold()
    leaked = [v for v in SEEDED_PERSONAL_VALUES if v.casefold() in text]
    assert leaked == []
    # and the source really held them: the search itself works
    source = dump_text(drupal_db).casefold()
    assert all(v.casefold() in source for v in SEEDED_PERSONAL_VALUES)


def test_same_person_same_pseudonym_across_tables_and_runs(drupal_db, mysql_target_db) -> None:
    cfg = sanitize_config(preset="drupal")
    rows = sanitized_copy(drupal_db, mysql_target_db, cfg)
    users = {r[0]: r for r in rows["users_field_data"]}  # uid -> row
    comments = {r[4]: r for r in rows["comment_field_data"] if r[4]}  # uid -> row
    for person in PEOPLE:
        user, comment = users[person.uid], comments[person.uid]
        assert user[5] == user[6] == comment[9]  # mail == init == comment mail
        assert user[3] == comment[8]  # name == comment name (username pseudonym)
        assert user[5].endswith("@example.com") and user[5] != person.email
    # a second, independent plan (tomorrow night) gives the same bytes
    tables = read_tables(drupal_db)
    again = build_planner(cfg).plan(tables)
    users_table = next(t for t in tables if t.name == "users_field_data")
    assert [again["users_field_data"].transform(r) for r in read_rows(drupal_db, users_table)] == rows["users_field_data"]


def test_dev_password_logs_in_and_staff_untouched(drupal_db, mysql_target_db) -> None:
    cfg = sanitize_config(preset="drupal", keep_accounts=(STAFF.login,), dev_password="letmein")
    rows = sanitized_copy(drupal_db, mysql_target_db, cfg)
    users = {r[0]: r for r in rows["users_field_data"]}
    for person in PEOPLE:
        assert users[person.uid][4].startswith("$S$")
        assert check_password("letmein", users[person.uid][4])
    config = rows["config"][0][2]
    # kept by login: the users row; an address elsewhere is kept only when it is listed too
    assert STAFF.email.encode() not in config and b"@example.com" in config
    phpserialize.loads(config)
    staff = users[STAFF.uid]
    assert (staff[3], staff[4], staff[5]) == (STAFF.login, STAFF.pass_hash, STAFF.email)
    assert users[0][3] == "" and users[0][4] is None  # the anonymous user stays as it is


def test_staff_kept_by_email_everywhere(drupal_db, mysql_target_db) -> None:
    rows = sanitized_copy(drupal_db, mysql_target_db, sanitize_config(preset="drupal", keep_accounts=(STAFF.email.upper(),)))
    assert next(r for r in rows["users_field_data"] if r[0] == STAFF.uid)[3:6] == (STAFF.login, STAFF.pass_hash, STAFF.email)
    assert STAFF.email.encode() in rows["config"][0][2]


def test_rows_none_tables_are_planned_empty(drupal_db) -> None:
    policies = build_planner(sanitize_config(preset="drupal")).plan(read_tables(drupal_db))
    for name in ("sessions", "cache_default", "cache_render", "flood"):
        assert policies[name].rows == "none"
    assert policies["node_field_data"].is_identity and policies["node_field_data"].transform is None
    assert policies["config"].transform is not None  # the site's address in system.site
    assert "mail=email" in policies["users_field_data"].rule


def test_user_rules_override_the_preset_and_filter_rows(drupal_db, mysql_target_db) -> None:
    cfg = sanitize_config(
        preset="drupal",
        tables={
            "users_field_data": {"columns": {"mail": {"email": {"domain": "dev.example.org"}}, "timezone": {"set": "UTC"}}},
            "watchdog": {"rows": "wid > (SELECT MAX(wid) - 3 FROM watchdog)"},
        },
    )
    rows = sanitized_copy(drupal_db, mysql_target_db, cfg)
    for row in rows["users_field_data"][1:]:
        assert row[5].endswith("@dev.example.org") and row[7] == "UTC"
        assert row[3] != "" and "@" not in row[3]  # the preset's username rule still applies
    assert len(rows["watchdog"]) == 3


def test_strict_refuses_uncovered_personal_columns(drupal_db) -> None:
    drupal_db.execute(
        "CREATE TABLE newsletter_signup (id int PRIMARY KEY, subscriber_email varchar(200), mobile_phone varchar(40), note text)",
        "INSERT INTO newsletter_signup VALUES (1, 'someone@example.net', '+33 6 00 00 00 01', 'hi')",
    )
    tables = read_tables(drupal_db)
    with pytest.raises(PolicyError) as err:
        build_planner(sanitize_config(preset="drupal")).plan(tables)
    assert err.value.columns == ["newsletter_signup.subscriber_email", "newsletter_signup.mobile_phone"]
    assert err.value.exit_code == 3
    assert "someone@example.net" not in str(err.value)
    # covered (or declared not personal), the plan goes through; strict off also lets it through
    covered = {"newsletter_signup": {"columns": {"subscriber_email": "email", "mobile_phone": "keep"}}}
    assert build_planner(sanitize_config(preset="drupal", tables=covered)).plan(tables)["newsletter_signup"].transform
    assert build_planner(sanitize_config(preset="drupal", strict=False)).plan(tables)["newsletter_signup"].is_identity


def test_rules_naming_missing_tables_or_columns_fail_at_plan(drupal_db) -> None:
    tables = read_tables(drupal_db)
    cfg = sanitize_config(
        preset="drupal",
        tables={
            "user_field_data": {"columns": {"mail": "email"}},
            "comment_field_data": {"columns": {"e_mail": "email", "subject": {"when": "kind = 'x'", "use": "redact"}}},
            "cache_*": {"columns": {"nope": "redact"}},
            "nothing_*": {"rows": "none"},  # a glob that matches nothing is fine
        },
    )
    with pytest.raises(ConfigError) as err:
        build_planner(cfg).plan(tables)
    problems = err.value.problems
    assert any("sanitize.tables.user_field_data" in p and "did you mean 'users_field_data'" in p for p in problems)
    assert any("sanitize.tables.comment_field_data.columns.e_mail" in p for p in problems)
    assert any("comment_field_data.columns.subject" in p and "'kind'" in p for p in problems)
    assert any("cache_*" in p and "'nope'" in p for p in problems)
    assert len(problems) == 4


def test_other_drupal_tables_with_personal_columns_are_covered(drupal_db) -> None:
    drupal_db.execute(
        "CREATE TABLE comment_entity_statistics (entity_id int, entity_type varchar(32), field_name varchar(32), "
        "cid int, last_comment_timestamp int, last_comment_name varchar(60), last_comment_uid int, comment_count int, "
        "PRIMARY KEY (entity_id, entity_type, field_name))",
        "CREATE TABLE ban_ip (iid int PRIMARY KEY, ip varchar(40))",
        # Drupal 7 names
        "CREATE TABLE users (uid int PRIMARY KEY, name varchar(60) UNIQUE, pass varchar(128), mail varchar(254), "
        "init varchar(254), data longblob)",
        "CREATE TABLE comment (cid int PRIMARY KEY, name varchar(60), mail varchar(64), homepage varchar(255), hostname varchar(128))",
        "CREATE TABLE cache (cid varchar(255) PRIMARY KEY, data longblob)",
        "INSERT INTO users VALUES (1, 'twolfeschlegel', '$S$Dxxx', 'thaddeus.wolfeschlegel@mailbox-one.org', "
        "'thaddeus.wolfeschlegel@mailbox-one.org', 'a:1:{s:7:\"contact\";i:1;}')",
    )
    tables = read_tables(drupal_db)
    policies = build_planner(sanitize_config(preset="drupal")).plan(tables)  # strict: nothing uncovered
    assert policies["cache"].rows == "none"
    d7 = next(t for t in tables if t.name == "users")
    (row,) = [policies["users"].transform(r) for r in read_rows(drupal_db, d7)]
    assert "wolfeschlegel" not in str(row) and row[2].startswith("$S$") and row[5] == b'a:1:{s:7:"contact";i:1;}'

