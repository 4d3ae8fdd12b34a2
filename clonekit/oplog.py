"""``--log-file``: one JSON line per operation (what, which preview/snapshot, duration, bytes).

Only names, ids, counts and durations are ever recorded: never row values, never secrets.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ClonekitError, ConfigError

ALLOWED_VALUE_TYPES = (str, int, float, bool, type(None))


class OperationLog:
    def __init__(self, path: str | Path | None, *, project: str, on_failure: Callable[[str, ClonekitError], None] | None = None) -> None:
        self.path = Path(path) if path else None
        self.project = project
        self.on_failure = on_failure

    @contextmanager
    def operation(self, name: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """Time an operation; the caller adds result fields to the yielded dict."""
        record: dict[str, Any] = dict(fields)
        started = time.monotonic()
        try:
            yield record
        except ClonekitError as exc:
            self._write(name, record, started, status="failed", error=exc.message, error_type=type(exc).__name__)
            if self.on_failure is not None:
                self.on_failure(name, exc)
            raise
        self._write(name, record, started, status="ok")

    def last_records(self, operation: str, key: str) -> dict[str, dict[str, Any]]:
        """The last record of ``operation`` for each value of field ``key`` (e.g. the last
        ``verify`` of each snapshot); empty without a log file. Unreadable lines are skipped."""
        if self.path is None:
            return {}
        found: dict[str, dict[str, Any]] = {}
        try:
            with self.path.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and record.get("operation") == operation and isinstance(record.get(key), str):
                        found[record[key]] = record
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read the operation log {self.path}: {exc.strerror}") from exc
        return found

    def _write(self, name: str, record: dict[str, Any], started: float, **extra: Any) -> None:
        if self.path is None:
            return
        line = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "project": self.project,
            "operation": name,
            "seconds": round(time.monotonic() - started, 3),
            **{k: v for k, v in record.items() if isinstance(v, ALLOWED_VALUE_TYPES)},
            **extra,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write() per line with O_APPEND keeps concurrent cron runs from interleaving.
        data = (json.dumps(line, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
