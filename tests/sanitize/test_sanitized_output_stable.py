"""The drupal preset's output, byte for byte, is what it was before the fast paths.

Nightly snapshots deduplicate against older ones only if the same rows sanitize to the same
bytes run after run and release after release (for the same secret and PRESET_VERSION). The
digest below was recorded with the transforms as they were before the PHP fast paths, the per-key
byte functions and the LRU caches (issue 18): 3,000 rows of each transformed table of the
Drupal-shaped benchmark dataset, cold caches, staff accounts kept. A change that alters one
output byte fails here; an intended change of pseudonyms must bump PRESET_VERSION and record the
new digest.
"""

from __future__ import annotations

import hashlib
import random

from benchmarks import drupal_dataset
from benchmarks.sanitize_bench import table_from_ddl
from clonekit.config import SanitizeConfig
from clonekit.sanitize import build_planner
from clonekit.sanitize.presets import PRESET_VERSION

ROWS = 3000
DIGEST_AT_PRESET_4 = "b6360bb039337b8d7802a377a5f91a2efebabc3df772ccda8ebbf2dd7553dc4c"


def _output_digest(monkeypatch) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLONEKIT_TEST_STABLE_SECRET", "stable-output-secret-0123456789")
    cfg = SanitizeConfig(preset="drupal", secret_env="CLONEKIT_TEST_STABLE_SECRET", strict=False,
                         keep_accounts=("admin", "webmaster@example.org"))
    tables = [table_from_ddl(name, drupal_dataset.DDL[name]) for name in drupal_dataset.TABLE_NAMES]
    policies = build_planner(cfg).plan(tables)
    digest = hashlib.sha256()
    for name in drupal_dataset.TABLE_NAMES:
        transform = policies[name].transform
        if transform is None:
            continue
        vocabulary = drupal_dataset.Vocabulary(random.Random(drupal_dataset.SEED))
        for row in drupal_dataset.FACTORIES[name](vocabulary, ROWS):
            digest.update(repr(transform(row)).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def test_drupal_preset_output_is_unchanged(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert PRESET_VERSION == 4, "the presets changed: record the new digest with the new PRESET_VERSION"
    assert _output_digest(monkeypatch) == DIGEST_AT_PRESET_4
