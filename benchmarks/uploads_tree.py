"""Generate a CMS uploads tree: many small images and documents in dated folders, a few large files.

    python3 -m benchmarks.uploads_tree /var/tmp/uploads --scale small     # ~2,000 files, ~150 MB
    python3 -m benchmarks.uploads_tree /var/tmp/uploads --scale large     # ~20,000 files, ~1.5 GB

Contents are deterministic (seeded): images and videos are incompressible bytes, documents
are compressible text. ``change_files(root, 0.01)`` rewrites 1% of the files (the nightly churn).
"""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scale:
    small_files: int
    large_files: int
    large_bytes: int  # each


SCALES = {
    "tiny": Scale(small_files=300, large_files=1, large_bytes=8 << 20),
    "small": Scale(small_files=2_000, large_files=2, large_bytes=30 << 20),
    "medium": Scale(small_files=6_000, large_files=4, large_bytes=50 << 20),
    "large": Scale(small_files=20_000, large_files=8, large_bytes=60 << 20),
}
MARKER = ".generated"
WORDS = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt labore".split()


def _document(rng: random.Random, size: int) -> bytes:
    words = [rng.choice(WORDS) for _ in range(size // 6 + 1)]
    return b"%PDF-1.4\n" + b" ".join(words)[:size]


def _small_size(rng: random.Random) -> int:
    # log-normal around 30 KB with a tail up to a few MB, like resized photos and PDFs
    return int(min(4 << 20, max(500, rng.lognormvariate(10.3, 0.9))))


def generate(root: Path, scale: str, seed: int = 7) -> dict[str, int]:
    """Create the tree (skipped when a complete one of this scale is already there)."""
    marker = root / MARKER
    if marker.is_file() and marker.read_text() == scale:
        return count(root)
    config = SCALES[scale]
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(config.small_files):
        folder = root / f"{2015 + i % 10}-{i % 12 + 1:02d}"
        folder.mkdir(exist_ok=True)
        size = _small_size(rng)
        if i % 10 == 0:
            (folder / f"document-{i}.pdf").write_bytes(_document(rng, size))
        else:
            (folder / f"photo {i}.jpg").write_bytes(rng.randbytes(size))
        if i % 500 == 0:
            (root / f"empty-{i}").mkdir(exist_ok=True)
    media = root / "media"
    media.mkdir(exist_ok=True)
    for i in range(config.large_files):
        with open(media / f"video-{i}.mp4", "wb") as fh:
            left = config.large_bytes
            while left:
                step = min(left, 4 << 20)
                fh.write(rng.randbytes(step))
                left -= step
    marker.write_text(scale)
    return count(root)


def count(root: Path) -> dict[str, int]:
    files = total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name != MARKER:
                files += 1
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return {"files": files, "bytes": total}


def change_files(root: Path, fraction: float = 0.01, seed: int = 11) -> dict[str, int]:
    """Rewrite ``fraction`` of the files: small ones get new content, large ones a patched region."""
    rng = random.Random(seed)
    paths = sorted(
        os.path.join(dirpath, name) for dirpath, _, names in os.walk(root) for name in names if name != MARKER
    )
    chosen = rng.sample(paths, max(1, int(len(paths) * fraction)))
    changed_bytes = 0
    for path in chosen:
        size = os.path.getsize(path)
        if size > 8 << 20:
            with open(path, "r+b") as fh:
                fh.seek(rng.randrange(size - 65536))
                fh.write(rng.randbytes(65536))
            changed_bytes += 65536
        else:
            with open(path, "wb") as fh:
                fh.write(rng.randbytes(size))
            changed_bytes += size
    return {"files": len(chosen), "bytes": changed_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    args = parser.parse_args()
    print(generate(args.root, args.scale))


if __name__ == "__main__":
    main()
