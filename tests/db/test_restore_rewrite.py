"""previews.replace applied while the rows stream into the cold restore (``StreamRewrite``): the
same database as a plain restore followed by ``rewrite_urls``, against the real MariaDB."""

from __future__ import annotations

import json

import pytest

from clonekit.db import capture_database, restore_database
from clonekit.db.codec import escape
from clonekit.db.rewrite import Replacement, StreamRewrite, rewrite_value
from clonekit.db.target import rewrite_urls
from clonekit.errors import PreviewError
from clonekit.schema import CopyEverything

OLD, NEW = "https://www.example.net", "https://feature-x.previews.example.dev"
R = [Replacement(OLD, NEW)]


def php_s(text: str) -> str:
    return f's:{len(text.encode())}:"{text}";'


TRICKY = [
    f"see {OLD}/about",
    "a:2:{s:4:\"home\";" + php_s(f"{OLD}/é") + "i:0;" + php_s("keep") + "}",
    "a:1:{i:0;" + php_s("a:1:{i:0;" + php_s(OLD) + "}") + "}",  # a serialized string inside one
    's:99:"' + OLD + '";',  # broken serialized: plain replacement
    json.dumps({"url": OLD + "/x", "t": "tab\there"}).replace("/", "\\/"),
    f"tab\t{OLD}\nnewline \\ backslash {OLD}\\N",
    f"{OLD}{OLD}",
    "nothing to change",
    "HTTPS://WWW.EXAMPLE.NET in capitals: REPLACE is case-sensitive, so is the stream",
]


def test_a_chunk_without_the_url_passes_untouched() -> None:
    rewrite = StreamRewrite(R)
    chunk = b"1\tplain\t\\N\n2\tother\tx\n"
    out, changed = rewrite.chunk(chunk, frozenset({1, 2}))
    assert out is chunk and changed == 0 == rewrite.changed


def test_each_text_field_gets_rewrite_value_and_other_fields_stay() -> None:
    rewrite = StreamRewrite(R)
    rows = [[str(i).encode(), escape(v.encode()), escape(v.encode()), b"\\N"] for i, v in enumerate(TRICKY)]
    chunk = b"".join(b"\t".join(row) + b"\n" for row in rows)
    out, changed = rewrite.chunk(chunk, frozenset({1, 3}))  # field 2 is not a text column (a blob, say)
    lines = out.split(b"\n")
    assert lines[-1] == b""
    for value, line in zip(TRICKY, lines[:-1], strict=True):
        _key, text, blob, null = line.split(b"\t")
        assert text == escape(rewrite_value(value, R).encode())
        assert blob == escape(value.encode()) and null == b"\\N"
    assert changed == rewrite.changed == sum(rewrite_value(v, R) != v for v in TRICKY)


def test_stream_rewrite_restores_what_rewrite_urls_makes(mysql_db, mysql_target_db, source, target, repo) -> None:
    mysql_db.execute(
        "CREATE TABLE wp_posts (ID int PRIMARY KEY, post_content longtext, guid varchar(255), "
        "raw blob, l1 varchar(200) CHARACTER SET latin1, js json, n int)",
        "CREATE TABLE nokey (v text, c char(60))",
        "CREATE TABLE watchdog (wid int PRIMARY KEY, message text)",
        "CREATE TABLE numbers (id int PRIMARY KEY, v int)",
    )
    conn = mysql_db.connect()
    with conn.cursor() as cur:
        for i, value in enumerate(TRICKY * 30):
            cur.execute("INSERT INTO wp_posts VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (i, value, f"{OLD}/?p={i}", value.encode(), f"café {OLD}", json.dumps({"u": OLD}), i))
            cur.execute("INSERT INTO nokey VALUES (%s, %s)", (value, f"{OLD}/{i % 3}"))
            cur.execute("INSERT INTO watchdog VALUES (%s, %s)", (i, f"visited {OLD}/x"))
        cur.execute("INSERT INTO numbers SELECT seq, seq FROM seq_1_to_100")
    conn.close()
    with repo.writer() as writer:
        section = capture_database(source, CopyEverything(), writer)

    def contents() -> dict[str, list[tuple]]:
        return {t: mysql_target_db.query(f"SELECT * FROM `{t}` ORDER BY 1, 2")
                for t in ("wp_posts", "nokey", "watchdog", "numbers")}

    restore_database(repo, section, target)
    expected_changes = rewrite_urls(target, R, skip=["watchdog"])
    expected = contents()
    mysql_target_db.execute(*(f"DROP TABLE `{t}`" for t in ("wp_posts", "nokey", "watchdog", "numbers")))

    stats = restore_database(repo, section, target, replacements=R, replace_skip=["watchdog"])
    assert contents() == expected
    assert expected["watchdog"][0][1] == f"visited {OLD}/x"  # skipped: untouched
    assert NEW in expected["wp_posts"][1][2] and OLD.encode() in expected["wp_posts"][1][3]  # text yes, blob no
    # rewrite_urls counts changed rows of keyed tables and values of the others; the stream counts values.
    assert stats.rewritten >= expected_changes > 0


def test_a_rewritten_value_too_long_for_its_column_is_named(mysql_db, mysql_target_db, source, target, repo) -> None:
    mysql_db.execute("CREATE TABLE links (id int PRIMARY KEY, url varchar(30))",
                     f"INSERT INTO links VALUES (1, '{OLD}/a'), (2, 'short')")
    with repo.writer() as writer:
        section = capture_database(source, CopyEverything(), writer)
    with pytest.raises(PreviewError, match="links: a value previews.replace rewrote no longer fits") as caught:
        restore_database(repo, section, target, replacements=R)
    assert "previews.replace_skip" in (caught.value.hint or "")
