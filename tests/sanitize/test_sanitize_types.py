"""Every action on the column types it accepts, written back into the real MariaDB in strict mode:
the server takes every sanitized value (types, VARCHAR limits, UNIQUE keys, JSON validity)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from clonekit.errors import ConfigError
from clonekit.sanitize import build_planner, phpserialize

from .conftest import read_rows, read_tables, sanitize_config

DDL = """(
  id int PRIMARY KEY,
  email varchar(24) NOT NULL,
  login varchar(16) NOT NULL,
  full_name varchar(10),
  phone_text varchar(20),
  phone_int bigint unsigned,
  ip_text varchar(45),
  ip_bin varbinary(16),
  ip_int int unsigned,
  homepage varchar(30),
  bio text,
  note tinytext,
  token char(12),
  secret_hash varchar(255),
  born date,
  seen datetime,
  created int,
  profile json,
  settings longblob,
  pass varchar(255),
  kind enum('a','b'),
  UNIQUE KEY u_email (email),
  UNIQUE KEY u_login (login),
  UNIQUE KEY u_name (full_name),
  UNIQUE KEY u_token (token)
)"""

RULES = {"people": {"columns": {
    "email": "email", "login": "username", "full_name": "name", "phone_text": "phone", "phone_int": "phone",
    "ip_text": "ip", "ip_bin": "ip", "ip_int": "ip", "homepage": "url", "bio": {"text": "replace"}, "note": "scrub",
    "token": "hash", "secret_hash": "redact", "born": {"date": 365}, "seen": {"date": 2}, "created": {"date": 1},
    "profile": {"json": {"$.email": "email", "$.phones[*]": "phone"}},
    "settings": {"php": {"keys": {"*mail*": "email"}}}, "pass": {"password": "wordpress"}, "kind": {"set": "b"},
}}}


def seed(db, count: int = 300) -> None:  # noqa: ANN001
    db.execute(f"CREATE TABLE people {DDL} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
    conn = db.connect()
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO people VALUES (%s,%s,%s,%s,%s,%s,%s,INET6_ATON(%s),INET_ATON(%s),%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [(
                i, f"p{i}@x{i % 3}.org", f"user{i}", f"Name {i}", f"+33 6 12 34 {i % 100:02d} 00", 33612340000 + i,
                f"81.56.{i % 250}.7", f"2a01:cb00::{i:x}" if i % 2 else f"81.56.{i % 250}.8", f"81.56.{i % 250}.9",
                f"https://site{i}.example.org/", "Long biography " * (i % 7 + 1), f"mail me: p{i}@x.org or +33 6 12 34 56 {i % 100:02d}",
                f"tok{i:09d}", "secret", dt.date(1980, 1, 1) + dt.timedelta(days=i), dt.datetime(2024, 5, 1, 12, 0) + dt.timedelta(hours=i),
                1_700_000_000 + i, json.dumps({"email": f"p{i}@x.org", "phones": ["+33 6 00 00 00 01"], "n": i}),
                phpserialize.dumps(phpserialize.PhpArray([(b"mail", f"p{i}@x.org".encode()), (b"n", phpserialize.Raw(b"i:1;"))])),
                "$P$Bhashhashhashhashhashhashhash1", "a",
            ) for i in range(count)],
        )
    conn.close()


def test_every_action_is_accepted_by_the_server(mysql_db, mysql_target_db) -> None:
    seed(mysql_db)
    tables = read_tables(mysql_db)
    policy = build_planner(sanitize_config(tables=RULES, strict=False)).plan(tables)["people"]
    table = tables[0]
    source = read_rows(mysql_db, table)
    rows = [policy.transform(r) for r in source]
    mysql_target_db.execute(f"CREATE TABLE people {DDL} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci")
    conn = mysql_target_db.connect()
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE'")
        cur.executemany(f"INSERT INTO people VALUES ({', '.join(['%s'] * len(table.data_columns))})", rows)
    conn.close()
    back = read_rows(mysql_target_db, table)
    assert len(back) == len(source)
    for before, after in zip(source, back, strict=True):
        assert after[1] != before[1] and after[2] != before[2] and after[13] == "redacted"
        assert isinstance(after[5], int) and isinstance(after[7], bytes) and len(after[7]) == len(before[7]) != 0
        assert after[15] != before[15] and abs(after[15] - before[15]) <= dt.timedelta(days=2)
        profile = json.loads(after[17])
        assert profile["email"].endswith("@example.com") and profile["n"] == before[0] and profile["phones"] != ["+33 6 00 00 00 01"]
        assert phpserialize.loads(after[18]).items[0][1].endswith(b"@example.com")
        assert after[20] == "b"
    assert len({r[1] for r in back}) == len(back)  # unique still, even cut to VARCHAR(24)


def test_actions_that_cannot_write_a_column_type_fail_at_plan(mysql_db) -> None:
    seed(mysql_db, count=1)
    tables = read_tables(mysql_db)
    bad = {"people": {"columns": {"created": "email", "born": "name", "kind": "username", "email": "null",
                                  "token": {"set": "same"}}}}
    with pytest.raises(ConfigError) as err:
        build_planner(sanitize_config(tables=bad, strict=False)).plan(tables)
    text = "\n".join(err.value.problems)
    assert "columns.created: action email cannot write a int(11) column" in text
    assert "columns.born: action name cannot write a date column" in text
    assert "columns.kind: action username cannot write a enum('a','b') column" in text
    assert "columns.email: action null on a NOT NULL column" in text
    assert "columns.token: action set would give every row the same value in a UNIQUE column" in text
