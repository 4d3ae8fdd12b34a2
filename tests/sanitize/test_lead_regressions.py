"""Regressions found by the WordPress end-to-end leak test."""

from __future__ import annotations

import pytest

from clonekit.config import SanitizeConfig
from clonekit.sanitize.detect import iter_phones
from clonekit.sanitize.rules import check_table_rules


@pytest.mark.parametrize(
    "text, phone",
    [("call (04549) 24780.", "(04549) 24780"), ("or 0590529992.", "0590529992"), ("(05699) 761680", "(05699) 761680")],
)
def test_phone_formats_found_in_free_text(text: str, phone: str) -> None:
    assert [m.group() for m in iter_phones(text)] == [phone]


@pytest.mark.parametrize("text", ["version 1.2.3", "on 2024-06-05 14:09", "id 12345", "ip 192.168.1.10"])
def test_not_phones(text: str) -> None:
    assert list(iter_phones(text)) == []


def test_when_use_with_nested_php_keys_parses() -> None:
    tables = {"wp_usermeta": {"columns": {"meta_value": [
        {"when": "meta_value LIKE 'a:%'", "use": {"php": {"keys": {"*mail*": "email"}, "values": "scrub"}}},
    ]}}}
    assert check_table_rules(tables, "sanitize.tables") == []


def test_serialized_usermeta_of_unknown_keys_is_sanitized() -> None:
    from clonekit.sanitize import build_planner
    from clonekit.schema import Column, Table

    from .conftest import WP_USERMETA as table
    users = Table("wp_users", (Column("ID", "bigint", "bigint(20)", unique=True), Column("user_login", "varchar", "varchar(60)"),
                               Column("user_email", "varchar", "varchar(100)"), Column("user_pass", "varchar", "varchar(255)"),
                               Column("display_name", "varchar", "varchar(250)"), Column("user_nicename", "varchar", "varchar(50)"),
                               Column("user_url", "varchar", "varchar(100)"), Column("user_activation_key", "varchar", "varchar(255)")),
                  primary_key=("ID",))
    planner = build_planner(SanitizeConfig(preset="wordpress", strict=False))
    policy = planner.plan([table, users])["wp_usermeta"]
    raw = 'a:3:{s:4:"name";s:13:"Aimé Peltier";s:5:"email";s:22:"aime.peltier@orange.fr";s:5:"phone";s:14:"04 32 01 69 97";}'
    out = policy.transform((1, 2, "emergency_contact", raw))[3]
    assert out.startswith("a:3:{") and "Peltier" not in out and "orange.fr" not in out and "04 32 01 69 97" not in out
