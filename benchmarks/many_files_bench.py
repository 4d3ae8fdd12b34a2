"""Memory with many files: a tree of small files (thumbnails), snapshots of it, the commands that read them all.

    python3 -m benchmarks.many_files_bench --files 100000 --snapshots 8 [--ssh]

A snapshot lists one entry per file, kept in tree chunks of the store (``clonekit.files/2``):
``snapshot`` streams the tree and the previous one through in windows, ``snapshots`` and ``prune``
read manifests that name those chunks without their entries (docs/operations.md, "Memory with
many files"); over SSH the listing is held compact (about 150 bytes per entry) to be sorted.
This runs the CLI in its own process each time (peak RSS from the kernel, VmHWM): the first snapshot, then ``--snapshots``
minus one more after 1% of the files changed each time, then ``clonekit snapshots`` and
``clonekit prune --dry-run`` over all of them. Anchor, same tree, same run: ``restic backup``
(first and after the first change), its wall time and peak RSS beside ours.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.common import Timing, time_command

WORK = Path(os.environ.get("CLONEKIT_BENCH_DIR", "/var/tmp/ck-bench")) / "many-files"
MIB = 2**20


def generate(root: Path, files: int, seed: int = 11) -> None:
    """``files`` files of 200-3,000 bytes in year/month folders (kept when already made)."""
    marker = root / ".generated"
    if marker.is_file() and marker.read_text() == str(files):
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(seed)
    for i in range(files):
        folder = root / f"{2010 + i % 15}" / f"{i % 12 + 1:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"image-{i}-{rng.randrange(10**6)}-300x200.jpg").write_bytes(rng.randbytes(rng.randrange(200, 3000)))
    marker.write_text(str(files))


def change(root: Path, share: float, seed: int) -> None:
    paths = sorted(p for p in root.rglob("*.jpg"))
    for path in random.Random(seed).sample(paths, max(1, int(len(paths) * share))):
        with open(path, "ab") as fh:
            fh.write(b"x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=8)
    parser.add_argument("--ssh", action="store_true",
                        help="also snapshot the tree over SSH (the services' loopback sshd): first, then after a 1%% "
                             "change; anchor rsync -a -e ssh of the same tree")
    args = parser.parse_args()
    tree = WORK / f"tree-{args.files}"
    generate(tree, args.files)
    store, restic_repo = WORK / "store", WORK / "restic"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(restic_repo, ignore_errors=True)
    config = WORK / "clonekit.yml"
    config.write_text(f"project: many\nstore: {store}\nsources:\n  prod:\n    files: [{{path: {tree}}}]\n")
    clonekit = str(Path(sys.executable).with_name("clonekit"))
    env = {"RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(restic_repo)}
    subprocess.run(["restic", "init", "--quiet"], env={**os.environ, **env}, check=True, capture_output=True)

    def ours(name: str, *argv: str, config: Path = config) -> Timing:
        timing = time_command(name, [clonekit, "-q", "-c", str(config), *argv])
        print(f"{name}: {timing.seconds:.1f} s, peak RSS {timing.peak_rss_bytes / MIB:.0f} MiB", flush=True)
        return timing

    def restic(name: str) -> Timing:
        timing = time_command(name, ["restic", "backup", "--quiet", str(tree)], env=env)
        print(f"{name}: {timing.seconds:.1f} s, peak RSS {timing.peak_rss_bytes / MIB:.0f} MiB", flush=True)
        return timing

    print(f"tree: {args.files} files in {tree}", flush=True)
    first, restic_first = ours("clonekit snapshot (first)", "snapshot", "prod"), restic("restic backup (first)")
    peaks = [first.peak_rss_bytes]
    second = restic_second = None
    for n in range(1, args.snapshots):
        change(tree, 0.01, seed=n)
        timing = ours(f"clonekit snapshot {n + 1} (1% changed)", "snapshot", "prod")
        peaks.append(timing.peak_rss_bytes)
        if second is None:
            second, restic_second = timing, restic("restic backup (1% changed)")
    listing = ours(f"clonekit snapshots ({args.snapshots} snapshots)", "snapshots")
    prune = ours(f"clonekit prune --dry-run ({args.snapshots} snapshots)", "prune", "--dry-run")
    print()
    print(f"snapshot of {args.files} files vs restic backup: {first.seconds:.2f} s vs anchor "
          f"{restic_first.seconds:.2f} s, ratio {first.seconds / restic_first.seconds:.2f}; peak RSS "
          f"{first.peak_rss_bytes / MIB:.0f} vs {restic_first.peak_rss_bytes / MIB:.0f} MiB")
    if second is not None and restic_second is not None:
        print(f"second snapshot (1% changed) vs restic backup: {second.seconds:.2f} s vs anchor "
              f"{restic_second.seconds:.2f} s, ratio {second.seconds / restic_second.seconds:.2f}; peak RSS "
              f"{second.peak_rss_bytes / MIB:.0f} vs {restic_second.peak_rss_bytes / MIB:.0f} MiB")
    if args.ssh:
        peaks += _over_ssh(tree, ours)
    worst = max(*peaks, listing.peak_rss_bytes, prune.peak_rss_bytes) / MIB
    print(f"RESULT many files ({args.files} files, {args.snapshots} snapshots): peak RSS snapshot "
          f"{max(peaks) / MIB:.0f} MiB, snapshots {listing.peak_rss_bytes / MIB:.0f} MiB, prune "
          f"{prune.peak_rss_bytes / MIB:.0f} MiB; goal <= 200 MiB: {'met' if worst <= 200 else 'MISSED'}")
    return 0


def _over_ssh(tree: Path, ours: Callable[..., Timing]) -> list[int]:
    """The same tree as a source over SSH: its first and its next snapshot, rsync beside each."""
    from benchmarks.files_bench import _ssh_target

    target = _ssh_target()
    store, copy = WORK / "store-ssh", WORK / "rsync-ssh"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(copy, ignore_errors=True)
    config = WORK / "clonekit-ssh.yml"
    config.write_text(
        f"project: many-ssh\nstore: {store}\nsources:\n  prod:\n"
        f"    ssh: {{target: '{target.user}@{target.host}:{target.port}', key_file: {target.key_file}, "
        f"known_hosts: {target.known_hosts}}}\n    files: [{{path: {tree}}}]\n")
    rsync = ["rsync", "-a", "-e", f"ssh -p {target.port} -i {target.key_file} -o UserKnownHostsFile={target.known_hosts} "
             "-o StrictHostKeyChecking=yes", f"{target.user}@{target.host}:{tree}/", f"{copy}/"]
    peaks = []
    for name in ("first", "1% changed"):
        if name != "first":
            change(tree, 0.01, seed=99)
        timing = ours(f"clonekit snapshot over SSH ({name})", "snapshot", "prod", config=config)
        anchor = time_command(f"rsync -a -e ssh ({name})", rsync)
        print(f"snapshot over SSH ({name}) vs rsync -a -e ssh: {timing.seconds:.2f} s vs anchor {anchor.seconds:.2f} s, "
              f"ratio {timing.seconds / anchor.seconds:.2f}; peak RSS {timing.peak_rss_bytes / MIB:.0f} MiB", flush=True)
        peaks.append(timing.peak_rss_bytes)
    return peaks


if __name__ == "__main__":
    raise SystemExit(main())
