"""The store contract: named, immutable bytes. Knows nothing of snapshots.

Keys are '/'-separated relative names (``chunks/ab/cd/<id>``). Every implementation passes the
same contract suite (tests/store/test_store_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..errors import StoreError


class MissingObjectError(StoreError):
    """The named object does not exist in the store."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime  # UTC, as the store reports it


@runtime_checkable
class Store(Protocol):
    url: str  # for messages; never holds credentials

    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically (readers see all or nothing); replaces any object."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write only when ``key`` does not exist; True when this call wrote it."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object; MissingObjectError when absent."""
        ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in no particular order."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...

    def cleanup(self, older_than: datetime) -> int:
        """Remove leftovers of writes killed before ``older_than`` (temp files, unfinished
        multipart uploads); returns how many. Never touches a finished object."""
        ...

    def close(self) -> None: ...


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated and never climb out of the store."""
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise StoreError(f"invalid store key {key!r}")
    return key
