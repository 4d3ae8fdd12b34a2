"""The wordpress preset on a WordPress-shaped database with a custom table prefix and a multisite
sub-site (``wpx7_2_``), in the real MariaDB."""

from __future__ import annotations

import pytest

from clonekit.errors import PolicyError
from clonekit.sanitize import build_planner
from clonekit.sanitize.passwords import check_password
from clonekit.sanitize.presets import wordpress_prefixes

from .conftest import read_rows, read_tables, sanitize_config

P = "wpx7_"
SITE = "wpx7_2_"

DDL = {
    f"{P}users": """(ID bigint unsigned NOT NULL AUTO_INCREMENT, user_login varchar(60) NOT NULL DEFAULT '',
        user_pass varchar(255) NOT NULL DEFAULT '', user_nicename varchar(50) NOT NULL DEFAULT '',
        user_email varchar(100) NOT NULL DEFAULT '', user_url varchar(100) NOT NULL DEFAULT '',
        user_registered datetime NOT NULL DEFAULT '2000-01-01 00:00:00', user_activation_key varchar(255) NOT NULL DEFAULT '',
        user_status int NOT NULL DEFAULT 0, display_name varchar(250) NOT NULL DEFAULT '',
        PRIMARY KEY (ID), UNIQUE KEY user_login_key (user_login), KEY user_nicename (user_nicename), KEY user_email (user_email))""",
    f"{P}usermeta": """(umeta_id bigint unsigned NOT NULL AUTO_INCREMENT, user_id bigint unsigned NOT NULL DEFAULT 0,
        meta_key varchar(255) DEFAULT NULL, meta_value longtext, PRIMARY KEY (umeta_id))""",
    f"{P}options": """(option_id bigint unsigned NOT NULL AUTO_INCREMENT, option_name varchar(191) NOT NULL DEFAULT '',
        option_value longtext NOT NULL, autoload varchar(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (option_id), UNIQUE KEY option_name (option_name))""",
    f"{P}posts": """(ID bigint unsigned NOT NULL AUTO_INCREMENT, post_author bigint unsigned NOT NULL DEFAULT 0,
        post_title text NOT NULL, post_password varchar(255) NOT NULL DEFAULT '', PRIMARY KEY (ID))""",
    f"{P}comments": """(comment_ID bigint unsigned NOT NULL AUTO_INCREMENT, comment_post_ID bigint unsigned NOT NULL DEFAULT 0,
        comment_author tinytext NOT NULL, comment_author_email varchar(100) NOT NULL DEFAULT '',
        comment_author_url varchar(200) NOT NULL DEFAULT '', comment_author_IP varchar(100) NOT NULL DEFAULT '',
        comment_content text NOT NULL, comment_agent varchar(255) NOT NULL DEFAULT '', user_id bigint unsigned NOT NULL DEFAULT 0,
        PRIMARY KEY (comment_ID))""",
    f"{P}sitemeta": """(meta_id bigint unsigned NOT NULL AUTO_INCREMENT, site_id bigint unsigned NOT NULL DEFAULT 0,
        meta_key varchar(255) DEFAULT NULL, meta_value longtext, PRIMARY KEY (meta_id))""",
}
DDL[f"{SITE}options"] = DDL[f"{P}options"]
DDL[f"{SITE}posts"] = DDL[f"{P}posts"]
DDL[f"{SITE}comments"] = DDL[f"{P}comments"]

PERSONAL = [
    "Ignatius Featherstonehaugh", "ifeatherstonehaugh", "ignatius@featherstone-mail.example.org", "+44 20 7946 0958",
    "4 Privet Drive Featherstone", "Chidimma Oyelaran", "chidimma.oyelaran@lagos-mail.example.org", "196.46.12.98",
    "https://chidimma-oyelaran.example.org", "webmaster@client-site.example.org", "2a02:8108:1234::beef",
    "$P$BoldHashOfARealPasswordxxxxxxxxx", "Featherstonehaugh", "Oyelaran", "0803 555 0147",
]


