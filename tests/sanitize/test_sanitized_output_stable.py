"""The drupal preset's output, byte for byte, is what it was before the fast paths.

Nightly snapshots deduplicate against older ones only if the same rows sanitize to the same
bytes run after run and release after release (for the same secret and PRESET_VERSION). The
digest below was recorded with the transforms as they were before the PHP fast paths, the per-key
functions and the LRU caches (issue 18): 1,500 rows of each transformed table of the Drupal
schema, filled from a fixed pool of tricky values (addresses, display names, IPv4/IPv6, phones,
multibyte text, escapes, PHP-serialized values flat, nested, double-serialized, objects and
damaged, invalid UTF-8 bytes, NULLs), staff accounts kept. A change that alters one output byte
fails here; an intended change of pseudonyms must bump PRESET_VERSION and record the new digest.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from benchmarks.drupal_dataset import DDL, TABLE_NAMES
from benchmarks.sanitize_bench import table_from_ddl
from clonekit.sanitize import actions, build_planner, phpserialize
from clonekit.sanitize.actions import column_kind
from clonekit.sanitize.presets import PRESET_VERSION

from .conftest import sanitize_config

ROWS = 1500
DIGEST_AT_PRESET_4 = "98555b0ec94c7bc3246e53caa1655d5633507c8fde0ad9a8b5fa8a15faf99978"
TEXTS = ["", "jane.doe@example.org", "Jane Doe <jane.doe@example.org>", "Aimé Peltier", "+33 6 12 34 56 78",
         "192.0.2.44", "2001:DB8:0::1", "[2001:db8::1]", "https://www.example.net/node/12?x=1", "Session opened for %name.",
         "line\twith\ttabs\nand breaks \\ backslash", "日本語 04 32 01 69 97", "admin", "webmaster@example.org",
         "1979-04-23", "42", "Erwan Le Gall", "x" * 300, "call 0612345678 or mail a.b@c.fr from 10.0.0.1"]


def _s(text: str) -> str:
    return f's:{len(text.encode())}:"{text}";'


PHP = ["a:4:{" + _s("%name") + _s("jane.doe") + _s("%email") + _s("jane.doe@example.org") + _s("@uri") + _s("/node/12")
       + _s("%message") + _s("Hello, world.") + "}",
       "a:3:{" + _s("ip") + _s("192.0.2.44") + _s("phone") + _s("+33 6 12 34 56 78") + _s("seen") + "i:1;}",
       "a:2:{" + _s("contact") + "a:2:{" + _s("mail") + _s("jane.doe@example.org") + _s("city") + _s("Lyon") + "}i:3;b:1;}",
       _s("a:1:{" + _s("email") + _s("jane.doe@example.org") + "}"),  # serialized twice (WordPress)
       'O:8:"stdClass":1:{' + _s("name") + _s("Aimé Peltier") + "}", "a:1:{" + _s("name") + 's:9:"broken', "N;", "a:0:{}",
       "a:1:{" + _s("note") + _s('say "hi"; @') + "}", "a:1:{i:0;" + _s("\\ backslash\ttab 192.0.2.7") + "}"]


def _value(rng: random.Random, column_name: str, kind: str) -> object:
    if rng.random() < 0.08:
        return None
    if kind == "int":
        return rng.randint(-5, 100_000)
    if kind == "decimal":
        return f"{rng.randint(0, 99999)}.{rng.randint(0, 999):03d}"
    if kind not in ("text", "binary"):
        return None
    pool = PHP if column_name in ("variables", "value", "data") and rng.random() < 0.8 else TEXTS
    text = rng.choice(pool) + (str(rng.randint(0, 40)) if rng.random() < 0.5 else "")
    if kind == "binary":
        return text.encode() + (b"\xff\xfe" if rng.random() < 0.1 else b"")
    return text


def _output_digest() -> str:
    cfg = sanitize_config(preset="drupal", strict=False, keep_accounts=("admin", "webmaster@example.org"))
    tables = [table_from_ddl(name, DDL[name]) for name in TABLE_NAMES]
    policies = build_planner(cfg).plan(tables)
    digest = hashlib.sha256()
    for table in tables:
        transform = policies[table.name].transform
        if transform is None:
            continue
        rng = random.Random(f"{table.name}-{PRESET_VERSION}")
        kinds = [(c.name, column_kind(c.data_type, c.binary)) for c in table.data_columns]
        for _ in range(ROWS):
            digest.update(repr(transform(tuple(_value(rng, name, kind) for name, kind in kinds))).encode(
                "utf-8", "surrogateescape"))
    return digest.hexdigest()


@pytest.mark.parametrize("code", ["compiled", "python"])
def test_drupal_preset_output_is_unchanged(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same digest through the compiled paths (PHP walk, HMAC; when built) and pure Python."""
    if code == "python":
        monkeypatch.setattr(phpserialize, "compiled", None)
        monkeypatch.setattr(actions, "compiled", None)
    assert PRESET_VERSION == 4, "the presets changed: record the new digest with the new PRESET_VERSION"
    assert _output_digest() == DIGEST_AT_PRESET_4
