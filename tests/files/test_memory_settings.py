"""A files capture of big files keeps its memory flat, from the CLI and from the library.

What holds it: the chunker reads into one reused buffer and one large file is chunked at a time
(files/cdc.py, files/storer.py). Measured on this tree (peak RSS): the previous chunker (a fresh
read block, joined buffer and leftover copy per 8 MiB) without the memory settings: 236 MiB;
now 93-145 MiB. Capping glibc's arenas and giving free memory back (clonekit/memory.py) matter
on larger, mixed trees (docs/benchmarks.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PEAK_LIMIT_KIB = 200 * 1024
RUN = {
    "cli": "import clonekit.cli as cli; cli.main(['-q', 'snapshot', 'prod'])",
    "library": "from clonekit import Project; Project.load('clonekit.yml').snapshot('prod')",
}


@pytest.mark.parametrize("way", sorted(RUN))
def test_snapshot_of_big_files_stays_under_200_mib(tmp_path: Path, way: str) -> None:
    tree = tmp_path / "uploads"
    tree.mkdir()
    for i in range(8):  # incompressible, each well over the largest chunk
        (tree / f"video-{i}.bin").write_bytes(os.urandom(40 << 20))
    (tmp_path / "clonekit.yml").write_text(
        f"project: memflat\nstore: {tmp_path / 'store'}\nsources:\n  prod:\n    files: [{{path: {tree}}}]\n"
    )
    # The child's own peak (RUSAGE_CHILDREN of a fresh parent counts only this run).
    measure = (
        "import resource, subprocess, sys; "
        f"done = subprocess.run([sys.executable, '-c', {RUN[way]!r}], stdout=subprocess.DEVNULL); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", measure], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=600)
    code, peak_kib = (int(word) for word in out.stdout.split())
    assert code == 0, out.stderr
    assert (tmp_path / "store" / "snapshots").is_dir() and any((tmp_path / "store" / "snapshots").iterdir())
    assert peak_kib < PEAK_LIMIT_KIB, f"peak resident memory {peak_kib // 1024} MiB"
