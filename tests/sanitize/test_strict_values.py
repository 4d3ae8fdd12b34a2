"""Strict mode reads values, scan says what it cannot read, --suggest rests on values and types,
and `verify --leaks` finds a planted leak: on the real MariaDB, through the CLI.

The source is a WordPress-like database with what a production grows beside the preset's tables:
a plugin table whose neutrally named column `contact` holds subscribers' e-mail addresses, a
page cache of compressed blobs, a login log with IP addresses as VARBINARY(16) and as hex text,
MediaWiki-like BINARY(14) timestamp columns whose names say e-mail and password, storage
addresses (`tt:123`) in a column named like an address, and French/Breton real names.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
import yaml
from support import run_cli as run

from clonekit.errors import PolicyError
from clonekit.sanitize import build_planner, scan, suggest_rules
from clonekit.schema import Table

from .conftest import read_rows, read_tables, sanitize_config

EMAILS = [f"subscriber{i}@lettres-{i % 7}.example.org" for i in range(60)]
NAMES = ["Erwan Le Gall", "Sandrine Riou", "Yannick Le Bihan", "Maëlle Kerboul", "Gwenaël Tanguy", "Katell Morvan",
         "Loïc Le Floch", "Nolwenn Guivarc'h"]
SECRET = "strict-values-secret"


def seed(db) -> None:  # noqa: ANN001
    db.execute(
        "CREATE TABLE wp_options (option_id bigint PRIMARY KEY, option_name varchar(191), option_value longtext, autoload varchar(20))",
        "INSERT INTO wp_options VALUES (1, 'blogname', 'Le blog', 'yes'), (2, 'admin_email', 'webmaster@agency.example', 'yes')",
        "CREATE TABLE wp_posts (ID bigint PRIMARY KEY, post_title text, post_content longtext, post_password varchar(255))",
        "INSERT INTO wp_posts VALUES (1, 'Hello world!', 'Welcome to WordPress.', ''), (2, 'Sample Page', 'A page.', '')",
        "CREATE TABLE wp_newsletter_subscribers (id int PRIMARY KEY, contact varchar(190), status varchar(20), created datetime)",
        "CREATE TABLE wp_page_cache (id int PRIMARY KEY, url_hash char(32), data longblob)",
        "CREATE TABLE wp_login_log (id int PRIMARY KEY, addr varbinary(16), addr_hex varchar(35), at datetime, seen_from inet6)",
        "CREATE TABLE wiki_user (user_id int PRIMARY KEY, user_real_name varchar(255), "
        "user_email_authenticated binary(14), user_password_expires varbinary(14))",
        "CREATE TABLE wiki_content (content_id int PRIMARY KEY, content_address varbinary(255), content_size int)",
    )
    conn = db.connect()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO wp_newsletter_subscribers VALUES (%s, %s, 'active', '2025-01-01 10:00:00')",
                        list(enumerate(EMAILS)))
        page = ("<html><body>Thanks Sandrine Riou, we will write to " + EMAILS[0] + "</body></html>").encode() * 20
        cur.executemany("INSERT INTO wp_page_cache VALUES (%s, %s, %s)",
                        [(i, f"{i:032x}", zlib.compress(page)) for i in range(12)])
        cur.executemany("INSERT INTO wp_login_log VALUES (%s, INET6_ATON(%s), %s, '2025-01-01 10:00:00', %s)",
                        [(i, f"81.56.{i}.7" if i % 2 else f"2a01:e0a:{i}::7", f"5138{i:02X}07", f"2a01:e0a:{i}::8")
                         for i in range(30)])
        cur.executemany("INSERT INTO wiki_user VALUES (%s, %s, %s, %s)",
                        [(i, NAMES[i % len(NAMES)], "20240101120000", "20250101120000") for i in range(40)])
        cur.executemany("INSERT INTO wiki_content VALUES (%s, %s, 120)", [(i, f"tt:{i}") for i in range(40)])
    conn.close()


def sampler(db, calls: list[str] | None = None):  # noqa: ANN001, ANN201
    def sample(table: Table, limit: int) -> list[tuple]:
        if calls is not None:
            calls.append(table.name)
        return read_rows(db, table, limit=limit)

    return sample


def config(tmp_path: Path, db, *, strict: bool = True, tables: str = "") -> Path:  # noqa: ANN001
    server = db.server
    path = tmp_path / "clonekit.yml"
    path.write_text(f"""
project: strict
sources:
  prod:
    database: {{host: {server.host}, port: {server.port}, name: {db.name}, user: {server.user}, password_env: CK_DB_PW}}
