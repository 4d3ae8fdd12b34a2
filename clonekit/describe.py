"""How error messages name a configuration key and show a bad value (used by every validator).

A bottom module: it imports nothing of clonekit, so ``config`` and ``sanitize.rules`` both use it
without importing each other.
"""

from __future__ import annotations

import re
from typing import Any


def key_path(prefix: str, key: Any) -> str:
    """``sources.prod`` for plain keys, ``previews.files['/srv/x']`` for the others."""
    key = str(key)
    return f"{prefix}.{key}" if re.match(r"^[A-Za-z0-9_$-]+$", key) else f"{prefix}[{key!r}]"


def describe_value(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
