"""``TablePolicy.reads``: the capture decodes only the columns a table's transform reads or writes.

The planner must name every column its transform touches (ruled columns, the columns of `when`
conditions, staff account columns): a column it leaves out reaches the transform as raw bytes.
Checked on every table of the seeded Drupal fixture: the transform gives the same result when
each undeclared column holds an opaque object instead of its value, and passes that object on.
"""

from __future__ import annotations

from clonekit.sanitize import build_planner
from tests.fixtures.drupal_fixture import STAFF

from .conftest import read_rows, read_tables, sanitize_config


class _Opaque:
    """What an undecoded column holds: anything the transform reads of it would differ."""


def test_the_transform_touches_only_the_columns_it_declares(drupal_db) -> None:  # noqa: ANN001
    tables = read_tables(drupal_db)
    cfg = sanitize_config(preset="drupal", keep_accounts=(STAFF.email,))
    policies = build_planner(cfg).plan(tables)
    checked = 0
    for table in tables:
        policy = policies[table.name]
        if policy.transform is None:
            continue
        assert policy.reads is not None, table.name
        columns = [c.name.lower() for c in table.data_columns]
        assert policy.reads <= set(columns), table.name
        hidden = [i for i, name in enumerate(columns) if name not in policy.reads]
        reference = build_planner(cfg).plan(tables)[table.name].transform  # its own caches
        assert reference is not None
        for row in read_rows(drupal_db, table):
            opaque = [_Opaque() for _ in hidden]
            masked = list(row)
            for i, marker in zip(hidden, opaque, strict=True):
                masked[i] = marker
            out = policy.transform(tuple(masked))
            expected = reference(row)
            for i, value in enumerate(out):
                if i in hidden:
                    assert value is masked[i], f"{table.name}.{columns[i]} was changed but not declared"
                else:
                    assert value == expected[i], f"{table.name}.{columns[i]} differs when others are undecoded"
            checked += 1
    assert checked > 20


def test_when_and_staff_columns_are_declared(drupal_db) -> None:  # noqa: ANN001
    tables = read_tables(drupal_db)
    policies = build_planner(sanitize_config(preset="drupal", keep_accounts=(STAFF.email,))).plan(tables)
    assert {"name", "property", "value"} <= policies["webform_submission_data"].reads  # type: ignore[operator]
    assert {"name", "mail"} <= policies["users_field_data"].reads  # type: ignore[operator]
    without_staff = build_planner(sanitize_config(preset="drupal")).plan(tables)
    assert "timezone" not in without_staff["users_field_data"].reads  # type: ignore[operator]
