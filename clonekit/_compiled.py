"""The optional compiled fast paths (clonekit/_speedups.c), or None.

setup.py builds the extension when a C compiler and Python's headers are there; without it (or
with ``CLONEKIT_PURE_PYTHON=1``, to measure or test the pure-Python code) every caller runs its
Python code, which gives the same bytes. Callers hold their own name for it (``compiled``), so a
test can turn one off.
"""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("CLONEKIT_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load()
