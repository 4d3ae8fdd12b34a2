"""previews.replace: serialization-safe rewriting of values (pure) and of a real database."""

from __future__ import annotations

import json

from clonekit.db.rewrite import Replacement, rewrite_value
from clonekit.db.target import rewrite_urls

OLD, NEW = "https://www.example.net", "http://127.0.0.1:43123"
R = [Replacement(OLD, NEW)]


def php_s(text: str) -> str:
    return f's:{len(text.encode())}:"{text}";'


def test_plain_text():
    assert rewrite_value(f"see {OLD}/about", R) == f"see {NEW}/about"
    assert rewrite_value("nothing here", R) == "nothing here"


def test_serialized_lengths_are_recomputed():
    value = "a:2:{s:4:\"home\";" + php_s(f"{OLD}/é") + "i:0;" + php_s("keep") + "}"
    out = rewrite_value(value, R)
    assert out == "a:2:{s:4:\"home\";" + php_s(f"{NEW}/é") + "i:0;" + php_s("keep") + "}"


def test_nested_serialized_string_and_object():
    inner = "a:1:{i:0;" + php_s(OLD) + "}"
    value = 'O:8:"stdClass":2:{s:3:"url";' + php_s(OLD) + 's:6:"nested";' + php_s(inner) + "}"
    expected_inner = "a:1:{i:0;" + php_s(NEW) + "}"
    expected = 'O:8:"stdClass":2:{s:3:"url";' + php_s(NEW) + 's:6:"nested";' + php_s(expected_inner) + "}"
    assert rewrite_value(value, R) == expected


def test_serialized_with_other_scalars():
    value = "a:4:{i:0;b:1;i:1;d:0.5;i:2;N;i:3;" + php_s(OLD) + "}"
    assert rewrite_value(value, R) == "a:4:{i:0;b:1;i:1;d:0.5;i:2;N;i:3;" + php_s(NEW) + "}"


def test_json_with_escaped_slashes():
    value = json.dumps({"url": OLD + "/x", "n": 1}).replace("/", "\\/")
    out = rewrite_value(value, R)
    assert json.loads(out) == {"url": NEW + "/x", "n": 1}
    plain = json.dumps({"url": OLD})
    assert json.loads(rewrite_value(plain, R)) == {"url": NEW}


def test_broken_serialized_falls_back_to_plain():
    value = 's:99:"' + OLD + '";'
    assert rewrite_value(value, R) == 's:99:"' + NEW + '";'


def test_rewrite_urls(mysql_db):
    mysql_db.execute(
        "CREATE TABLE wp_options (option_id INT PRIMARY KEY, option_name VARCHAR(64), option_value LONGTEXT)",
        "CREATE TABLE nokey (v TEXT)",
    )
    serialized = "a:1:{s:4:\"home\";" + php_s(OLD) + "}"
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO wp_options VALUES (%s, %s, %s)",
                        [(1, "siteurl", OLD), (2, "widget", serialized), (3, "other", "untouched"),
                         (4, "json", json.dumps({"u": OLD}).replace("/", "\\/"))])
        cur.executemany("INSERT INTO nokey VALUES (%s)", [(OLD + "/a",), (OLD + "/a",), ("b",)])
    conn.close()
    from clonekit.db.endpoint import DbEndpoint

    server = mysql_db.server
    endpoint = DbEndpoint(server.host, server.port, server.user, server.password, mysql_db.name)
    changed = rewrite_urls(endpoint, R)
    assert changed == 5
    rows = dict(mysql_db.query("SELECT option_name, option_value FROM wp_options"))
    assert rows["siteurl"] == NEW
    assert rows["widget"] == "a:1:{s:4:\"home\";" + php_s(NEW) + "}"
    assert rows["other"] == "untouched"
    assert json.loads(rows["json"]) == {"u": NEW}
    assert sorted(v for (v,) in mysql_db.query("SELECT v FROM nokey")) == sorted([NEW + "/a", NEW + "/a", "b"])


