"""Who may use the dashboard: HTTP basic auth on every request (scripts, curl), or a login form
that opens a signed session (browsers). Every POST must carry the session's CSRF token.

The password is read from the variable ``dashboard.password_env`` names, when the server
starts; it is never logged or rendered. Without one, only a loopback bind may start.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from ..config import LOOPBACK_BINDS, DashboardConfig
from ..errors import ConfigError

SESSION_USER = "user"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str | None  # None: no password (loopback only): everyone on this host may use it

    def __repr__(self) -> str:  # never the password
        return f"Credentials(user={self.user!r}, password={'set' if self.password else 'none'})"

    def check(self, user: str, password: str) -> bool:
        if self.password is None:
            return True
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        return ok_user and ok_password

    def check_basic(self, header: str | None) -> bool:
        """An ``Authorization: Basic ...`` header with the right user and password."""
        if self.password is None:
            return True
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(sep) and self.check(user, password)


def credentials_for(config: DashboardConfig, bind: str) -> Credentials:
    """The dashboard's credentials; refuses (exit 2) a bind others can reach without a password."""
    password = config.password()
    if password is None and bind not in LOOPBACK_BINDS:
        raise ConfigError(
            f"clonekit serve --bind {bind}: not loopback, and no password is set: previews and snapshots are "
            "production-shaped; the dashboard was not started",
            hint=f"export {config.password_env}=... (dashboard.password_env in clonekit.yml names the variable), "
                 "or --bind 127.0.0.1",
        )
    return Credentials(config.user, password)


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_CSRF] = token
    return token


def csrf_ok(session: dict[str, Any], sent: Any) -> bool:
    token = session.get(SESSION_CSRF)
    return isinstance(token, str) and bool(token) and isinstance(sent, str) and hmac.compare_digest(token, sent)


def safe_next(path: Any) -> str:
    """Where to go after the login: a path of this site only."""
    if isinstance(path, str) and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"
