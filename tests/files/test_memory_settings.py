"""A files capture of big files keeps its memory flat: the large-file readers are bounded and the
CLI fixes glibc's mmap threshold so freed buffers go back to the system (clonekit/memory.py).
Measured before the fix on this tree: ~250 MiB peak; after: ~130 MiB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PEAK_LIMIT_KIB = 200 * 1024


def test_snapshot_of_big_files_stays_under_200_mib(tmp_path: Path) -> None:
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
        "done = subprocess.run([sys.executable, '-m', 'clonekit', '-q', 'snapshot', 'prod'], stdout=subprocess.DEVNULL); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", measure], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=600)
    code, peak_kib = (int(word) for word in out.stdout.split())
    assert code == 0, out.stderr
    assert peak_kib < PEAK_LIMIT_KIB, f"peak resident memory {peak_kib // 1024} MiB"
