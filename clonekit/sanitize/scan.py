"""``clonekit scan``: which columns look like personal data, and which rule covers each.

Two signals: the column's name (``mail``, ``phone``, ``hostname``...) and a sample of its
values (e-mail addresses, phone numbers, IP addresses, IBANs with their check digits, card
numbers with a Luhn check, person names). Rows come from the db layer's ``sample(table, n)``;
no value ever appears in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..schema import Row, Table
from .actions import column_kind
from .detect import personal_name_reason, value_kinds

SAMPLE_ROWS = 200
# share of the sampled non-empty values that must look alike before the column is flagged;
# checksummed kinds (IBAN, card) and e-mail addresses need one hit.
_SHARE = {"phone": 0.3, "ip": 0.3, "person name": 0.3, "phone in text": 0.2}
_KIND_ORDER = ("email", "phone", "ip", "iban", "card", "person name", "phone in text")

# kind → action suggested for an uncovered column
_SUGGEST = {
    "email": "email",
    "phone": "phone",
    "ip": "ip",
    "iban": "redact",
    "card": "redact",
    "card number": "redact",
    "person name": "name",
    "first name": "first_name",
    "last name": "last_name",
    "address": "address",
    "national id": "redact",
    "date of birth": {"date": {"jitter_days": 180}},
    "password": {"password": "auto"},
    "login": "username",
    "phone in text": "scrub",
}
_LONG_TEXT = ("text", "mediumtext", "longtext", "tinytext", "json", "blob", "mediumblob", "longblob")


@dataclass(frozen=True)
class ScanFinding:
    table: str
    column: str
    data_type: str
    reason: str  # "name pattern email; values: email, phone"
    kinds: tuple[str, ...]  # what the name and the values suggest, most telling first
    rule: str | None  # the rule that covers the column, or None

    @property
    def covered(self) -> bool:
        return self.rule is not None


@dataclass(frozen=True)
class ScanReport:
    findings: tuple[ScanFinding, ...]
    tables_scanned: int
    rows_sampled: int

    @property
    def uncovered(self) -> tuple[ScanFinding, ...]:
        return tuple(f for f in self.findings if f.rule is None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables_scanned": self.tables_scanned,
            "rows_sampled": self.rows_sampled,
            "findings": [
                {"table": f.table, "column": f.column, "type": f.data_type, "reason": f.reason, "rule": f.rule}
                for f in self.findings
            ],
        }


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return None


def value_findings(rows: Sequence[Row], positions: Sequence[int], keep: frozenset[str] = frozenset()) -> dict[int, list[str]]:
    """Position → kinds of personal data its sampled values show."""
    out: dict[int, list[str]] = {}
    for pos in positions:
        counts: dict[str, int] = {}
        non_empty = 0
        for row in rows:
            text = _text(row[pos])
            if text is None or not text.strip():
                continue
            non_empty += 1
            for kind in value_kinds(text, keep):
                counts[kind] = counts.get(kind, 0) + 1
        if not non_empty:
            continue
        kinds = [k for k in _KIND_ORDER if counts.get(k, 0) and counts[k] / non_empty >= _SHARE.get(k, 0.0)]
        if kinds:
            out[pos] = kinds
    return out


def scan_tables(
    tables: Sequence[Table],
    sample: Callable[[Table, int], list[Row]],
    coverage: dict[tuple[str, str], str],
    *,
    sample_rows: int = SAMPLE_ROWS,
    keep_accounts: Sequence[str] = (),
) -> ScanReport:
    keep = frozenset(a.strip().casefold() for a in keep_accounts)
    findings: list[ScanFinding] = []
    sampled = 0
    for table in tables:
        cols = table.data_columns
        kinds_of = [column_kind(c.data_type, c.binary) for c in cols]
        text_positions = [i for i, k in enumerate(kinds_of) if k in ("text", "binary")]
        dropped = all((table.name, c.name) in coverage and coverage[(table.name, c.name)].startswith("rows: none") for c in cols)
        by_value: dict[int, list[str]] = {}
        if text_positions and not dropped:
            rows = sample(table, sample_rows)
            sampled += len(rows)
            by_value = value_findings(rows, text_positions, keep)
        for i, column in enumerate(cols):
            name_reason = personal_name_reason(column.name, kinds_of[i])
            value_kinds_found = by_value.get(i, [])
            if name_reason is None and not value_kinds_found:
                continue
            reasons = []
            if name_reason:
                reasons.append(f"name pattern {name_reason}")
            if value_kinds_found:
                reasons.append(f"values: {', '.join(value_kinds_found)}")
            kinds = tuple(dict.fromkeys([*value_kinds_found, *([name_reason] if name_reason else [])]))
            findings.append(
                ScanFinding(
                    table=table.name,
                    column=column.name,
                    data_type=column.column_type or column.data_type,
                    reason="; ".join(reasons),
                    kinds=kinds,
                    rule=coverage.get((table.name, column.name)),
                )
            )
    return ScanReport(findings=tuple(findings), tables_scanned=len(tables), rows_sampled=sampled)


def _suggest_action(finding: ScanFinding) -> Any:
    long_text = finding.data_type.split("(")[0].lower() in _LONG_TEXT
    kinds = finding.kinds
    if long_text and len(kinds) and kinds[0] in ("email", "phone", "ip", "phone in text") and "person name" not in kinds:
        return "scrub"  # free text that contains addresses or numbers: keep the text, replace those
    for kind in kinds:
        if kind in _SUGGEST:
            return _SUGGEST[kind]
    return "redact"


def suggest_rules(report: ScanReport) -> str:
    """YAML rules for every uncovered finding, to paste under ``sanitize.tables``."""
    tables: dict[str, dict[str, Any]] = {}
    for finding in report.uncovered:
        tables.setdefault(finding.table, {"columns": {}})["columns"][finding.column] = _suggest_action(finding)
    if not tables:
        return "# every column that looks like personal data is covered by a rule\n"
    header = "# paste under sanitize.tables in clonekit.yml; review each rule (`keep` marks a column as not personal)\n"
    return header + yaml.safe_dump(tables, sort_keys=False, default_flow_style=False, allow_unicode=True)
