"""The database client of a preview's database container (``clonekit db``).

Runs ``mariadb`` (or ``mysql`` on images that only have that name) inside the container; the
password travels in ``MYSQL_PWD`` through the environment, never in argv.
"""

from __future__ import annotations

PASSWORD_ENV = "MYSQL_PWD"
CLIENT_SHELL = 'if command -v mariadb >/dev/null 2>&1; then exec mariadb "$@"; else exec mysql "$@"; fi'


def client_argv(user: str, database: str, *, table: bool = False) -> list[str]:
    """argv of the client in the container; ``table``: boxed output when reading SQL from stdin."""
    return ["sh", "-c", CLIENT_SHELL, "client", f"--user={user}", *(["--table"] if table else []), database]
