"""One error family. Each class carries its exit code; the CLI maps them, the API raises them.

Messages name the object and the next step. Adapters (store/, db/, files/, runtime/,
transport/) catch third-party exceptions and re-raise one of these ``from exc``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_POLICY = 3


class ClonekitError(Exception):
    """Base of every error clonekit raises on purpose."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class Transient:
    """Marker mixin: the operation may succeed if retried (throttling, 5xx, dropped link)."""


class ConfigError(ClonekitError):
    """clonekit.yml, a flag or a name is wrong. ``problems`` lists every one found."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message, hint=hint)


class UsageError(ConfigError):
    """A command-line argument is wrong (unknown snapshot, bad name...)."""


class PolicyError(ClonekitError):
    """Sanitization policy refused the snapshot: personal data no rule covers."""

    exit_code = EXIT_POLICY

    def __init__(self, message: str, *, columns: list[str] | None = None, hint: str | None = None) -> None:
        self.columns = list(columns or [])
        super().__init__(message, hint=hint)


class StoreError(ClonekitError):
    """The store cannot be read or written."""


class TransientStoreError(StoreError, Transient):
    """A store request failed in a way worth retrying."""


class NotFoundError(ClonekitError):
    """A named thing (snapshot, preview, object) does not exist."""

    exit_code = EXIT_USAGE


class IntegrityError(ClonekitError):
    """Stored bytes do not match their checksum, or a manifest is inconsistent."""


class SourceError(ClonekitError):
    """The source (database, files, containers, SSH host) cannot be read."""


class TransientSourceError(SourceError, Transient):
    """A source read failed in a way worth retrying."""


class PreviewError(ClonekitError):
    """A preview could not be created, started, refreshed or destroyed."""


class TransientPreviewError(PreviewError, Transient):
    """A preview's database (a restore target) failed in a way worth retrying: lost connection,
    lock wait, deadlock."""


class LockedError(ClonekitError):
    """Another clonekit run holds the lock on this preview or store."""


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, Transient)
