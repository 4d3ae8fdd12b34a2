"""Sanitization rules: the ``sanitize.tables`` shape, checked at config load, parsed into data.

Shape (YAML)::

    sanitize:
      tables:
        users_field_data:
          columns:
            mail: email                              # an action name
            pass: {set: ""}                          # an action with its option
            init: {email: {domain: keep}}            # an action with options
            name: {use: username}                    # the same, spelled with `use`
          accounts: {login: name, email: mail}       # rows of keep_accounts stay untouched
        wp_usermeta:
          columns:
            meta_value:                              # first matching `when` wins
              - {when: "meta_key = 'billing_phone'", use: phone}
              - {when: "meta_key LIKE 'billing_%'", use: redact}
        "cache_*": {rows: none}                      # keep the table, drop its rows
        watchdog: {rows: "wid > 1000"}               # copy only these rows

Actions (options in parentheses; all deterministic, keyed with the project secret):

    keep                      reviewed, not personal: copied as is (silences strict mode)
    null / set (value)        NULL / a constant (not on UNIQUE columns); YAML `col: null`,
                              `col: ~` and `col:` mean the null action
    email (domain: keep|D)    jane.doe.<tag>@example.com, unique; staff addresses kept
    username                  janedoe_<tag>, unique; staff logins kept
    first_name, last_name, name, address, url (host)   realistic fakes
    phone                     same format, digits replaced (first digit kept)
    ip                        192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32
    text (mode: replace|scrub), scrub   lorem of the same length / free text with e-mails,
                              IP addresses and phone numbers replaced inside
    guess (hint: name|first_name|last_name|address|text, text: replace|scrub|redact)
                              by the value's look: e-mail, IP, URL, date, phone, number → their
                              pseudonyms; small numbers kept; other text → hint or text mode
    hash (length), redact     keyed hex digest / "redacted"
    date (jitter_days: 30)    shifted by up to ± N days (datetime, date, unix time, ISO text)
    password (format: auto|wordpress|drupal|bcrypt|argon2id|argon2i|mediawiki|joomla|magento2|md5|plain)
                              the dev password, hashed; auto keeps each value's format
    json ({'$.a.b': ACTION, '$.items[*].email': ..., '$..email': ...})
    php (keys: {GLOB: ACTION}, values: scrub|keep|redact|guess)   PHP-serialized values, lengths fixed

``when`` conditions: ``=``, ``!=``/``<>``, ``<``, ``<=``, ``>``, ``>=``, ``[NOT] IN (...)``,
``[NOT] LIKE '...'``, ``IS [NOT] NULL``, ``AND``, ``OR``, ``NOT``, parentheses; on other columns
of the same row (see when.py). Unique columns stay unique, VARCHAR(n) limits are respected.

Compilation against the live schema is the planner's job (planner.py).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..describe import describe_value, key_path
from ..errors import ConfigError
from . import when as when_lang
from .actions import ACTIONS, ActionSpec, parse_json_path

TABLE_KEYS = ("columns", "rows", "accounts")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class ColumnRule:
    action: ActionSpec
    when: str | None = None

    def describe(self) -> str:
        return self.action.describe() + (" when …" if self.when else "")


@dataclass(frozen=True)
class AccountColumns:
    login: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class TableRule:
    pattern: str  # a table name or a glob (cache_*)
    columns: Mapping[str, tuple[ColumnRule, ...]] = field(default_factory=lambda: MappingProxyType({}))
    rows: str | None = None  # None: not set here; "all", "none" or an SQL condition
    accounts: AccountColumns | None = None
    origin: str = "sanitize.tables"  # where it came from, for messages: the config key or "preset drupal"

    @property
    def is_glob(self) -> bool:
        return bool(_GLOB_CHARS.search(self.pattern))


_key = key_path
_show = describe_value


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, expected: str, got: Any = ...) -> None:
        text = f"{key}: expected {expected}"
        if got is not ...:
            text += f", got {_show(got)}"
        self.items.append(text)


def _action_names() -> str:
    return ", ".join(sorted(ACTIONS))


def _unknown_action(name: Any, key: str, problems: _Problems) -> None:
    guess = difflib.get_close_matches(str(name), list(ACTIONS), n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    problems.items.append(f"{key}: expected an action ({_action_names()}), got {_show(name)}{hint}")


def _parse_action(raw: Any, key: str, problems: _Problems) -> ActionSpec | None:
    """``email`` | ``{set: ""}`` | ``{email: {domain: keep}}`` | ``{use: email, domain: keep}``."""
    if isinstance(raw, ActionSpec):
        return raw  # already parsed (options merged from `use:` hold parsed nested actions)
    if raw is None:
        return ActionSpec("null")  # YAML `column: null` (or `~`, or nothing) reads as None
    if isinstance(raw, str):
        if raw not in ACTIONS:
            _unknown_action(raw, key, problems)
            return None
        return ActionSpec(raw)
    if not isinstance(raw, dict):
        problems.add(key, f"an action name or a mapping ({_action_names()})", raw)
        return None
    body = {k: v for k, v in raw.items() if k != "when"}
    if "use" in body:
        base = _parse_action(body.pop("use"), f"{key}.use", problems)
        if base is None or not body:
            return base  # parsed once: nested php keys / json paths are already ActionSpecs
        return _with_options(base.name, {**base.options, **body}, key, problems)
    if len(body) != 1:
        if not body:
            problems.add(key, "an action (a mapping needs `use: ACTION` besides `when`)", raw)
        else:
            problems.add(key, "one action per mapping, e.g. {set: ''} or {use: email, domain: keep}", raw)
        return None
    (name, options), = body.items()
    if name not in ACTIONS:
        _unknown_action(name, key, problems)
        return None
    action = ACTIONS[name]
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        if action.short_option is None:
            problems.add(_key(key, name), f"options for {name} as a mapping", options)
            return None
        options = {action.short_option: options}
    return _with_options(name, options, _key(key, name), problems)


def _with_options(name: str, options: dict[str, Any], key: str, problems: _Problems) -> ActionSpec | None:
    action = ACTIONS[name]
    ok = True
    parsed: dict[str, Any] = {}
    if name == "json" and "paths" not in options and options:
        options = {"paths": {k: v for k, v in options.items() if str(k).startswith("$")},
                   **{k: v for k, v in options.items() if not str(k).startswith("$")}}
    for opt, value in options.items():
        opt_key = _key(key, opt)
        if opt not in action.options:
            allowed = ", ".join(action.options) or "none"
            problems.items.append(f"{opt_key}: unknown option for {name}; allowed: {allowed}")
            ok = False
            continue
        if name == "json" and opt == "paths":
            nested = _nested_paths(value, opt_key, problems)
            ok = ok and nested is not None
            parsed[opt] = nested
            continue
        if name == "php" and opt == "keys":
            nested = _nested_keys(value, opt_key, problems)
            ok = ok and nested is not None
            parsed[opt] = nested
            continue
        expected = action.options[opt](value)
        if expected is not None:
            problems.add(opt_key, expected, value)
            ok = False
        parsed[opt] = value
    if name == "json" and not parsed.get("paths"):
        problems.add(key, "json paths, e.g. {json: {'$.email': email}}")
        ok = False
    return ActionSpec(name, MappingProxyType(parsed)) if ok else None


def _nested_paths(value: Any, key: str, problems: _Problems) -> Mapping[str, ActionSpec] | None:
    if not isinstance(value, Mapping) or not value:
        problems.add(key, "a mapping of JSON path to action, e.g. {'$.email': email}", value)
        return None
    out: dict[str, ActionSpec] = {}
    for path, sub in value.items():
        path_key = _key(key, path)
        try:
            parse_json_path(str(path))
        except ValueError as exc:
            problems.add(path_key, f"a JSON path such as $.email or $.items[*].phone ({exc})", path)
            continue
        spec = _parse_action(sub, path_key, problems)
        if spec is not None:
            out[str(path)] = spec
    return MappingProxyType(out) if len(out) == len(value) else None


def _nested_keys(value: Any, key: str, problems: _Problems) -> Mapping[str, ActionSpec] | None:
    if not isinstance(value, Mapping) or not value:
        problems.add(key, "a mapping of array key (or glob) to action, e.g. {mail: email, '*phone*': phone}", value)
        return None
    out: dict[str, ActionSpec] = {}
    for name, sub in value.items():
        spec = _parse_action(sub, _key(key, name), problems)
        if spec is not None:
            out[str(name)] = spec
    return MappingProxyType(out) if len(out) == len(value) else None


def _parse_when(raw: Any, key: str, problems: _Problems) -> str | None:
    if not isinstance(raw, str):
        problems.add(key, "a condition such as \"meta_key = 'billing_phone'\"", raw)
        return None
    try:
        when_lang.parse(raw)
    except when_lang.WhenSyntaxError as exc:
        problems.add(key, f"a condition such as \"name IN ('email','phone')\" ({exc})", raw)
        return None
    return raw


def _parse_column(raw: Any, key: str, problems: _Problems) -> tuple[ColumnRule, ...] | None:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        problems.add(key, "an action or a list of {when: ..., use: ...}", raw)
        return None
    out: list[ColumnRule] = []
    for i, item in enumerate(items):
        item_key = f"{key}[{i}]" if isinstance(raw, list) else key
        condition = None
        if isinstance(item, dict) and "when" in item:
            condition = _parse_when(item["when"], f"{item_key}.when", problems)
            if condition is None:
                continue
        elif isinstance(raw, list) and i < len(items) - 1:
            problems.add(item_key, "a `when:` condition (only the last entry of the list may apply to every row)", item)
            continue
        spec = _parse_action(item, item_key, problems)
        if spec is not None:
            out.append(ColumnRule(spec, condition))
    return tuple(out) if len(out) == len(items) else None


def _parse_rows(raw: Any, key: str, problems: _Problems) -> str | None:
    if isinstance(raw, str) and raw.strip().lower() in ("all", "none"):
        return raw.strip().lower()
    if not isinstance(raw, str) or not raw.strip():
        problems.add(key, "all, none or an SQL condition such as \"created > UNIX_TIMESTAMP() - 86400*90\"", raw)
        return None
    if ";" in raw or "--" in raw or "/*" in raw or "#" in raw:
        problems.add(key, "one SQL condition without ';' or comments", raw)
        return None
    if raw.count("(") != raw.count(")"):
        problems.add(key, "an SQL condition with balanced parentheses", raw)
        return None
    return raw.strip()


def _parse_table(pattern: Any, raw: Any, key: str, problems: _Problems, origin: str) -> TableRule | None:
    table_key = _key(key, pattern)
    if not isinstance(pattern, str) or not pattern.strip():
        problems.add(table_key, "a table name or a glob such as cache_*", pattern)
        return None
    if isinstance(raw, str) and raw.strip().lower() == "none":
        raw = {"rows": "none"}  # shorthand: `cache_*: none`
    if not isinstance(raw, dict):
        problems.add(table_key, "a mapping with columns and/or rows", raw)
        return None
    before = len(problems.items)
    for extra in raw:
        if extra not in TABLE_KEYS:
            guess = difflib.get_close_matches(str(extra), TABLE_KEYS, n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            problems.items.append(f"{_key(table_key, extra)}: unknown key{hint}; allowed: {', '.join(TABLE_KEYS)}")
    columns: dict[str, tuple[ColumnRule, ...]] = {}
    raw_columns = raw.get("columns")
    if raw_columns is not None:
        if not isinstance(raw_columns, dict):
            problems.add(f"{table_key}.columns", "a mapping of column name to action", raw_columns)
        else:
            for column, action in raw_columns.items():
                col_key = _key(f"{table_key}.columns", column)
                if not isinstance(column, str):
                    problems.add(col_key, "a column name", column)
                    continue
                rules = _parse_column(action, col_key, problems)
                if rules is not None:
                    columns[column] = rules
    rows = _parse_rows(raw["rows"], f"{table_key}.rows", problems) if "rows" in raw else None
    accounts = None
    if "accounts" in raw:
        body = raw["accounts"]
        if not isinstance(body, dict) or not body or set(body) - {"login", "email"} or not all(isinstance(v, str) for v in body.values()):
            problems.add(f"{table_key}.accounts", "{login: COLUMN, email: COLUMN} (either or both)", body)
        else:
            accounts = AccountColumns(login=body.get("login"), email=body.get("email"))
    if len(problems.items) != before:
        return None
    return TableRule(pattern=pattern, columns=MappingProxyType(columns), rows=rows, accounts=accounts, origin=origin)


def check_table_rules(tables: Mapping[str, Any], key: str) -> list[str]:
    """Shape-check the ``sanitize.tables`` mapping; returns one message per problem."""
    problems = _Problems()
    for pattern, rule in tables.items():
        _parse_table(pattern, rule, key, problems, key)
    return problems.items


def parse_table_rules(tables: Mapping[str, Any], key: str = "sanitize.tables", origin: str | None = None) -> tuple[TableRule, ...]:
    """Parse rules; raises ConfigError listing every problem."""
    problems = _Problems()
    out = []
    for pattern, rule in tables.items():
        parsed = _parse_table(pattern, rule, key, problems, origin or key)
        if parsed is not None:
            out.append(parsed)
    if problems.items:
        count = len(problems.items)
        raise ConfigError(f"{count} problem{'s' if count > 1 else ''} in the sanitization rules", problems=problems.items)
    return tuple(out)
