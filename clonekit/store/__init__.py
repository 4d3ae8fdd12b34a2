"""Stores: named immutable bytes on a local folder or an S3-compatible bucket, chosen by URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from ..config import StoreConfig
from ..errors import ConfigError
from .base import MissingObjectError, ObjectInfo, Store
from .retrying import RetryingStore

__all__ = ["MissingObjectError", "ObjectInfo", "RetryingStore", "Store", "open_store"]


def open_store(config: StoreConfig, *, retry: bool = True, workers: int | None = None, create: bool = True) -> Store:
    """The store named by ``config.url``: a path, ``file://`` URL or ``s3://bucket/prefix``.

    Wrapped in RetryingStore unless ``retry`` is False (tests of the raw adapters). A missing
    folder is created only when ``create``; buckets are never created.
    """
    url = config.url
    store: Store
    if url.startswith("s3://"):
        from .s3 import S3Store

        store = S3Store.from_config(config, workers=workers)
    elif url.startswith("file://"):
        store = _local(Path(unquote(urlparse(url).path)), create)
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ConfigError(f"store: unsupported URL scheme {scheme!r} in {url!r}", hint="use a folder path, file:///path or s3://bucket/prefix")
    else:
        store = _local(Path(url), create)
    return RetryingStore(store, deadline_seconds=config.stall_timeout) if retry else store


def _local(path: Path, create: bool) -> Store:
    from .local import LocalStore

    return LocalStore(path, create=create)
