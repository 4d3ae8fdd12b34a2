"""What the database layer tells the sanitizer about a table, and what it gets back.

The contract between ``clonekit.db`` (reads rows) and ``clonekit.sanitize`` (transforms them):
the db layer describes every table as a ``Table``; a ``PolicyPlanner`` returns one
``TablePolicy`` per table before the first row is read; the db layer applies it in the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # lower-case base type: varchar, longtext, int, blob, json, datetime...
    column_type: str  # full type as the server reports it: varchar(255), int(10) unsigned...
    nullable: bool = True
    max_chars: int | None = None  # CHARACTER_MAXIMUM_LENGTH for character types
    generated: bool = False  # generated columns are never dumped as data
    binary: bool = False  # values arrive as bytes (BLOB, BINARY, VARBINARY, BIT, spatial)
    unique: bool = False  # part of a PRIMARY or UNIQUE key of one column


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()
    rows_estimate: int = 0
    data_bytes: int = 0

    @property
    def data_columns(self) -> tuple[Column, ...]:
        """Columns whose values are dumped: every column but generated ones, in table order."""
        return tuple(c for c in self.columns if not c.generated)

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name.lower() == name.lower():
                return c
        return None


# A transform receives one row of ``Table.data_columns`` values, typed as pymysql returns them
# (str for text, bytes for binary, int, Decimal, datetime, None...) and returns the new row.
RowTransform = Callable[[Row], Row]


@dataclass(frozen=True)
class TablePolicy:
    rows: Literal["all", "none"] = "all"
    where: str | None = None  # SQL condition: only these rows are copied
    transform: RowTransform | None = None  # None: rows are copied as they are (fast path)
    rule: str = ""  # human description for logs and the manifest (no values)
    # The data columns (names, lower case) the transform reads or writes; None: any. The capture
    # decodes only these: the others reach the transform as their raw stored bytes, which it must
    # return untouched (same object).
    reads: frozenset[str] | None = None

    @property
    def is_identity(self) -> bool:
        return self.rows == "all" and self.where is None and self.transform is None


# ``sample(table, limit)``: up to ``limit`` rows of ``table.data_columns`` (long values cut to
# their first bytes), for the personal-data checks; the db layer provides it.
Sampler = Callable[[Table, int], list[Row]]


class PolicyPlanner(Protocol):
    def plan(self, tables: Sequence[Table], sample: Sampler | None = None) -> Mapping[str, TablePolicy]:
        """One policy per table name. Raises ConfigError (rule names a missing table/column)
        or PolicyError (strict mode, uncovered personal data, found by name or in the rows
        ``sample`` returns) before any row is copied."""
        ...


class CopyEverything:
    """The identity planner: what capture uses when no sanitization is configured."""

    def plan(self, tables: Sequence[Table], sample: Sampler | None = None) -> Mapping[str, TablePolicy]:
        return {t.name: TablePolicy(rule="copy") for t in tables}