sanitize:
  preset: wordpress
  secret_env: CK_SECRET
  strict: {'true' if strict else 'false'}
  tables:
{tables or '    {}'}
""")
    return path


@pytest.fixture
def source(mysql_db, monkeypatch):  # noqa: ANN001, ANN201
    seed(mysql_db)
    monkeypatch.setenv("CK_DB_PW", mysql_db.server.password)
    monkeypatch.setenv("CK_SECRET", SECRET)
    return mysql_db


def chunk_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / ".clonekit" / "store" / "chunks").rglob("*") if p.is_file()] \
        if (tmp_path / ".clonekit" / "store" / "chunks").exists() else []


def test_scan_reads_values_types_and_what_it_cannot_read(source) -> None:
    tables = read_tables(source)
    report = scan(tables, sampler(source), sanitize_config(preset="wordpress"))
    found = {f.where: f for f in report.findings}
    assert found["wp_newsletter_subscribers.contact"].value_kinds == ("email",)  # a neutral name, e-mail values
    assert found["wp_newsletter_subscribers.contact"].rule is None
    assert "cannot inspect (compressed values)" in found["wp_page_cache.data"].reason
    assert found["wp_page_cache.*"].reason.startswith("looks like a cache")
    assert found["wp_login_log.addr"].value_kinds == ("ip",)  # VARBINARY(16) from INET6_ATON
    assert found["wp_login_log.addr_hex"].value_kinds == ("ip",)  # MediaWiki-style hex text
    assert found["wp_login_log.seen_from"].reason == "column type inet6: ip"  # the type says it
    real = found["wiki_user.user_real_name"]
    assert real.name_kind == "person name" and "person name" in real.value_kinds  # Breton names recognised
    assert found["wiki_user.user_email_authenticated"].name_confirmed is False  # timestamps, not addresses
    assert found["wiki_content.content_address"].name_confirmed is False  # "tt:1" is no postal address
    assert report.queries <= len(tables)  # one bounded query per table at most
    text = repr(report) + str(report.as_dict())
    assert "subscriber1@" not in text and "Riou" not in text  # no value in the report


def test_suggestions_rest_on_values_and_types_and_paste_plainly(source) -> None:
    tables = read_tables(source)
    report = scan(tables, sampler(source), sanitize_config(preset="wordpress"))
    text = suggest_rules(report)
    assert "&id" not in text and "*id" not in text
    suggested = yaml.safe_load(text)
    assert suggested["wp_newsletter_subscribers"]["columns"]["contact"] == "email"
    assert suggested["wp_page_cache"] == {"rows": "none"}
    assert suggested["wp_login_log"]["columns"] == {"addr": "ip", "addr_hex": "ip", "seen_from": {"set": "2001:db8::1"}}
    wiki = suggested["wiki_user"]["columns"]
    assert wiki["user_real_name"] == "name"
    assert wiki["user_email_authenticated"] == "keep" and wiki["user_password_expires"] == "keep"
    assert suggested["wiki_content"]["columns"]["content_address"] == "keep"
    assert "none of the 40 values seen is one" in text  # the comment says why a named column is kept
    # pasted as is, the rules cover everything and the snapshot's rows carry no address
    cfg = sanitize_config(preset="wordpress", strict=True, tables=suggested)
    policies = build_planner(cfg).plan(tables, sampler(source))
    subscribers = next(t for t in tables if t.name == "wp_newsletter_subscribers")
    out = repr([policies[subscribers.name].transform(r) for r in read_rows(source, subscribers)])
    assert "lettres-" not in out


def test_strict_plan_samples_once_per_table_and_only_what_no_rule_covers(source) -> None:
    tables = read_tables(source)
    calls: list[str] = []
    cfg = sanitize_config(preset="wordpress", strict=True, tables={
        "wp_newsletter_subscribers": {"columns": {"contact": "email"}},
        "wp_page_cache": {"rows": "none"},
        "wp_login_log": {"columns": {"addr": "ip", "addr_hex": "ip", "seen_from": {"set": "2001:db8::1"}}},
        "wiki_user": {"columns": {"user_real_name": "name", "user_email_authenticated": "keep",
                                  "user_password_expires": "keep"}},
        "wiki_content": {"columns": {"content_address": "keep"}},
    })
    build_planner(cfg).plan(tables, sampler(source, calls))
    assert len(calls) == len(set(calls))  # never two queries for one table
    # tables whose every text column a rule covers are not read at all
    # option_name, post_title, status: text no rule covers, so sampled; the rest is not read
    assert set(calls) == {"wp_options", "wp_posts", "wp_newsletter_subscribers"}
    # a cache kept on purpose: naming the table covers its blobs too
    kept = sanitize_config(preset="wordpress", strict=True, tables={**cfg.tables, "wp_page_cache": {"rows": "all"}})
    assert build_planner(kept).plan(tables, sampler(source))["wp_page_cache"].rows == "all"
    unnamed = sanitize_config(preset="wordpress", strict=True,
                              tables={k: v for k, v in cfg.tables.items() if k != "wp_page_cache"})
    with pytest.raises(PolicyError) as refused:
        build_planner(unnamed).plan(tables, sampler(source))
    assert refused.value.columns == ["wp_page_cache.*", "wp_page_cache.data"]


def test_strict_snapshot_stops_before_the_first_row_then_leaks_harness(source, tmp_path: Path, capsys) -> None:
    path = config(tmp_path, source)
    code, out, err = run(["-c", str(path), "snapshot", "prod"], capsys)
    assert code == 3, err
    assert "wp_newsletter_subscribers.contact (values: email)" in err
    assert "wp_page_cache.*" in err and "wp_login_log.addr" in err
    assert "Traceback" not in err and "subscriber1@" not in err
    assert chunk_files(tmp_path) == []  # refused before any row was copied: nothing stored

    values = tmp_path / "known.txt"
    values.write_text("\n".join([*EMAILS[:5], "Sandrine Riou", "81.56.1.7", "xx"]) + "\n")

    # the rules scan suggests, pasted: the snapshot goes through and nothing known is left
    code, suggestion, err = run(["-c", str(path), "scan", "prod", "--suggest"], capsys)
    assert code == 3
    pasted = "\n".join("    " + line for line in suggestion.splitlines())
    path = config(tmp_path, source, tables=pasted)
    code, out, err = run(["-c", str(path), "snapshot", "prod"], capsys)
    assert code == 0, err
    code, out, err = run(["-c", str(path), "verify", "latest", "--leaks", str(values)], capsys)
    assert code == 0, out + err
    assert "no known value found" in out and "line 8" in out  # "xx" is too short to search: said so

    # a planted leak: the same source without strict mode and without rules
    path = config(tmp_path, source, strict=False)
    (tmp_path / "clonekit.yml").write_text(path.read_text().replace("preset: wordpress", "preset: none"))
    code, out, err = run(["-c", str(path), "snapshot", "prod"], capsys)
    assert code == 0, err
    code, out, err = run(["-c", str(path), "verify", "latest", "--leaks", str(values)], capsys)
    assert code == 1
    assert "LEAK line 1 of known.txt: table wp_newsletter_subscribers.contact row 1" in out
    assert "LEAK line 6 of known.txt: table wiki_user.user_real_name rows 2, 10, 18, 26, 34" in out
    assert "LEAK line 7 of known.txt: table wp_login_log.addr_hex" not in out  # stored as hex: not this text
    assert "subscriber0@" not in out + err and "Riou" not in out + err  # places, never values
    code, out, _ = run(["-c", str(path), "--json", "verify", "latest", "--leaks", str(values)], capsys)
    import json

    leaks = json.loads(out)["leaks"]
    assert not leaks["ok"] and {hit["line"] for hit in leaks["leaks"]} == {1, 2, 3, 4, 5, 6}


def test_leaks_file_errors_are_usage_errors(source, tmp_path: Path, capsys) -> None:
    path = config(tmp_path, source, strict=False)
    assert run(["-c", str(path), "snapshot", "prod"], capsys)[0] == 0
    code, _, err = run(["-c", str(path), "verify", "latest", "--leaks", str(tmp_path / "missing.txt")], capsys)
    assert code == 2 and "missing.txt" in err and "Traceback" not in err
    (tmp_path / "empty.txt").write_text("\n\n")
    code, _, err = run(["-c", str(path), "verify", "latest", "--leaks", str(tmp_path / "empty.txt")], capsys)
    assert code == 2 and "no value to search" in err


def test_drupal_search_indexes_travel_empty_and_do_not_stop_strict_mode(mysql_db) -> None:
    """Drupal core search and Search API's database backend copy every page's text: the drupal
    preset names them (no rows), so strict mode covers them instead of stopping every Drupal site."""
    mysql_db.execute(
        "CREATE TABLE search_index (word varchar(50), sid int, langcode varchar(12), type varchar(64), score float, "
        "PRIMARY KEY (word, sid, langcode, type))",
        "INSERT INTO search_index VALUES ('riou', 1, 'fr', 'node_search', 1), ('sandrine', 1, 'fr', 'node_search', 1)",
        "CREATE TABLE search_dataset (sid int, langcode varchar(12), type varchar(64), data longtext, reindex int, "
        "PRIMARY KEY (sid, langcode, type))",
        "INSERT INTO search_dataset VALUES (1, 'fr', 'node_search', 'Merci Sandrine Riou sandrine.riou@example.fr', 0)",
        "CREATE TABLE search_total (word varchar(50) PRIMARY KEY, count float)",
        "INSERT INTO search_total VALUES ('riou', 1)",
        "CREATE TABLE search_api_db_content_text (item_id varchar(150), field_name varchar(191), word varchar(50), "
        "score int, PRIMARY KEY (item_id, field_name, word))",
        "INSERT INTO search_api_db_content_text VALUES ('entity:node/1:fr', 'body', 'riou', 1000)",
    )
    tables = read_tables(mysql_db)
    report = scan(tables, sampler(mysql_db), sanitize_config(preset="drupal"))
    assert {f.table for f in report.uncovered} == set()
    plan = build_planner(sanitize_config(preset="drupal", strict=True)).plan(tables, sampler(mysql_db))
    assert all(plan[name].rows == "none" for name in ("search_index", "search_dataset", "search_total",
                                                      "search_api_db_content_text"))
