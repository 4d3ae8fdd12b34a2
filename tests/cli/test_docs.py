"""Every command and every config key the loader accepts is documented."""

from __future__ import annotations

import re
from pathlib import Path

from clonekit.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def accepted_config_keys() -> set[str]:
    source = (ROOT / "clonekit" / "config.py").read_text()
    keys: set[str] = set()
    for allowed in re.findall(r"self\.mapping\(\s*[^,]+,\s*[^,]+,\s*\(([^)]*)\)", source, re.S):
        keys.update(re.findall(r'"([a-z_]+)"', allowed))
    return keys


def test_every_config_key_is_documented() -> None:
    keys = accepted_config_keys()
    assert {"project", "store_options", "password_env", "compose_project", "keep_daily", "webhook_env"} <= keys
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(k for k in keys if not re.search(rf"`([A-Za-z_\[\]]+\.)*{k}[`.\[ /]", doc))
    assert not missing, f"undocumented config keys: {missing}"


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in cli.commands:
        assert f"clonekit {name}" in readme, name


def test_every_environment_variable_clonekit_reads_is_documented() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "clonekit").rglob("*.py"))
    read = set(re.findall(r"(?:environ(?:\.get)?|env_number)\(\s*\"(CLONEKIT_[A-Z_]+)\"", code))
    assert {"CLONEKIT_RETRY_ATTEMPTS", "CLONEKIT_DB_FORK", "CLONEKIT_LOCK_WAIT_SECONDS", "CLONEKIT_PREVIEW_LOCK_WAIT"} <= read
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in read if f"`{name}`" not in doc)
    assert not missing, f"environment variables read by clonekit but not in docs/configuration.md: {missing}"


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = sorted(p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme)
    assert not missing, f"docs not linked from README.md: {missing}"
