"""A store in a local folder. Writes go to a temp file in the same folder, fsync, rename."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..errors import StoreError
from .base import MissingObjectError, ObjectInfo, check_key

TEMP_PREFIX = ".tmp-"


class LocalStore:
    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)
        if not create and not self.root.is_dir():
            raise MissingObjectError(f"the store folder {self.root} does not exist")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise StoreError(f"the store folder {self.root} is not writable", hint="check its owner and permissions")

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return temp

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            temp = self._write_temp(path, data)
            os.replace(temp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        try:
            temp = self._write_temp(path, data)
            try:
                os.link(temp, path)  # atomic: fails when the name exists
            except FileExistsError:
                return False
            finally:
                temp.unlink(missing_ok=True)
            _fsync_dir(path.parent)
            return True
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise MissingObjectError(f"{key} is missing from the store {self.url}") from exc
        except OSError as exc:
            raise self._error("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # Walk only the folder that holds the prefix, then filter by name.
        head, _, _ = prefix.rpartition("/")
        base = self.root / head if head else self.root
        if not base.is_dir():
            return
        for folder, dirs, files in os.walk(base):
            dirs.sort()
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    continue
                full = Path(folder) / name
                key = full.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue  # deleted while listing
                yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise self._error("delete", key, exc) from exc

    def cleanup(self, older_than: datetime) -> int:
        removed = 0
        cutoff = older_than.timestamp()
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(folder) / name
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise self._error("delete", str(path.relative_to(self.root)), exc) from exc
        return removed

    def close(self) -> None:
        return None

    def _error(self, verb: str, key: str, exc: OSError) -> StoreError:
        hint = None
        if exc.errno == errno.ENOSPC:
            hint = "the disk is full: free space or run `clonekit prune`"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = f"check the permissions of {self.root}"
        return StoreError(f"cannot {verb} {key} in the store {self.url}: {exc.strerror}", hint=hint)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: a manifest must never outlive, after a power cut, the chunks it names."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
