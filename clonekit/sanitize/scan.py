"""``clonekit scan``: which columns look like personal data, and which rule covers each.

Two signals: the column's name (``mail``, ``phone``, ``hostname``...) and a sample of its
values (e-mail addresses, phone numbers, IP addresses, IBANs with their check digits, card
numbers with a Luhn check, person names). Rows come from the db layer's ``sample(table, n)``;
no value ever appears in the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from ..schema import Column, Row, Table
from .actions import ACTIONS, column_kind
from .detect import decoded_ip, opaque_kind, personal_name_reason, sensitive_table_reason, value_kinds

SAMPLE_ROWS = 200
# share of the sampled non-empty values that must look alike before the column is flagged;
# checksummed kinds (IBAN, card) and e-mail addresses need one hit.
_SHARE = {"phone": 0.3, "ip": 0.3, "person name": 0.3, "phone in text": 0.2}
_KIND_ORDER = ("email", "phone", "ip", "iban", "card", "person name", "phone in text")
_OPAQUE_SHARE = 0.3  # share of the sampled values clonekit cannot read before the column is reported

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
_DOCUMENTATION_ADDRESS = {"inet4": "192.0.2.1", "inet6": "2001:db8::1"}
_LONG_TEXT = ("text", "mediumtext", "longtext", "tinytext", "json", "blob", "mediumblob", "longblob")


@dataclass(frozen=True)
class ScanFinding:
    table: str
    column: str  # "*" for the whole table (a cache, session store or search index)
    data_type: str
    reason: str  # "name pattern email; values: email, phone"
    kinds: tuple[str, ...]  # what the name and the values suggest, most telling first
    rule: str | None  # the rule that covers the column, or None
    values_seen: int = 0  # non-empty sampled values
    name_confirmed: bool | None = None  # do the values bear out what the name says? None: none seen
    opaque: str | None = None  # "compressed", "binary", "encoded", "table": clonekit cannot inspect the values
    value_kinds: tuple[str, ...] = ()  # what the sampled values show
    name_kind: str | None = None  # what the column's name suggests

    @property
    def covered(self) -> bool:
        return self.rule is not None

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass(frozen=True)
class ScanReport:
    findings: tuple[ScanFinding, ...]
    tables_scanned: int
    rows_sampled: int
    queries: int = 0  # sampling queries sent (one per table at most)

    @property
    def uncovered(self) -> tuple[ScanFinding, ...]:
        return tuple(f for f in self.findings if f.rule is None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tables_scanned": self.tables_scanned,
            "rows_sampled": self.rows_sampled,
            "queries": self.queries,
            "findings": [
                {"table": f.table, "column": f.column, "type": f.data_type, "reason": f.reason, "rule": f.rule,
                 **({"cannot_inspect": f.opaque} if f.opaque else {})}
                for f in self.findings
            ],
        }


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return None


def _binary_width(column: Column | None) -> int | None:
    """The byte width of BINARY(n) / VARBINARY(n), or None."""
    if column is None or column.data_type not in ("binary", "varbinary"):
        return None
    match = re.search(r"\((\d+)\)", column.column_type)
    return int(match.group(1)) if match else None


@dataclass
class _ColumnSample:
    kinds: list[str] = field(default_factory=list)
    non_empty: int = 0
    opaque: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    digits: int = 0  # values made of digits only (ids, timestamps such as MediaWiki's 20240101120000)
    spaced: int = 0  # values of several words


def _sample_columns(rows: Sequence[Row], positions: Sequence[int], columns: Sequence[Column | None],
                    keep: frozenset[str]) -> dict[int, _ColumnSample]:
    out: dict[int, _ColumnSample] = {}
    for pos in positions:
        column = columns[pos] if pos < len(columns) else None
        width = _binary_width(column)
        hex_ok = column is None or column.binary or (column.max_chars or 0) <= 40
        stats = _ColumnSample()
        opaque: dict[str, int] = {}
        for row in rows:
            raw = row[pos]
            if raw is None or raw == b"" or raw == "":
                continue
            ip = decoded_ip(raw, width) if (width or hex_ok) else None
            if ip is not None:
                stats.non_empty += 1
                stats.counts["ip"] = stats.counts.get("ip", 0) + 1
                continue
            why = opaque_kind(raw)
            if why is not None:
                stats.non_empty += 1
                opaque[why] = opaque.get(why, 0) + 1
                continue
            text = _text(raw)
            if text is None or not text.strip():
                continue
            stats.non_empty += 1
            stripped = text.strip()
            if stripped.isdigit():
                stats.digits += 1
            elif " " in stripped:
                stats.spaced += 1
            for kind in value_kinds(text, keep):
                stats.counts[kind] = stats.counts.get(kind, 0) + 1
        if not stats.non_empty:
            continue
        counts = stats.counts
        stats.kinds = [k for k in _KIND_ORDER if counts.get(k, 0) and counts[k] / stats.non_empty >= _SHARE.get(k, 0.0)]
        if opaque:
            why, count = max(opaque.items(), key=lambda item: item[1])
            if count / stats.non_empty >= _OPAQUE_SHARE:
                stats.opaque = why
        out[pos] = stats
    return out


# what the values must show for a column's NAME to be borne out (kinds value_kinds reports)
_CONFIRMS = {
    "email": ("email",), "ip": ("ip",), "phone": ("phone", "phone in text"), "iban": ("iban",),
    "card number": ("card",), "person name": ("person name",), "first name": ("person name",),
    "last name": ("person name",),
}
_SPATIAL = frozenset({"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                      "geometrycollection"})


def _name_confirmed(reason: str, sample: _ColumnSample | None) -> bool | None:
    """Whether the sampled values bear out a name pattern; None when there were none to look at."""
    if sample is None or not sample.non_empty:
        return None
    if reason in _CONFIRMS:
        return any(k in _CONFIRMS[reason] for k in sample.counts)
    if reason == "address":  # a postal address has several words; "tt:123" is a storage address
        return sample.spaced / sample.non_empty >= 0.3
    if reason in ("password", "login", "national id"):  # timestamps and counters are not secrets
        return sample.digits / sample.non_empty < 0.8
    return True


def scan_tables(
    tables: Sequence[Table],
    sample: Callable[[Table, int], list[Row]],
    coverage: dict[tuple[str, str], str],
    *,
    sample_rows: int = SAMPLE_ROWS,
    keep_accounts: Sequence[str] = (),
    uncovered_only: bool = False,
) -> ScanReport:
    """Findings by column name, column type and sampled values; one sampling query per table at
    most, reading only the columns that can hold text (each value cut to its first bytes).

    ``uncovered_only`` (strict mode): sample only what no rule covers, and skip tables whose
    every such column is covered; ``coverage[(table, "*")]`` is set when a rule names the table."""
    keep = frozenset(a.strip().casefold() for a in keep_accounts)
    findings: list[ScanFinding] = []
    sampled = queries = 0
    for table in tables:
        cols = table.data_columns
        kinds_of = [column_kind(c.data_type, c.binary) for c in cols]
        dropped = bool(cols) and all(coverage.get((table.name, c.name), "").startswith("rows: none") for c in cols)
        if dropped:
            if not uncovered_only:
                findings.extend(_name_only(table, cols, kinds_of, coverage))
            continue
        sensitive = sensitive_table_reason(table.name)
        named = (table.name, "*") in coverage
        wanted = [i for i, k in enumerate(kinds_of) if k in ("text", "binary") and cols[i].data_type not in _SPATIAL]
        if uncovered_only:
            wanted = [i for i in wanted if (table.name, cols[i].name) not in coverage]
        by_value: dict[int, _ColumnSample] = {}
        has_rows = table.rows_estimate > 0
        if wanted or (sensitive and not named):
            sub = replace(table, columns=tuple(cols[i] for i in wanted))
            rows = sample(sub, sample_rows)
            queries += 1
            sampled += len(rows)
            has_rows = bool(rows)
            found = _sample_columns(rows, range(len(wanted)), sub.columns, keep)
            by_value = {wanted[j]: s for j, s in found.items()}
        table_findings: list[ScanFinding] = []
        for i, column in enumerate(cols):
            rule = coverage.get((table.name, column.name))
            stats = by_value.get(i)
            if rule is None and sensitive and named and stats is not None and stats.opaque:
                rule = coverage[(table.name, "*")]  # a cache kept on purpose ({rows: all}): its blobs too
            if uncovered_only and rule is not None:
                continue
            name_reason = personal_name_reason(column.name, kinds_of[i])
            if name_reason is None and column.data_type in ("inet4", "inet6"):
                name_reason = f"ip (type {column.data_type})"
            value_kinds_found = stats.kinds if stats else []
            opaque = stats.opaque if stats else None
            if opaque is not None and not (sensitive or opaque in ("compressed", "encoded")):
                opaque = None  # raw binary (images, hashes) outside caches and indexes: not a finding
            if name_reason is None and not value_kinds_found and opaque is None:
                continue
            reasons = []
            if name_reason:
                by_type = name_reason.endswith(f"(type {column.data_type})")
                reasons.append(f"column type {column.data_type}: ip" if by_type else f"name pattern {name_reason}")
            if value_kinds_found:
                reasons.append(f"values: {', '.join(value_kinds_found)}")
            if opaque:
                reasons.append(f"cannot inspect ({opaque} values): drop the rows or keep explicitly")
            base = name_reason.split(" (")[0] if name_reason else None
            kinds = tuple(dict.fromkeys([*value_kinds_found, *([base] if base else [])]))
            table_findings.append(ScanFinding(
                table=table.name,
                column=column.name,
                data_type=column.column_type or column.data_type,
                reason="; ".join(reasons),
                kinds=kinds,
                rule=rule,
                values_seen=stats.non_empty if stats else 0,
                name_confirmed=_name_confirmed(base, stats) if base else None,
                opaque=opaque,
                value_kinds=tuple(value_kinds_found),
                name_kind=base,
            ))
        if sensitive and has_rows and (not named or not uncovered_only):
            table_findings.insert(0, ScanFinding(
                table=table.name, column="*", data_type="table",
                reason=f"looks like {sensitive}: what it holds cannot be inspected row by row; "
                       "drop the rows or keep explicitly",
                kinds=("table",), rule=coverage.get((table.name, "*")) if named else None,
                opaque="table",
            ))
        findings.extend(table_findings)
    return ScanReport(findings=tuple(findings), tables_scanned=len(tables), rows_sampled=sampled, queries=queries)


def _name_only(table: Table, cols: Sequence[Column], kinds_of: Sequence[str],
               coverage: dict[tuple[str, str], str]) -> list[ScanFinding]:
    """A table whose rows are dropped: its columns named like personal data, with that rule."""
    out = []
    for column, kind in zip(cols, kinds_of, strict=True):
        name_reason = personal_name_reason(column.name, kind)
        if name_reason is not None:
            out.append(ScanFinding(
                table=table.name, column=column.name, data_type=column.column_type or column.data_type,
                reason=f"name pattern {name_reason}", kinds=(name_reason,),
                rule=coverage.get((table.name, column.name)), name_kind=name_reason,
            ))
    return out


class _PlainDumper(yaml.SafeDumper):
    """Plain YAML to paste: never ``&id001`` anchors, even when two rules are the same object."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _flow(value: Any) -> str:
    text = yaml.dump(value, Dumper=_PlainDumper, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _fits(action: Any, data_type: str) -> bool:
    """Whether the action can write a column of this type (``password`` into ``binary(14)``: no)."""
    name = next(iter(action)) if isinstance(action, dict) else action
    base = data_type.split("(")[0].split()[0].lower()
    kind = column_kind(base)
    if name not in ACTIONS or kind not in ACTIONS[name].kinds:
        return False
    width = re.search(r"\((\d+)\)", data_type)
    return not (base in ("binary", "char") and width and int(width.group(1)) < 16 and name != "ip")


def _suggest_action(finding: ScanFinding) -> tuple[Any, str | None]:
    """(action, comment) for one uncovered column; action None: a person must decide."""
    if finding.opaque:
        return None, (f"cannot inspect ({finding.opaque} values): drop the table's rows "
                      f"({_flow({finding.table: {'rows': 'none'}})}) or `{finding.column}: keep` once reviewed")
    long_text = finding.data_type.split("(")[0].lower() in _LONG_TEXT
    kinds = finding.value_kinds
    if kinds:
        if long_text and kinds[0] in ("email", "phone", "ip", "phone in text") and "person name" not in kinds:
            return "scrub", None  # free text that contains addresses or numbers: keep the text, replace those
        action = next((_SUGGEST[k] for k in kinds if k in _SUGGEST), "redact")
        if not _fits(action, finding.data_type):
            action = "redact" if _fits("redact", finding.data_type) else "null"
        return action, None
    name_kind = finding.name_kind
    if name_kind is None:
        return "redact", None
    base_type = finding.data_type.split("(")[0].lower()
    if base_type in _DOCUMENTATION_ADDRESS:  # MariaDB's INET4/INET6 types take only an address
        return {"set": _DOCUMENTATION_ADDRESS[base_type]}, f"an {base_type} column: one documentation address"
    if finding.name_confirmed is False:
        return "keep", (f"named like {name_kind}, but none of the {finding.values_seen} values seen is one: kept")
    action = _SUGGEST.get(name_kind, "redact")
    if not _fits(action, finding.data_type):
        return "keep", f"named like {name_kind}, but a {finding.data_type} column cannot hold one: kept"
    if finding.name_confirmed is None:
        return action, f"no values seen: chosen by the name ({name_kind})"
    return action, None


def suggest_rules(report: ScanReport) -> str:
    """YAML rules for every uncovered finding, to paste under ``sanitize.tables``: plain YAML
    (no anchors), each rule resting on the values seen and the column's type, a comment where
    a person must look."""
    by_table: dict[str, list[ScanFinding]] = {}
    for finding in report.uncovered:
        by_table.setdefault(finding.table, []).append(finding)
    if not by_table:
        return "# every column that looks like personal data is covered by a rule\n"
    lines = ["# paste under sanitize.tables in clonekit.yml; review each rule (`keep` marks a column as not personal)"]
    for table, findings in by_table.items():
        key = _flow(table)
        whole = next((f for f in findings if f.column == "*"), None)
        if whole is not None:
            lines.append(f"{key}: {_flow({'rows': 'none'})}  # {whole.reason.split(':')[0]}: rows dropped; "
                         f"{_flow({'rows': 'all'})} keeps them")
            continue
        columns: list[str] = []
        notes: list[str] = []
        for finding in findings:
            action, comment = _suggest_action(finding)
            if action is None:
                notes.append(f"  # {finding.column}: {comment}")
            else:
                columns.append(f"    {_flow(finding.column)}: {_flow(action)}" + (f"  # {comment}" if comment else ""))
        if columns:
            lines.extend([f"{key}:", *notes, "  columns:", *columns])
        else:
            lines.extend([f"# {key}:", *[f"#{n}" for n in notes]])
    return "\n".join(lines) + "\n"
