#!/usr/bin/env python3
"""Regenerate clonekit/sanitize/data/person_names.txt from Faker's person providers.

The scanner recognises person names in sampled values (``clonekit scan``, strict mode) with
this list; Faker stays a test dependency, the list is frozen here so a Faker upgrade never
changes what scan reports without a reviewed commit.

Source: Faker (https://github.com/joke2k/faker), MIT licence, person providers of the locales
below (first names, last names). Run from the repository root with Faker installed:

    .venv/bin/python scripts/person_names.py          # rewrites the data file
    .venv/bin/python scripts/person_names.py --check  # exit 1 if the file is not what Faker gives
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# The languages agencies serve (fr, de, es, it, nl, pt, pl, en) in their countries' variants.
LOCALES = (
    "fr_FR", "fr_BE", "fr_CH", "fr_CA", "fr_QC",
    "de_DE", "de_AT", "de_CH", "de_LU", "de_LI",
    "es_ES", "es_MX", "es_AR", "es_CL", "es_CO", "es_CA",
    "it_IT",
    "nl_NL", "nl_BE",
    "pt_PT", "pt_BR",
    "pl_PL",
    "en_US", "en_GB", "en_IE", "en_NZ",
)
OUT = Path(__file__).resolve().parents[1] / "clonekit" / "sanitize" / "data" / "person_names.txt"


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        value = list(value.keys())
    if not isinstance(value, (list, tuple)):
        return []
    return [v for v in value if isinstance(v, str)]


def _order(name: str) -> tuple[str, str]:
    return name.casefold(), name


def collect(locales: tuple[str, ...] = LOCALES) -> tuple[str, list[str], list[str]]:
    import faker

    firsts: set[str] = set()
    lasts: set[str] = set()
    for locale in locales:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in dir(provider):
            if attr.startswith("_") or callable(getattr(provider, attr)):
                continue
            if "first_name" in attr:
                firsts.update(_strings(getattr(provider, attr)))
            elif "last_name" in attr:
                lasts.update(_strings(getattr(provider, attr)))
    clean = {n.strip() for n in firsts if n.strip() and not any(ch.isdigit() for ch in n)}
    surnames = {n.strip() for n in lasts if n.strip() and not any(ch.isdigit() for ch in n)}
    return faker.VERSION, sorted(clean, key=_order), sorted(surnames, key=_order)


def render() -> str:
    version, firsts, lasts = collect()
    lines = [
        "# Person names for clonekit's personal-data scanner (generated: do not edit by hand).",
        f"# Source: Faker {version} (https://github.com/joke2k/faker), MIT licence, person providers of",
        f"# {', '.join(LOCALES)}.",
        "# Regenerate with scripts/person_names.py. Sections: [first] then [last], one name a line.",
        "[first]",
        *firsts,
        "[last]",
        *lasts,
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} differs from what Faker gives: run scripts/person_names.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
