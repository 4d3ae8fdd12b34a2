"""Sanitization rules: shapes checked at config load, compiled against the live schema later."""

from __future__ import annotations

from typing import Any


def check_table_rules(tables: dict[str, Any], key: str) -> list[str]:
    """Shape-check the ``sanitize.tables`` mapping; returns one message per problem."""
    problems: list[str] = []
    for pattern, rule in tables.items():
        if not isinstance(rule, dict):
            problems.append(f"{key}.{pattern}: expected a mapping with columns and/or rows")
    return problems
