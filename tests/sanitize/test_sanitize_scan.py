"""scan on the real MariaDB: an uncovered table of personal data is found by its values even when
its column names say nothing; the suggested YAML covers it."""

from __future__ import annotations

import yaml

from clonekit.sanitize import build_planner, scan, suggest_rules
from clonekit.schema import Table

from .conftest import read_rows, read_tables, sanitize_config

CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000000000004"]
IBANS = ["DE89 3704 0044 0532 0130 00", "FR1420041010050500013M02606", "GB82WEST12345698765432", "NL91ABNA0417164300"]


def seed_leads(db) -> None:  # noqa: ANN001
    db.execute(
        "CREATE TABLE crm_leads (id int PRIMARY KEY, col_a varchar(200), col_b varchar(60), col_c varchar(64), "
        "col_d varchar(40), col_e varchar(80), col_f text, col_g varchar(40), created datetime)"
    )
    rows = []
    for i in range(40):
        rows.append((
            i,
            f"lead{i}@prospects-{i % 5}.example.net",
            [f"+33 6 12 34 56 7{i % 10}", f"(415) 555-01{i:02d}", f"0612 345 6{i:02d}"][i % 3],
            IBANS[i % 4],
            CARDS[i % 4],
            ["Thaddeus Wolfeschlegel", "Mary Smith", "John Miller", "Patricia Johnson"][i % 4],
            f"Lead {i} wrote: please call me back, my mail is lead{i}@prospects.example.net",
            f"81.56.201.{i}",
            "2024-01-01 10:00:00",
        ))
    conn = db.connect()
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO crm_leads VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
        cur.execute("CREATE TABLE product (id int PRIMARY KEY, sku varchar(20), title varchar(100), price decimal(8,2), stock int)")
        cur.executemany("INSERT INTO product VALUES (%s,%s,%s,%s,%s)",
                        [(i, f"SKU-{i:05d}", f"Blue widget model {i}", 9.99 + i, 1_700_000_000 + i) for i in range(40)])
    conn.close()


def scan_partial(db) -> str:  # noqa: ANN001
    cfg = sanitize_config(preset="drupal", tables={"crm_leads": {"columns": {"col_a": {"when": "id < 5", "use": "email"}}}})
    report = scan(read_tables(db), sampler(db), cfg)
    return next(f.rule for f in report.findings if (f.table, f.column) == ("crm_leads", "col_a"))


def sampler(db):  # noqa: ANN001, ANN201
    def sample(table: Table, limit: int) -> list[tuple]:
        return read_rows(db, table, limit=limit)

    return sample


def test_scan_finds_uncovered_personal_values(drupal_db) -> None:
    seed_leads(drupal_db)
    tables = read_tables(drupal_db)
    cfg = sanitize_config(preset="drupal")
    report = scan(tables, sampler(drupal_db), cfg)
    found = {(f.table, f.column): f for f in report.findings}
    leads = {col: found[("crm_leads", col)] for table, col in found if table == "crm_leads"}
    assert set(leads) == {"col_a", "col_b", "col_c", "col_d", "col_e", "col_f", "col_g"}
    assert leads["col_a"].kinds[0] == "email" and "values: email" in leads["col_a"].reason
    assert leads["col_b"].kinds == ("phone",)
    assert "iban" in leads["col_c"].kinds
    assert "card" in leads["col_d"].kinds
    assert "person name" in leads["col_e"].kinds
    assert "email" in leads["col_f"].kinds
    assert leads["col_g"].kinds == ("ip",)
    assert all(f.rule is None for f in leads.values())
    assert not any(t == "product" for t, _ in found)
    assert found[("config", "data")].kinds == ("email",)  # the site's address, covered by the preset
    assert found[("config", "data")].rule.startswith("php(keys, values)")
    assert {f.table for f in report.uncovered} == {"crm_leads"}  # the fixture itself is fully covered  # SKUs, prices, timestamps: nothing personal
    # the preset's columns are reported with the rule that covers them
    assert found[("users_field_data", "mail")].rule == "email (preset drupal)"
    assert found[("sessions", "hostname")].rule.startswith("rows: none")
    assert found[("comment_field_data", "hostname")].rule == "ip (preset drupal)"
    # a column covered only for some rows says so
    assert found[("webform_submission_data", "value")].rule.endswith("(preset drupal)")
    assert scan_partial(drupal_db).endswith("; other rows as they are)")
    text = repr(report) + str(report.as_dict())
    assert "lead1@" not in text and "Wolfeschlegel" not in text and "4111" not in text  # no values in the report


def test_suggested_rules_cover_what_scan_found(drupal_db) -> None:
    seed_leads(drupal_db)
    tables = read_tables(drupal_db)
    report = scan(tables, sampler(drupal_db), sanitize_config(preset="drupal"))
    suggested = yaml.safe_load(suggest_rules(report))
    assert suggested == {"crm_leads": {"columns": {
        "col_a": "email", "col_b": "phone", "col_c": "redact", "col_d": "redact", "col_e": "name", "col_f": "scrub", "col_g": "ip",
    }}}
    cfg = sanitize_config(preset="drupal", tables=suggested)
    assert scan(tables, sampler(drupal_db), cfg).uncovered == ()
    policy = build_planner(cfg).plan(tables)["crm_leads"]
    leads = next(t for t in tables if t.name == "crm_leads")
    out = "\n".join(str(v) for row in read_rows(drupal_db, leads) for v in policy.transform(row))
    assert "prospects" not in out and "4111" not in out and "DE89" not in out and "81.56.201." not in out
    assert suggest_rules(scan(tables, sampler(drupal_db), cfg)).startswith("# every column")


def test_scan_through_the_db_layer(drupal_db) -> None:
    """The same finding with the db layer's own describe_tables and sample_rows (what `clonekit scan` uses)."""
    from clonekit.db import DbEndpoint, describe_tables, sample_rows

    seed_leads(drupal_db)
    s = drupal_db.server
    endpoint = DbEndpoint(host=s.host, port=s.port, user=s.user, password=s.password, database=drupal_db.name)
    report = scan(describe_tables(endpoint), lambda t, n: sample_rows(endpoint, t, n), sanitize_config(preset="drupal"))
    assert {(f.table, f.column) for f in report.uncovered} == {("crm_leads", c) for c in ("col_a", "col_b", "col_c", "col_d", "col_e", "col_f", "col_g")}

