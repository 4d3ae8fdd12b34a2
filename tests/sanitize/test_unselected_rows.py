"""Rows that no rule applies to (no `when` selects them, or only NULLs under rules that skip
NULL) come back from the transform as the very same tuple: the capture then writes the line the
server rendered, without splitting it again or encoding a field."""

from __future__ import annotations

from clonekit.sanitize import build_planner

from .conftest import WP_USERMETA, sanitize_config


def test_a_row_no_when_selects_is_returned_as_it_is() -> None:
    cfg = sanitize_config(preset="none", strict=False, tables={"wp_usermeta": {"columns": {"meta_value": [
        {"when": "meta_key = 'billing_phone'", "use": "phone"},
        {"when": "meta_key LIKE 'billing_%'", "use": "redact"},
    ]}}})
    transform = build_planner(cfg).plan([WP_USERMETA])["wp_usermeta"].transform
    assert transform is not None
    untouched = (1, 2, "rich_editing", "true")
    assert transform(untouched) is untouched
    null_value = (2, 2, "billing_city", None)  # redact skips NULL
    assert transform(null_value) is null_value
    selected = transform((3, 2, "billing_phone", "+33 6 12 34 56 78"))
    assert selected[:3] == (3, 2, "billing_phone") and selected[3] != "+33 6 12 34 56 78"
    assert transform((4, 2, "billing_city", "Lyon"))[3] == "redacted"
