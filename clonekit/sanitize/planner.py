"""The planner: rules (preset + user) checked against the live schema and compiled per table.

``plan(tables)`` runs before the first row is read. It raises ConfigError naming every rule
that does not fit the schema, PolicyError (strict mode) listing columns that look like
personal data by name, type or sampled values (or that clonekit cannot inspect) and that no rule covers, and otherwise returns one TablePolicy per table whose
transform is a precompiled closure over column positions: nothing is looked up by name per row.
"""

from __future__ import annotations

import copyreg
import difflib
import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any

from ..config import SanitizeConfig
from ..errors import ClonekitError, ConfigError, PolicyError
from ..schema import Column, Row, RowTransform, Sampler, Table, TablePolicy
from . import actions
from . import when as when_lang
from .actions import ACTIONS, ActionEnv, Keyed, Target, ValueFn, build_action, column_kind
from .presets import preset_rules
from .rules import AccountColumns, ColumnRule, TableRule, parse_table_rules
from .scan import SAMPLE_ROWS, scan_tables

log = logging.getLogger("clonekit.sanitize")


@dataclass
class EffectiveRule:
    """What applies to one live table after merging preset and user rules (user wins)."""

    table: Table
    columns: dict[str, tuple[ColumnRule, ...]] = field(default_factory=dict)  # live column names
    column_origins: dict[str, str] = field(default_factory=dict)
    rows: str = "all"
    rows_origin: str = ""
    accounts: AccountColumns | None = None
    origins: list[str] = field(default_factory=list)

    def describe(self) -> str:
        origin = " + ".join(dict.fromkeys(self.origins)) or "copy"
        if self.rows == "none":
            return f"{origin}: rows none"
        parts = [f"{name}={'|'.join(r.describe() for r in rules)}" for name, rules in self.columns.items()]
        if self.rows != "all":
            parts.append("rows where")
        return f"{origin}: {', '.join(parts)}" if parts else origin


_GLOB = re.compile(r"[*?\[]")


def _matches(pattern: str, name: str, is_glob: bool) -> bool:
    return fnmatchcase(name, pattern) if is_glob else name == pattern


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


# Frozen configs hold read-only mappings; let them be pickled as such (see RulePlanner.__getstate__).
copyreg.pickle(MappingProxyType, lambda proxy: (_mapping_proxy, (dict(proxy),)))


