"""Writing to a file descriptor until every byte is out (``os.write``/``os.writev`` may stop short)."""

from __future__ import annotations

import os
from collections.abc import Sequence

IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)  # buffers one writev takes


def write_all(fd: int, pieces: Sequence[bytes | memoryview]) -> None:
    """Every byte of ``pieces``, in order, to ``fd``: one ``writev`` for up to IOV_MAX pieces (no
    join), resumed where a short write stopped."""
    views = [memoryview(p) for p in pieces if len(p)]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first:first + IOV_MAX])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]