def seed(db) -> None:  # noqa: ANN001
    statements = [f"CREATE TABLE `{name}` {ddl} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci" for name, ddl in DDL.items()]
    db.execute(*statements)
    conn = db.connect()
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {P}users (user_login, user_pass, user_nicename, user_email, user_url, display_name) VALUES (%s,%s,%s,%s,%s,%s)",
            [
                ("ifeatherstonehaugh", "$P$BoldHashOfARealPasswordxxxxxxxxx", "ifeatherstonehaugh",
                 "ignatius@featherstone-mail.example.org", "", "Ignatius Featherstonehaugh"),
                ("staffer", "$P$BstaffHashxxxxxxxxxxxxxxxxxxxxx", "staffer", "staff@agency.example", "", "Agency Staff"),
            ],
        )
        meta = [
            (1, "first_name", "Ignatius"), (1, "last_name", "Featherstonehaugh"), (1, "nickname", "ifeatherstonehaugh"),
            (1, "billing_first_name", "Ignatius"), (1, "billing_last_name", "Featherstonehaugh"),
            (1, "billing_email", "ignatius@featherstone-mail.example.org"), (1, "billing_phone", "+44 20 7946 0958"),
            (1, "billing_address_1", "4 Privet Drive Featherstone"), (1, "billing_city", "Little Whinging"),
            (1, "billing_postcode", "SW1A 1AA"), (1, "billing_country", "GB"), (1, "shipping_phone", "0803 555 0147"),
            (1, "description", "I am Ignatius Featherstonehaugh, call me on +44 20 7946 0958"),
            (1, "wp_capabilities", 'a:1:{s:8:"customer";b:1;}'), (1, "rich_editing", "true"),
        ]
        cur.executemany(f"INSERT INTO {P}usermeta (user_id, meta_key, meta_value) VALUES (%s,%s,%s)", meta)
        for prefix in (P, SITE):
            cur.executemany(
                f"INSERT INTO {prefix}options (option_name, option_value) VALUES (%s,%s)",
                [("admin_email", "webmaster@client-site.example.org"), ("blogname", "Client Site"), ("siteurl", "https://client-site.example.org")],
            )
            cur.execute(f"INSERT INTO {prefix}posts (post_author, post_title, post_password) VALUES (1, 'Hello world', 'opensesame')")
            cur.execute(
                f"INSERT INTO {prefix}comments (comment_post_ID, comment_author, comment_author_email, comment_author_url, "
                "comment_author_IP, comment_content, comment_agent) VALUES (1, %s, %s, %s, %s, %s, 'Mozilla/5.0')",
                ("Chidimma Oyelaran", "chidimma.oyelaran@lagos-mail.example.org", "https://chidimma-oyelaran.example.org",
                 "196.46.12.98" if prefix == P else "2a02:8108:1234::beef", "Nice post! Reach me at chidimma.oyelaran@lagos-mail.example.org"),
            )
        cur.execute(f"INSERT INTO {P}sitemeta (site_id, meta_key, meta_value) VALUES (1, 'admin_email', 'webmaster@client-site.example.org')")
    conn.close()


def copy(source, target, cfg) -> dict[str, list[tuple]]:  # noqa: ANN001
    tables = read_tables(source)
    policies = build_planner(cfg).plan(tables)
    target.execute(*[f"CREATE TABLE `{name}` {ddl} DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci" for name, ddl in DDL.items()])
    conn = target.connect()
    out = {}
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES'")
        for table in tables:
            policy = policies[table.name]
            rows = read_rows(source, table)
            rows = [policy.transform(r) for r in rows] if policy.transform else rows
            out[table.name] = rows
            names = ", ".join(f"`{c.name}`" for c in table.data_columns)
            cur.executemany(f"INSERT INTO `{table.name}` ({names}) VALUES ({', '.join(['%s'] * len(table.data_columns))})", rows)
    conn.close()
    return out


def test_prefix_detection() -> None:
    names = ["wpx7_users", "wpx7_usermeta", "wpx7_options", "wpx7_posts", "wpx7_2_options", "wpx7_2_posts",
             "wpx7_13_options", "shop_options", "shop_posts", "unrelated_options"]
    assert wordpress_prefixes(names) == (["shop_", "wpx7_"], ["wpx7_13_", "wpx7_2_"])
    assert wordpress_prefixes(["wp_users", "wp_usermeta", "wp_options"]) == (["wp_"], [])


