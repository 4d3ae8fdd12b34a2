"""Sanitization: rules planned against the live schema, applied per row in the dump stream.

    planner = build_planner(cfg.sanitize)      # rules parsed; nothing read yet
    policies = planner.plan(tables)            # ConfigError / PolicyError before any row
    row = policies["users_field_data"].transform(row)

``scan`` reports columns that look like personal data and the rule covering each;
``suggest_rules`` turns the uncovered ones into YAML to paste under ``sanitize.tables``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import SanitizeConfig
from ..schema import Row, Table
from .planner import RulePlanner, build_rule_planner
from .presets import PRESET_VERSION, preset_document
from .scan import SAMPLE_ROWS, ScanFinding, ScanReport, scan_tables, suggest_rules
from .wordlists import FIRST_NAMES, LAST_NAMES, LOREM_WORDS, STREET_SUFFIXES

__all__ = [
    "RulePlanner",
    "ScanFinding",
    "ScanReport",
    "build_planner",
    "rules_digest",
    "scan",
    "suggest_rules",
]

# Bump when an action's output for the same input changes: it changes the rules digest.
ACTIONS_VERSION = 2
_WORD_LISTS_DIGEST = hashlib.sha256(
    "\n".join("|".join(words) for words in (FIRST_NAMES, LAST_NAMES, STREET_SUFFIXES, LOREM_WORDS)).encode()
).hexdigest()


def build_planner(cfg: SanitizeConfig) -> RulePlanner:
    """Preset + user rules (user wins), parsed now; checked against the schema at ``plan()``."""
    return build_rule_planner(cfg)


def _plain(value: Any) -> Any:
    """Rules as plain JSON data (the config holds MappingProxyType and tuples)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def rules_digest(cfg: SanitizeConfig) -> str:
    """Stable hash of the effective rules, for the manifest. Never includes the secret; the
    dev password and staff accounts only as hashes."""
    document = {
        "actions_version": ACTIONS_VERSION,
        "preset": cfg.preset,
        "preset_version": PRESET_VERSION,
        "preset_rules": preset_document(cfg.preset),
        "word_lists": _WORD_LISTS_DIGEST,
        "strict": cfg.strict,
        "tables": _plain(cfg.tables),
        "keep_accounts": sorted(hashlib.sha256(a.strip().casefold().encode()).hexdigest() for a in cfg.keep_accounts),
        "dev_password": hashlib.sha256(cfg.dev_password.encode()).hexdigest(),
        "secret_env": cfg.secret_env,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def scan(
    tables: Sequence[Table],
    sample: Callable[[Table, int], list[Row]],
    cfg: SanitizeConfig,
    *,
    sample_rows: int = SAMPLE_ROWS,
) -> ScanReport:
    """Columns that look like personal data (by name and by sampled values), each with the rule
    that covers it or None. Rules that do not fit the schema are ignored here (plan() reports them)."""
    coverage = build_planner(cfg).coverage(tables)
    return scan_tables(tables, sample, coverage, sample_rows=sample_rows, keep_accounts=cfg.keep_accounts)