def test_rewrite_urls_leaves_skipped_tables_alone(mysql_db):
    """previews.replace_skip: a log table (named, or by a glob) keeps the production URL."""
    mysql_db.execute(
        "CREATE TABLE options (id INT PRIMARY KEY, value LONGTEXT)",
        "CREATE TABLE watchdog (wid INT PRIMARY KEY, location TEXT)",
        "CREATE TABLE cache_page (cid VARCHAR(64) PRIMARY KEY, data LONGTEXT)",
    )
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO options VALUES (1, %s)", (OLD,))
        cur.execute("INSERT INTO watchdog VALUES (1, %s)", (OLD + "/user/login",))
        cur.execute("INSERT INTO cache_page VALUES ('home', %s)", (OLD,))
    conn.close()
    from clonekit.db.endpoint import DbEndpoint
    from clonekit.db.target import find_replace_tables

    server = mysql_db.server
    endpoint = DbEndpoint(server.host, server.port, server.user, server.password, mysql_db.name)
    skip = ("watchdog", "cache_*")
    assert find_replace_tables(endpoint, [OLD], skip=skip) == {OLD: ["options"]}
    assert rewrite_urls(endpoint, R, skip=skip) == 1
    assert mysql_db.query("SELECT value FROM options") == [(NEW,)]
    assert mysql_db.query("SELECT location FROM watchdog") == [(OLD + "/user/login",)]
    assert mysql_db.query("SELECT data FROM cache_page") == [(OLD,)]


def test_replace_skip_is_read_from_the_config(tmp_path):
    from clonekit.config import parse_config

    raw = {"project": "shop", "sources": {"prod": {"database": {"host": "db", "name": "shop", "user": "u",
                                                               "password_env": "P"}}},
           "previews": {"replace": {OLD: "{url}"}, "replace_skip": ["watchdog", "cache_*"]}}
    config = parse_config(raw, tmp_path / "clonekit.yml")
    assert config.previews.replace_skip == ("watchdog", "cache_*")


def test_log_tables_are_left_out_by_default(tmp_path):
    """No replace_skip in the file: Drupal's and WordPress's log tables (bare or prefixed) are left
    alone; an explicit list replaces that default, and [] rewrites every table."""
    from clonekit.config import DEFAULT_REPLACE_SKIP, parse_config
    from clonekit.db.target import skipped

    raw = {"project": "shop", "sources": {"prod": {"database": {"host": "db", "name": "shop", "user": "u",
                                                               "password_env": "P"}}},
           "previews": {"replace": {OLD: "{url}"}}}
    config = parse_config(raw, tmp_path / "clonekit.yml")
    assert config.previews.replace_skip == DEFAULT_REPLACE_SKIP
    for table in ("watchdog", "d8_watchdog", "accesslog", "webform_submission_log", "wp_actionscheduler_logs",
                  "wp_woocommerce_log", "wp_wc_download_log"):
        assert skipped(table, DEFAULT_REPLACE_SKIP), table
    for table in ("node__body", "wp_options", "wp_posts", "config", "watchdog_settings"):
        assert not skipped(table, DEFAULT_REPLACE_SKIP), table
    raw["previews"]["replace_skip"] = []
    assert parse_config(raw, tmp_path / "clonekit.yml").previews.replace_skip == ()
    raw["previews"]["replace_skip"] = ["cache_*"]
    assert parse_config(raw, tmp_path / "clonekit.yml").previews.replace_skip == ("cache_*",)