class RulePlanner:
    """Implements ``clonekit.schema.PolicyPlanner`` for a ``SanitizeConfig``."""

    def __init__(self, cfg: SanitizeConfig, user_rules: Sequence[TableRule]) -> None:
        self.cfg = cfg
        self.user_rules = tuple(user_rules)
        self._env: ActionEnv | None = None
        self._checked = False  # True in a worker: the strict checks already passed in the capturing process

    def __repr__(self) -> str:
        return f"RulePlanner(preset={self.cfg.preset!r}, rules={len(self.user_rules)})"

    # A planner is sent to the worker processes that run transforms (clonekit.db.capture) after
    # its plan passed every check: it travels with the secret as this process read it (never
    # re-read from another environment), and a worker only rebuilds the transforms.
    def __getstate__(self) -> dict[str, Any]:
        env = self.env()
        return {"cfg": self.cfg, "user_rules": self.user_rules, "secret": env.keyed.secret,
                "dev_password": env.dev_password, "keep_values": env.keep_values}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cfg, self.user_rules = state["cfg"], state["user_rules"]
        self._env = ActionEnv(keyed=Keyed(state["secret"]), dev_password=state["dev_password"],
                              keep_values=state["keep_values"])
        self._checked = True

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, tables: Sequence[Table], *, tolerant: bool = False) -> tuple[dict[str, EffectiveRule], list[str]]:
        """Effective rules per table and the problems found (user rules naming what is missing).

        With ``tolerant`` (scan), rules that do not fit are skipped and problems still returned."""
        problems: list[str] = []
        names = [t.name for t in tables]
        presets = preset_rules(self.cfg.preset, names)
        # order of precedence, lowest first: preset globs, preset names, user globs, user names
        ordered = [r for r in presets if r.is_glob] + [r for r in presets if not r.is_glob]
        ordered += [r for r in self.user_rules if r.is_glob] + [r for r in self.user_rules if not r.is_glob]

        for rule in self.user_rules:
            if not rule.is_glob and rule.pattern not in names:
                guess = difflib.get_close_matches(rule.pattern, names, n=1)
                hint = f" (did you mean {guess[0]!r}?)" if guess else ""
                problems.append(f"{_key(rule.origin, rule.pattern)}: no table {rule.pattern!r} in the source database{hint}")
        glob_columns_seen: dict[tuple[str, str], bool] = {}

        result: dict[str, EffectiveRule] = {}
        for table in tables:
            eff = EffectiveRule(table)
            for rule in ordered:
                if not _matches(rule.pattern, table.name, rule.is_glob):
                    continue
                user = not rule.origin.startswith("preset")
                eff.origins.append(rule.origin if not user else f"{rule.origin}.{rule.pattern}")
                if rule.rows is not None:
                    eff.rows, eff.rows_origin = rule.rows, rule.origin
                if rule.accounts is not None:
                    eff.accounts = self._accounts(rule, table, problems if user else None)
                # column globs (`*_given_name`) first, so a column's own name wins over a glob
                for col_name, col_rules in sorted(rule.columns.items(), key=lambda item: not _GLOB.search(item[0])):
                    col_key = _key(_key(f"{rule.origin}", rule.pattern) + ".columns", col_name)
                    if _GLOB.search(col_name):
                        for live in table.columns:
                            if fnmatchcase(live.name.lower(), col_name.lower()) and not live.generated:
                                # rules that do not fit a matched column (an int for a text action) skip it
                                kept = self._check_column_rules(col_rules, live, table, col_key, None)
                                if kept:
                                    eff.columns[live.name] = kept
                                    eff.column_origins[live.name] = rule.origin
                        continue
                    column = table.column(col_name)
                    if user and rule.is_glob:
                        seen_key = (rule.pattern, col_name)
                        glob_columns_seen[seen_key] = glob_columns_seen.get(seen_key, False) or column is not None
                    if column is None:
                        if user and not rule.is_glob:
                            known = ", ".join(c.name for c in table.columns)
                            problems.append(f"{col_key}: no column {col_name!r} in table {table.name!r} (columns: {known})")
                        continue
                    if column.generated:
                        continue  # computed from the other columns; never dumped
                    kept = self._check_column_rules(col_rules, column, table, col_key, problems if user else None)
                    if kept:
                        eff.columns[column.name] = kept
                        eff.column_origins[column.name] = rule.origin
            result[table.name] = eff
        for (pattern, col_name), seen in glob_columns_seen.items():
            if not seen:
                problems.append(f"{_key(_key('sanitize.tables', pattern) + '.columns', col_name)}: no table matching {pattern!r} has a column {col_name!r}")
        return result, problems

    def _accounts(self, rule: TableRule, table: Table, problems: list[str] | None) -> AccountColumns | None:
        assert rule.accounts is not None
        ok = True
        for col in (rule.accounts.login, rule.accounts.email):
            if col is not None and table.column(col) is None:
                ok = False
                if problems is not None:
                    problems.append(f"{_key(rule.origin, rule.pattern)}.accounts: no column {col!r} in table {table.name!r}")
        return rule.accounts if ok else None

    def _check_column_rules(
        self, rules: tuple[ColumnRule, ...], column: Column, table: Table, key: str, problems: list[str] | None
    ) -> tuple[ColumnRule, ...]:
        """Keep the rules that fit the column; report the others (user rules) or drop them (presets)."""
        kind = column_kind(column.data_type, column.binary)
        data_names = {c.name.lower() for c in table.data_columns}
        kept = []
        for rule in rules:
            action = ACTIONS[rule.action.name]
            problem = None
            if kind not in action.kinds:
                problem = f"{key}: action {rule.action.name} cannot write a {column.column_type} column (it needs {' or '.join(sorted(action.kinds))})"
            elif rule.action.name == "null" and not column.nullable:
                problem = f"{key}: action null on a NOT NULL column; use {{set: ...}}"
            elif rule.action.name == "set" and _is_unique(column, table):
                problem = f"{key}: action set would give every row the same value in a UNIQUE column; use hash or a pseudonym"
            elif rule.when is not None:
                missing = sorted(c for c in when_lang.columns_of(when_lang.parse(rule.when)) if c.lower() not in data_names)
                if missing:
                    problem = f"{key}.when: no column {', '.join(repr(m) for m in missing)} in table {table.name!r}"
            if problem is None:
                kept.append(rule)
            elif problems is not None:
                problems.append(problem)
        return tuple(kept)

    # -- planning -----------------------------------------------------------------------------

    def env(self) -> ActionEnv:
        if self._env is None:
            secret = self.cfg.secret()
            if not secret:
                log.warning(
                    "sanitize.secret_env is not set: pseudonyms are deterministic but not keyed, so anyone can "
                    "test a guessed e-mail address against them; set secret_env to a variable holding a long random value"
                )
            self._env = ActionEnv(
                keyed=Keyed(secret),
                dev_password=self.cfg.dev_password,
                keep_values=frozenset(v.strip().casefold() for v in self.cfg.keep_accounts),
            )
        return self._env

    def plan(self, tables: Sequence[Table], sample: Sampler | None = None) -> Mapping[str, TablePolicy]:
        """One policy per table; in strict mode, first the same checks as ``clonekit scan`` on
        what no rule covers: column names and types, then (with ``sample``) a few hundred
        sampled values per table, one query per table at most."""
        effective, problems = self.resolve(tables)
        if problems:
            count = len(problems)
            raise ConfigError(
                f"{count} sanitization rule{'s do' if count > 1 else ' does'} not fit the source database",
                problems=problems,
                hint="fix the table or column names under sanitize.tables (the preset's own rules skip what is missing)",
            )
        if self.cfg.strict and not self._checked:
            report = scan_tables(tables, sample or _no_rows, _coverage(effective.values()), sample_rows=SAMPLE_ROWS,
                                 keep_accounts=self.cfg.keep_accounts, uncovered_only=True)
            log.info("strict mode: %d tables checked, %d rows sampled in %d queries",
                     report.tables_scanned, report.rows_sampled, report.queries)
            uncovered = report.uncovered
            if uncovered:
                listed = ", ".join(f"{f.where} ({f.reason})" for f in uncovered)
                raise PolicyError(
                    f"refusing to copy {len(uncovered)} column{'s that look' if len(uncovered) > 1 else ' that looks'} "
                    f"like personal data or that clonekit cannot inspect, and that no rule covers: {listed}",
                    columns=[f.where for f in uncovered],
                    hint="add rules under sanitize.tables (`clonekit scan SOURCE --suggest` prints them), "
                    "`COLUMN: keep` for a column that holds no personal data, or `TABLE: {rows: none}` / "
                    "`TABLE: {rows: all}` for a cache or index",
                )
        return {name: self._policy(eff) for name, eff in effective.items()}

    def _policy(self, eff: EffectiveRule) -> TablePolicy:
        if eff.rows == "none":
            return TablePolicy(rows="none", rule=eff.describe())
        where = None if eff.rows == "all" else eff.rows
        transform = compile_transform(eff, self.env, self.cfg.keep_accounts)
        if transform is None and where is None:
            return TablePolicy(rule=eff.describe())
        reads = transform_reads(eff, self.cfg.keep_accounts) if transform is not None else None
        return TablePolicy(rows="all", where=where, transform=transform, rule=eff.describe(), reads=reads)

    def coverage(self, tables: Sequence[Table]) -> dict[tuple[str, str], str]:
        """(table, column) → the rule covering it, for scan; rules that do not fit are ignored.
        ``(table, "*")`` is there when a rule names the table."""
        effective, _ = self.resolve(tables, tolerant=True)
        return _coverage(effective.values())


