"""Retries for any store, through the one policy in clonekit.retry. Every store call is idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from ..retry import call_with_retry
from .base import ObjectInfo, Store


class RetryingStore:
    def __init__(self, inner: Store, *, deadline_seconds: float | None = None) -> None:
        self.inner = inner
        self.url = inner.url
        self.deadline_seconds = deadline_seconds  # None: CLONEKIT_STALL_TIMEOUT

    def __repr__(self) -> str:
        return f"RetryingStore({self.inner!r})"

    def put(self, key: str, data: bytes) -> None:
        call_with_retry(lambda: self.inner.put(key, data), deadline_seconds=self.deadline_seconds)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return call_with_retry(lambda: self.inner.put_if_absent(key, data), deadline_seconds=self.deadline_seconds)

    def get(self, key: str) -> bytes:
        return call_with_retry(lambda: self.inner.get(key), deadline_seconds=self.deadline_seconds)

    def exists(self, key: str) -> bool:
        return call_with_retry(lambda: self.inner.exists(key), deadline_seconds=self.deadline_seconds)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # A listing is retried as a whole: a partial one is never returned.
        return iter(call_with_retry(lambda: list(self.inner.list(prefix)), deadline_seconds=self.deadline_seconds))

    def delete(self, key: str) -> None:
        call_with_retry(lambda: self.inner.delete(key), deadline_seconds=self.deadline_seconds)

    def cleanup(self, older_than: datetime) -> int:
        return call_with_retry(lambda: self.inner.cleanup(older_than), deadline_seconds=self.deadline_seconds)

    def close(self) -> None:
        self.inner.close()
