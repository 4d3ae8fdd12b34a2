"""The one WordPress production of the suite (compose project ckprod), started by
scripts/wordpress-prod.sh.

`ckprod` brings it up once per test session (idempotent: a no-op when it already runs and is
seeded) and hands tests its URL, a database connection and what the seed wrote. Every test that
asks for it is put in the xdist group "ckprod" by tests/conftest.py, so tests that render its
pages (WordPress writes transients then) never run beside tests that checksum it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.support import fetch_rows

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "wordpress-prod.sh"
STATE = Path("/var/tmp/clonekit-wordpress")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    return env


@dataclass(frozen=True)
class Production:
    url: str
    db_port: int
    uploads: Path
    secrets: dict[str, str] = field(repr=False)
    seeded: dict[str, Any] = field(repr=False)

    def connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.db_port, user="wp", password=self.secrets["CKPROD_DB_PASSWORD"],
            database="wordpress", charset="utf8mb4", autocommit=True,
        )

    def query(self, sql: str, args: Any = None) -> list[tuple]:
        return fetch_rows(self.connect, sql, args)

    def php(self, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run PHP with WordPress loaded inside the app container; `code` prints the answer."""
        boot = "$_SERVER['HTTP_HOST']='127.0.0.1:8088'; require '/usr/share/wordpress/wp-load.php'; "
        flags = [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
        return subprocess.run(
            ["docker", "exec", "-u", "www-data", *flags, "ckprod-app-1", "php", "-r", boot + code],
            capture_output=True, text=True, timeout=60,
        )


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    # The seed needs Faker and pymysql: the interpreter running the tests has them (`make test`
    # exports PYTHON; a bare `pytest` run does not, and python3 on PATH may lack them).
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON") or sys.executable}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="session")
def ckprod() -> Iterator[Production]:
    done = run_script("up")
    if done.returncode != 0:
        pytest.fail(f"scripts/wordpress-prod.sh up failed:\n{done.stderr[-3000:]}", pytrace=False)
    yield Production(
        url="http://127.0.0.1:8088",
        db_port=33306,
        uploads=STATE / "uploads",
        secrets=read_env_file(STATE / "prod.env"),
        seeded=json.loads((STATE / "seeded.json").read_text()),
    )