def _no_rows(table: Table, limit: int) -> list[Row]:
    return []


def _coverage(effective: Iterable[EffectiveRule]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for eff in effective:
        if eff.origins:
            out[(eff.table.name, "*")] = " + ".join(dict.fromkeys(eff.origins))
        for column in eff.table.columns:
            if eff.rows == "none":
                out[(eff.table.name, column.name)] = f"rows: none ({eff.rows_origin})"
            elif column.name in eff.columns:
                rules = eff.columns[column.name]
                partial = "; other rows as they are" if all(r.when for r in rules) else ""
                out[(eff.table.name, column.name)] = (
                    f"{'|'.join(r.describe() for r in rules)} ({eff.column_origins[column.name]}{partial})"
                )
    return out


def _is_unique(column: Column, table: Table) -> bool:
    return column.unique or table.primary_key == (column.name,) or (column.name,) in table.unique_keys


def _key(prefix: str, name: str) -> str:
    import re

    return f"{prefix}.{name}" if re.match(r"^[A-Za-z0-9_$-]+$", name) else f"{prefix}[{name!r}]"


# --- compiling one table's transform ------------------------------------------------------------

Branch = tuple[ValueFn | None, bool]  # (value function or None for keep, applies to NULL)


def _branch(rule: ColumnRule, target: Target, env: ActionEnv) -> Branch:
    if rule.action.name == "keep":
        return (None, False)
    return (build_action(rule.action, target, env), ACTIONS[rule.action.name].applies_to_null)


def _text_key(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).casefold()


KEY_COLUMN_MAX_CHARS = 255  # conditions only on columns this short (keys, types) are memoized
CHOICE_CACHE_ENTRIES = 4096


Chooser = Callable[[Row], "Branch | None"]
# a chooser's memo, for the compiled row loop: (key column positions, {key values: branch})
ChoiceMemo = tuple[tuple[int, ...], dict[tuple[Any, ...], "Branch | None"]]


def _chooser(rules: tuple[ColumnRule, ...], index: Mapping[str, int], table: Table,
             target_of: Callable[[ColumnRule], Target], env: ActionEnv,
             target_column: str | None = None) -> tuple[Chooser, ChoiceMemo | None]:
    """First matching branch for a row. A leading run of ``col = 'x'`` / ``col IN (...)`` on
    one text column becomes one dict lookup (WordPress usermeta has a dozen such branches).
    When the other conditions read only short key columns, not the transformed column
    (Webform's element ``name`` and ``property``), the branch is remembered per key: that memo
    is returned beside the chooser when it is the whole choice (no dict lookup before it), so the
    compiled row loop reads it itself and calls the chooser only for a key not seen yet."""
    nodes = [when_lang.parse(r.when) if r.when else None for r in rules]
    lookup: dict[str, Branch] = {}
    dispatch_col: str | None = None
    split = 0
    for node, rule in zip(nodes, rules, strict=True):
        eq = when_lang.equality_dispatch(node) if node is not None else None
        if eq is None or (dispatch_col is not None and eq[0] != dispatch_col):
            break
        column = table.column(eq[0])
        if column is None or column_kind(column.data_type, column.binary) not in ("text", "binary"):
            break
        dispatch_col = eq[0]
        branch = _branch(rule, target_of(rule), env)
        for value in eq[1]:
            lookup.setdefault(value, branch)
        split += 1
    rest: list[tuple[when_lang.Predicate | None, Branch]] = [
        (when_lang.compile_predicate(node, index) if node is not None else None, _branch(rule, target_of(rule), env))
        for node, rule in zip(nodes[split:], rules[split:], strict=True)
    ]

    def scan_rest(row: Row) -> Branch | None:
        for predicate, branch in rest:
            if predicate is None or predicate(row) is True:
                return branch
        return None

    read = sorted({c.lower() for node in nodes[split:] if node is not None for c in when_lang.columns_of(node)})
    short = [table.column(c) for c in read]
    memo: ChoiceMemo | None = None
    if read and target_column is not None and target_column.lower() not in read and all(
        c is not None and c.max_chars is not None and c.max_chars <= KEY_COLUMN_MAX_CHARS for c in short
    ):
        positions = tuple(index[c] for c in read)
        unscanned = scan_rest
        chosen: dict[tuple[Any, ...], Branch | None] = {}
        memo = (positions, chosen)

        def scan_rest(row: Row) -> Branch | None:
            key = tuple(row[p] for p in positions)
            if key in chosen:
                return chosen[key]
            if len(chosen) >= CHOICE_CACHE_ENTRIES:
                chosen.clear()
            picked = chosen[key] = unscanned(row)
            return picked

    if dispatch_col is None:
        return scan_rest, memo
    pos = index[dispatch_col]

    def choose(row: Row) -> Branch | None:
        key = row[pos]
        hit = lookup.get(key.casefold() if key.__class__ is str else _text_key(key))  # type: ignore[arg-type]
        return hit if hit is not None else scan_rest(row)

    return choose, None


def _constant_target(target: Target) -> Callable[[ColumnRule], Target]:
    return lambda _rule: target


def transform_reads(eff: EffectiveRule, keep_accounts: Sequence[str]) -> frozenset[str]:
    """The columns (lower case) ``compile_transform``'s function reads or writes: the ruled
    columns, those their ``when`` conditions read, and the staff account columns."""
    names = {name.lower() for name in eff.columns}
    for rules in eff.columns.values():
        for rule in rules:
            if rule.when:
                names.update(c.lower() for c in when_lang.columns_of(when_lang.parse(rule.when)))
    if keep_accounts and eff.accounts is not None:
        names.update(c.lower() for c in (eff.accounts.login, eff.accounts.email) if c is not None)
    return frozenset(names)


def compile_transform(eff: EffectiveRule, env_factory: Callable[[], ActionEnv], keep_accounts: Sequence[str]) -> RowTransform | None:
    """The row function for one table, or None when no column changes."""
    table = eff.table
    cols = table.data_columns
    index = {c.name.lower(): i for i, c in enumerate(cols)}
    if not any(r.action.name != "keep" for rules in eff.columns.values() for r in rules):
        return None
    env = env_factory()
    plain: list[tuple[int, ValueFn]] = []
    always: list[tuple[int, ValueFn]] = []
    conditional: list[tuple[int, Chooser]] = []
    memos: list[ChoiceMemo | None] = []
    for name, rules in eff.columns.items():
        pos = index[name.lower()]
        column = cols[pos]
        target = Target(
            kind=column_kind(column.data_type, column.binary),
            max_chars=column.max_chars,
            unique=_is_unique(column, table),
            nullable=column.nullable,
        )
        if len(rules) == 1 and rules[0].when is None:
            fn, to_null = _branch(rules[0], target, env)
            if fn is not None:
                (always if to_null else plain).append((pos, fn))
        else:
            choose, memo = _chooser(rules, index, table, _constant_target(target), env, column.name)
            conditional.append((pos, choose))
            memos.append(memo)

    keep = frozenset(v.strip().casefold() for v in keep_accounts)
    staff_positions = []
    if keep and eff.accounts is not None:
        for col in (eff.accounts.login, eff.accounts.email):
            if col is not None and col.lower() in index:
                staff_positions.append(index[col.lower()])
    plain_t, always_t, conditional_t, staff_t = tuple(plain), tuple(always), tuple(conditional), tuple(staff_positions)
    table_name = table.name

    def transform(row: Row) -> Row:
        try:
            for pos in staff_t:
                value = row[pos]
                if value is not None and _text_key(value).strip() in keep:  # type: ignore[union-attr]
                    return row  # a staff account: kept as it is
            out: list[Any] | None = None  # a row no rule applies to is returned as it is
            for pos, fn in plain_t:
                value = row[pos]
                if value is not None:
                    if out is None:
                        out = list(row)
                    out[pos] = fn(value)
            for pos, fn in always_t:
                if out is None:
                    out = list(row)
                out[pos] = fn(row[pos])
            for pos, choose in conditional_t:
                picked = choose(row)
                if picked is not None and picked[0] is not None:
                    value = row[pos]
                    if value is not None or picked[1]:
                        if out is None:
                            out = list(row)
                        out[pos] = picked[0](value)
            return row if out is None else tuple(out)
        except _ROW_ERRORS as exc:
            # the original exception may quote the value: never chain it
            raise _row_error(table_name, type(exc).__name__) from None

    compiled = actions.compiled
    if compiled is not None and (plain_t or conditional_t) and not (staff_t or always_t):
        # the loop above in C (clonekit/_speedups.c), which also returns the row itself when every
        # action returned its value unchanged; a `when` column's branch from its memo when the key
        # was seen, else from the Python chooser
        spec: tuple[Any, ...] = (plain_t, _ROW_ERRORS, functools.partial(_raise_row_error, table_name), transform)
        if conditional_t:
            spec += (tuple((pos, *(memo or (None, None)), choose) for (pos, choose), memo in zip(conditional_t, memos,
                                                                                                 strict=True)),)
        return functools.partial(compiled.transform_plain, spec)
    return transform


_ROW_ERRORS = (ValueError, TypeError, UnicodeError, OverflowError, LookupError, ArithmeticError)


def _row_error(table_name: str, error_name: str) -> ClonekitError:
    return ClonekitError(f"sanitizing a row of {table_name} failed ({error_name}); no value is shown",
                         hint="report this with the table's column types")


def _raise_row_error(table_name: str, error_name: str) -> None:
    raise _row_error(table_name, error_name)


def build_rule_planner(cfg: SanitizeConfig) -> RulePlanner:
    return RulePlanner(cfg, parse_table_rules(cfg.tables))
