#!/usr/bin/env python3
"""Share of generated person names that clonekit's scanner recognises, per locale.

    .venv/bin/python scripts/name_recognition.py [--per-locale 500] [--seed 13]

Names come from Faker (a test dependency), ``first last`` as a sign-up form stores them.
The figures go in docs/sanitization.md. The word list is drawn from the same Faker providers,
so also look at the ``held out`` column: the rate when every provider of the measured
language is left out of the list (how the scanner does on names it has never seen).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LOCALES = ("fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_PT", "pl_PL", "en_US")


def main() -> int:
    from faker import Faker

    from clonekit.sanitize import detect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-locale", type=int, default=500)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from person_names import LOCALES as LIST_LOCALES
    from person_names import collect

    held_out = True
    print(f"{'locale':8} {'recognised':>10}" + (f" {'held out':>9}" if held_out else ""))
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(args.seed)
        names = [f"{fake.first_name()} {fake.last_name()}" for _ in range(args.per_locale)]
        rate = sum(detect.is_person_name(n) for n in names) / len(names)
        line = f"{locale:8} {rate:>10.0%}"
        if held_out:
            _, firsts, lasts = collect(tuple(x for x in LIST_LOCALES if x.split("_")[0] != locale.split("_")[0]))
            sets = (frozenset(n.casefold() for n in firsts), frozenset(n.casefold() for n in lasts))
            other = sum(detect.is_person_name(n, sets) for n in names) / len(names)
            line += f" {other:>9.0%}"
        print(line)
    for sample in ("Erwan Le Gall", "Sandrine Riou"):
        print(f"{sample!r}: {'recognised' if detect.is_person_name(sample) else 'NOT recognised'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
