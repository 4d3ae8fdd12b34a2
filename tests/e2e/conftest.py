"""End-to-end tests reuse the WordPress production fixture (tests/fixtures_site/conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "fixtures_site" / "conftest.py"
_spec = importlib.util.spec_from_file_location("ck_fixtures_site", _path)
assert _spec is not None and _spec.loader is not None
_site = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _site  # dataclasses look their module up
_spec.loader.exec_module(_site)

ckprod = _site.ckprod
Production = _site.Production
