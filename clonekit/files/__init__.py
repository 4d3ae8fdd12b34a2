"""File volumes: capture a tree (local or over SSH) into deduplicated chunks; restore it exactly.

    capture_files(spec, writer, *, ssh=None, previous=None, store=None, progress=None) -> dict   # manifest section
    restore_files(repo, section, dest, *, progress=None) -> RestoreStats
    iter_tar(repo, section) -> Iterator[bytes]                                      # same tree as a tar stream
    iter_files(repo, section) -> Iterator[(path, pieces)]                           # each file's bytes

The section format is documented in ``clonekit.files.tree`` (entries) and ``clonekit.files.entries``
(where they are kept: ``clonekit.files/2``).
"""

from .capture import capture_files
from .entries import TREE_FORMAT, iter_entries
from .restore import RestoreStats, iter_files, iter_tar, restore_files
from .tree import SECTION_FORMAT

__all__ = ["SECTION_FORMAT", "TREE_FORMAT", "iter_entries", "RestoreStats", "capture_files", "iter_files", "iter_tar", "restore_files"]
