"""File volumes: capture a tree (local or over SSH) into deduplicated chunks; restore it exactly.

    capture_files(spec, writer, *, ssh=None, previous=None, progress=None) -> dict   # manifest section
    restore_files(repo, section, dest, *, progress=None) -> RestoreStats
    iter_tar(repo, section) -> Iterator[bytes]                                      # same tree as a tar stream
    iter_files(repo, section) -> Iterator[(path, pieces)]                           # each file's bytes

The section format is documented in ``clonekit.files.tree``.
"""

from .capture import capture_files
from .restore import RestoreStats, iter_files, iter_tar, restore_files
from .tree import SECTION_FORMAT

__all__ = ["SECTION_FORMAT", "RestoreStats", "capture_files", "iter_files", "iter_tar", "restore_files"]
