"""Where a database is: the one value every db function takes (passwords never in reprs or argv)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DbEndpoint:
    host: str
    port: int
    user: str
    password: str | None = field(repr=False)
    database: str
    socket: str | None = None

    def __str__(self) -> str:
        where = self.socket if self.socket else f"{self.host}:{self.port}"
        return f"{self.user}@{where}/{self.database}"

    def with_database(self, database: str) -> DbEndpoint:
        return DbEndpoint(self.host, self.port, self.user, self.password, database, self.socket)

    def with_address(self, host: str, port: int) -> DbEndpoint:
        """The same account reached at another address (an SSH tunnel's local end)."""
        return DbEndpoint(host, port, self.user, self.password, self.database, None)
