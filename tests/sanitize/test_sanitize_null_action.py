"""`column: null` in YAML (Python None) is the `null` action, as users write it."""

from __future__ import annotations

import pytest

from clonekit.config import load_config
from clonekit.sanitize import build_planner
from clonekit.sanitize.rules import check_table_rules, parse_table_rules
from clonekit.schema import Column, Table

from .conftest import SECRET_ENV


@pytest.mark.parametrize("spelling", ["null", "~", "", "{use: null}", "[{when: \"kind = 'x'\", use: null}, keep]"])
def test_yaml_null_is_the_null_action(tmp_path, spelling: str) -> None:  # noqa: ANN001
    path = tmp_path / "clonekit.yml"
    path.write_text(
        "project: news\nsources:\n  prod:\n    database: {name: drupal}\n"
        f"sanitize:\n  secret_env: {SECRET_ENV}\n  tables:\n    users:\n      columns:\n"
        f"        user_email_token: {spelling}\n"
    )
    cfg = load_config(path)  # no "got None" problem any more
    (rule,) = parse_table_rules(cfg.sanitize.tables)
    assert rule.columns["user_email_token"][0].action.name == "null"
    table = Table("users", (Column("id", "int", "int(11)", nullable=False, unique=True),
                            Column("kind", "varchar", "varchar(10)", max_chars=10),
                            Column("user_email_token", "varbinary", "varbinary(32)", binary=True)), primary_key=("id",))
    policy = build_planner(cfg.sanitize).plan([table])["users"]
    assert policy.transform is not None
    assert policy.transform((1, "x", b"0123456789abcdef"))[2] is None


def test_null_next_to_other_actions_in_a_mapping() -> None:
    assert check_table_rules({"users": {"columns": {"a": None, "b": "email", "c": {"null": None}}}}, "sanitize.tables") == []