def test_recorded_rows_are_rewritten_by_primary_key_and_nothing_else_is_read(mysql_db, monkeypatch):
    """find_replace_rows (materialize) lists the rows holding the URL per column; rewrite_urls given
    them touches those rows only (a row added afterwards is not read: the clone never scans)."""
    from clonekit.db import target
    from clonekit.db.endpoint import DbEndpoint
    from clonekit.db.target import find_replace_rows

    mysql_db.execute(
        "CREATE TABLE posts (id INT PRIMARY KEY, title VARCHAR(64), body LONGTEXT)",
        "CREATE TABLE meta (post INT, name VARCHAR(32), value LONGTEXT, PRIMARY KEY (post, name))",
        "CREATE TABLE nokey (v TEXT)",
    )
    serialized = "a:1:{s:4:\"home\";" + php_s(OLD) + "}"
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO posts VALUES (%s, %s, %s)",
                        [(1, "a", f"see {OLD}/a"), (2, OLD, "plain"), (3, "c", "nothing")])
        cur.executemany("INSERT INTO meta VALUES (%s, %s, %s)", [(1, "home", serialized), (1, "other", "x"), (2, "home", "y")])
        cur.execute("INSERT INTO nokey VALUES (%s)", (OLD,))
    conn.close()
    server = mysql_db.server
    endpoint = DbEndpoint(server.host, server.port, server.user, server.password, mysql_db.name)
    rows = find_replace_rows(endpoint, [OLD], ["posts", "meta", "nokey"])
    assert rows == {"posts": {"title": [[2]], "body": [[1]]}, "meta": {"value": [[1, "home"]]}, "nokey": None}

    conn = mysql_db.connect()
    with conn.cursor() as cur:  # written after the record: a clone that reads only recorded rows leaves it
        cur.execute("INSERT INTO posts VALUES (4, 'd', %s)", (OLD,))
    conn.close()
    assert rewrite_urls(endpoint, R, tables=["posts", "meta", "nokey"], rows=rows) == 4
    assert mysql_db.query("SELECT id, title, body FROM posts ORDER BY id") == [
        (1, "a", f"see {NEW}/a"), (2, NEW, "plain"), (3, "c", "nothing"), (4, "d", OLD)]
    assert mysql_db.query("SELECT value FROM meta WHERE name = 'home' AND post = 1") == [
        ("a:1:{s:4:\"home\";" + php_s(NEW) + "}",)]
    assert mysql_db.query("SELECT v FROM nokey") == [(NEW,)]  # None: scanned

    monkeypatch.setattr(target, "MAX_INDEXED_ROWS", 0)  # too many rows to list: the table is scanned
    assert find_replace_rows(endpoint, [NEW], ["posts"]) == {"posts": None}


def test_recorded_rows_get_the_bytes_rewrite_value_makes(mysql_db):
    """The rewrite of recorded rows (no LIKE at clone time: plain values in one UPDATE, values that
    may be serialized through rewrite_value) writes, value by value, what rewrite_value makes of it,
    and counts the values that changed; also when the new string contains the old one (every value
    then goes through rewrite_value)."""
    from clonekit.db.endpoint import DbEndpoint
    from clonekit.db.target import find_replace_rows

    serialized = "a:2:{s:4:\"home\";" + php_s(f"{OLD}/é") + "s:1:\"n\";" + php_s("keep") + "}"
    values = {
        1: f"<p><a href=\"{OLD}/node/2\">next</a> and {OLD}</p>",  # plain, twice
        2: serialized,  # PHP-serialized: the length is recomputed
        3: 's:99:"' + OLD + '";',  # looks serialized, is not: plain replacement (as rewrite_value does)
        4: json.dumps({"u": OLD + "/x"}).replace("/", "\\/"),  # JSON, escaped slashes
        5: OLD.upper(),  # found by the case-insensitive search, left alone by the case-sensitive rewrite
        6: "A:1:{" + OLD + "}",  # SQL's REGEXP ignores case: read, and rewrite_value replaces plainly
        7: "nothing here",
    }
    mysql_db.execute("CREATE TABLE node__body (entity_id INT, langcode VARCHAR(8), body_value LONGTEXT, "
                     "PRIMARY KEY (entity_id, langcode)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci")
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO node__body VALUES (%s, 'en', %s)", list(values.items()))
    conn.close()
    server = mysql_db.server
    endpoint = DbEndpoint(server.host, server.port, server.user, server.password, mysql_db.name)
    rows = find_replace_rows(endpoint, [OLD], ["node__body"])
    assert rows == {"node__body": {"body_value": [[i, "en"] for i in range(1, 7)]}}
    current = dict(values)
    for new in (NEW, OLD + "/preview"):  # the second: the new string contains the old one
        replacements = [Replacement(OLD, new)]
        expected = {i: rewrite_value(v, replacements) for i, v in current.items()}
        changed = rewrite_urls(endpoint, replacements, tables=["node__body"], rows=rows)
        assert changed == sum(expected[i] != current[i] for i in current)
        got = dict(mysql_db.query("SELECT entity_id, CAST(body_value AS BINARY) FROM node__body"))
        assert got == {i: v.encode() for i, v in expected.items()}
        current = expected