def test_wordpress_preset_custom_prefix_and_multisite(mysql_db, mysql_target_db) -> None:
    seed(mysql_db)
    cfg = sanitize_config(preset="wordpress", keep_accounts=("staff@agency.example",), dev_password="preview")
    rows = copy(mysql_db, mysql_target_db, cfg)
    dumped = "\n".join(str(v) for table_rows in rows.values() for row in table_rows for v in row).casefold()
    assert [v for v in PERSONAL if v.casefold() in dumped] == []

    users = rows[f"{P}users"]
    assert check_password("preview", users[0][2]) and users[0][2].startswith("$P$B")
    assert users[1][1:5] == ("staffer", "$P$BstaffHashxxxxxxxxxxxxxxxxxxxxx", "staffer", "staff@agency.example")  # kept
    meta = {r[2]: r[3] for r in rows[f"{P}usermeta"]}
    assert meta["billing_email"] == users[0][4]  # same person, same fake email in both tables
    assert meta["nickname"] == users[0][1]  # nickname defaults to the login: same pseudonym
    assert meta["billing_country"] == "redacted" and meta["billing_city"] == "Springfield"
    assert meta["wp_capabilities"] == 'a:1:{s:8:"customer";b:1;}' and meta["rich_editing"] == "true"
    for prefix in (P, SITE):
        options = {r[1]: r[2] for r in rows[f"{prefix}options"]}
        assert options["admin_email"].endswith("@example.com") and options["blogname"] == "Client Site"
        comment = rows[f"{prefix}comments"][0]
        assert comment[3].endswith("@example.com") and comment[7] == "Mozilla/5.0"
        assert rows[f"{prefix}posts"][0][3] == "opensesame"
    assert ":" in rows[f"{SITE}comments"][0][5]  # an IPv6 author stays IPv6, in 2001:db8::/32
    assert rows[f"{SITE}comments"][0][5].startswith("2001:db8:")


def test_an_unknown_plugin_table_is_refused_in_strict_mode(mysql_db) -> None:
    seed(mysql_db)
    mysql_db.execute(
        f"CREATE TABLE {P}edd_customers (id int PRIMARY KEY, name text, email varchar(100), phone varchar(40), "
        "billing_address text, purchase_count int)"
    )
    with pytest.raises(PolicyError) as err:
        build_planner(sanitize_config(preset="wordpress")).plan(read_tables(mysql_db))
    assert err.value.columns == [f"{P}edd_customers.{c}" for c in ("email", "phone", "billing_address")]


def test_woocommerce_and_multisite_tables_are_covered(mysql_db) -> None:
    seed(mysql_db)
    mysql_db.execute(
        f"CREATE TABLE {P}wc_order_addresses (id bigint PRIMARY KEY, order_id bigint, address_type varchar(20), first_name text, "
        "last_name text, company text, address_1 text, address_2 text, city text, state text, postcode text, country text, "
        "email varchar(320), phone varchar(100))",
        f"CREATE TABLE {SITE}wc_orders (id bigint PRIMARY KEY, billing_email varchar(320), ip_address varchar(100), "
        "user_agent text, customer_note text)",
        f"CREATE TABLE {P}registration_log (ID bigint PRIMARY KEY, email varchar(255), IP varchar(30), blog_id bigint)",
        f"CREATE TABLE {P}postmeta (meta_id bigint PRIMARY KEY, post_id bigint, meta_key varchar(255), meta_value longtext)",
        f"INSERT INTO {P}postmeta VALUES (1, 9, '_billing_email', 'buyer@shop-customer.example.org'), "
        "(2, 9, '_billing_city', 'Lyon'), (3, 9, '_customer_ip_address', '81.56.201.9'), (4, 9, '_order_total', '12.50')",
    )
    tables = read_tables(mysql_db)
    policies = build_planner(sanitize_config(preset="wordpress")).plan(tables)  # strict: nothing uncovered
    postmeta = next(t for t in tables if t.name == f"{P}postmeta")
    out = {r[2]: r[3] for r in (policies[postmeta.name].transform(row) for row in read_rows(mysql_db, postmeta))}
    assert out["_billing_email"].endswith("@example.com") and out["_billing_city"] == "Springfield"
    assert out["_customer_ip_address"].startswith(("192.0.2.", "198.51.100.", "203.0.113.")) and out["_order_total"] == "12.50"
