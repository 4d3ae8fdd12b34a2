"""Files benchmark: clonekit vs restic and rsync on the same uploads tree, side by side.

    RESTIC_PASSWORD=bench python3 -m benchmarks.files_bench --scale small

1. first capture (local) vs ``restic backup`` into a local repository;
2. second capture after 1% of the files changed vs ``restic backup`` again, plus the bytes each stored;
3. restore vs ``restic restore`` and ``rsync -a`` (a plain local copy);
4. capture over SSH (loopback sshd) vs ``rsync -a -e ssh``, first and after the 1% change.

Needs the services (sshd on 2222) from ./scripts/services.sh; the tree is generated once per scale.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Timing, proc_rss_bytes, time_command, time_function
from benchmarks.uploads_tree import change_files, generate
from clonekit.config import FileSource, SshTarget, StoreConfig
from clonekit.files import capture_files, restore_files
from clonekit.memory import give_back_free_memory
from clonekit.repository import Repository
from clonekit.transport.ssh import SshSession

WORK = Path(os.environ.get("CLONEKIT_BENCH_DIR", "/var/tmp/ck-files-bench"))
SERVICES_ENV = Path(os.environ.get("CLONEKIT_SERVICES_DIR", "/var/tmp/clonekit-services")) / "services.env"


def _du(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, n)).st_size for d, _, names in os.walk(path) for n in names)


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _ssh_target() -> SshTarget:
    env = dict(line.split("=", 1) for line in SERVICES_ENV.read_text().split() if "=" in line)
    return SshTarget(
        host=env["CLONEKIT_TEST_SSH_HOST"], user=env["CLONEKIT_TEST_SSH_USER"], port=int(env["CLONEKIT_TEST_SSH_PORT"]),
        known_hosts=env["CLONEKIT_TEST_SSH_KNOWN_HOSTS"], key_file=env["CLONEKIT_TEST_SSH_KEY"],
    )


def _capture(repo: Repository, root: Path, *, ssh: Any = None, previous: Any = None) -> tuple[dict, Any]:
    with repo.writer() as writer:
        section = capture_files(FileSource(str(root)), writer, ssh=ssh, previous=previous, store=repo)
    return section, writer.stats


CPU: dict[str, float] = {}  # name -> CPU seconds of the last measurement (ours: all our threads; tools: children)
# name -> (RSS of this process when that clonekit phase started: the earlier phases' results
# included; its peak RSS during the phase), the highest of each over repeats
MEMORY: dict[str, tuple[int, int]] = {}


def _ours(name: str, fn: Any) -> Timing:
    # Each phase is a command of its own for a user (snapshot, clone): what an earlier phase left
    # in malloc's arenas is handed back first, as snapshot does between its phases (memory.py).
    gc.collect()
    give_back_free_memory()
    resident = proc_rss_bytes(os.getpid())
    started = time.process_time()
    timing = time_function(name, fn)
    CPU[name] = time.process_time() - started
    before = MEMORY.get(name, (0, 0))
    MEMORY[name] = (max(before[0], resident), max(before[1], timing.peak_rss_bytes))
    return timing


def _tool(name: str, argv: list[str]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    timing = time_command(name, argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[name] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return timing


def _restic(repo: Path, *args: str, name: str) -> Timing:
    return _tool(name, ["restic", "-r", str(repo), "--quiet", *args])


def _same_tree(a: Path, b: Path) -> bool:
    return subprocess.run(["diff", "-r", "-q", "--no-dereference", str(a), str(b)],
                          stdout=subprocess.DEVNULL).returncode == 0


def run_once(scale: str) -> dict[str, Any]:
    """One pass of every comparison on a freshly generated tree; returns seconds and bytes."""
    src = WORK / f"src-{scale}"
    shutil.rmtree(src, ignore_errors=True)  # the 1% changes dirty it: regenerate every pass
    tree = generate(src, scale)
    time_command("warm the page cache", ["tar", "-cf", "/dev/null", "-C", str(src), "."])
    out: dict[str, Any] = {**tree}

    # 1. first capture
    ck_store, restic_repo = _fresh(WORK / "ck-store"), _fresh(WORK / "restic-repo")
    repo = Repository.open(StoreConfig(url=str(ck_store)))
    time_command("restic init", ["restic", "-r", str(restic_repo), "--quiet", "init"])
    ours = _ours("clonekit capture", lambda: _capture(repo, src))
    first = ours.result[0]
    anchor = _restic(restic_repo, "backup", str(src), name="restic backup")
    out["first"] = (ours.seconds, anchor.seconds)
    out["cpu_first"] = (CPU["clonekit capture"], CPU["restic backup"])
    out["stored1"] = (_du(ck_store), _du(restic_repo))

    # 2. second capture after a 1% change
    change = change_files(src, 0.01)
    ours = _ours("clonekit capture 2", lambda: _capture(repo, src, previous=first))
    second = ours.result[0]
    anchor = _restic(restic_repo, "backup", str(src), name="restic backup 2")
    out["second"] = (ours.seconds, anchor.seconds)
    out["cpu_second"] = (CPU["clonekit capture 2"], CPU["restic backup 2"])
    out["stored2"] = (_du(ck_store) - out["stored1"][0], _du(restic_repo) - out["stored1"][1])
    out["changed"] = change
    out["reread"] = second["read_files"]

    # 3. restore
    out_ours, out_restic, out_rsync = _fresh(WORK / "out-ours"), _fresh(WORK / "out-restic"), _fresh(WORK / "out-rsync")
    restore_repo = Repository.open(StoreConfig(url=str(ck_store)))  # a fresh object: nothing cached
    ours = _ours("clonekit restore", lambda: restore_files(restore_repo, second, out_ours))
    anchor = _restic(restic_repo, "restore", "latest", "--target", str(out_restic), name="restic restore")
    rsync = _tool("rsync -a", ["rsync", "-a", f"{src}/", f"{out_rsync}/"])
    out["restore"] = (ours.seconds, anchor.seconds, rsync.seconds)
    out["cpu_restore"] = (CPU["clonekit restore"], CPU["restic restore"], CPU["rsync -a"])
    out["exact"] = _same_tree(src, out_ours)

    # 4. over SSH: full, then after another 1% change
    target = _ssh_target()
    ssh_store, rsync_dest = _fresh(WORK / "ck-store-ssh"), _fresh(WORK / "out-rsync-ssh")
    ssh_repo = Repository.open(StoreConfig(url=str(ssh_store)))
    rsync_ssh = ["rsync", "-a", "-e",
                 f"ssh -p {target.port} -i {target.key_file} -o UserKnownHostsFile={target.known_hosts} "
                 "-o StrictHostKeyChecking=yes -o BatchMode=yes",
                 f"{target.user}@{target.host}:{src}/", f"{rsync_dest}/"]
    with SshSession.connect(target) as ssh:
        ours = _ours("clonekit capture over SSH", lambda: _capture(ssh_repo, src, ssh=ssh))
        anchor = _tool("rsync -a -e ssh", rsync_ssh)
        out["ssh_first"] = (ours.seconds, anchor.seconds)
        out["cpu_ssh_first"] = (CPU["clonekit capture over SSH"], CPU["rsync -a -e ssh"])
        change_files(src, 0.01, seed=12)
        ours = _ours("clonekit capture 2 over SSH",
                     lambda: _capture(ssh_repo, src, ssh=ssh, previous=ours.result[0]))
        anchor = _tool("rsync -a -e ssh (again)", rsync_ssh)
        out["ssh_second"] = (ours.seconds, anchor.seconds)
        out["cpu_ssh_second"] = (CPU["clonekit capture 2 over SSH"], CPU["rsync -a -e ssh (again)"])
    for path in (out_ours, out_restic, out_rsync, rsync_dest):
        shutil.rmtree(path, ignore_errors=True)
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--repeat", type=int, default=3, help="passes; the median of each figure is reported")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("RESTIC_PASSWORD", "clonekit-bench")
    for tool in ("restic", "rsync", "tar"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y {tool}")
    passes = []
    for number in range(1, args.repeat + 1):
        passes.append(run_once(args.scale))
        print(f"pass {number}/{args.repeat}: " + json.dumps({k: v for k, v in passes[-1].items()
                                                              if k not in ("files", "bytes")}), flush=True)
    first = passes[0]
    print(f"uploads tree ({args.scale}): {first['files']} files, {first['bytes'] / 2**20:.0f} MiB; "
          f"median of {len(passes)} passes (seconds)")

    def figure(key: str, index: int) -> float:
        return _median([p[key][index] for p in passes])

    def ratio_line(name: str, ours: float, anchor: float, key: str = "", index: int = 1) -> str:
        # the median of the per-pass ratios: each pass runs both tools back to back, under the same load
        ratio = _median([p[key][0] / p[key][index] for p in passes])
        return f"{name}: {ours:.2f} s vs anchor {anchor:.2f} s (medians), ratio {ratio:.2f}"

    lines = [
        ratio_line("first capture vs restic backup", figure("first", 0), figure("first", 1), "first"),
        ratio_line(f"second capture ({first['changed']['files']} files changed) vs restic backup",
                   figure("second", 0), figure("second", 1), "second"),
        ratio_line("restore vs restic restore", figure("restore", 0), figure("restore", 1), "restore"),
        ratio_line("restore vs rsync -a (local copy)", figure("restore", 0), figure("restore", 2), "restore", 2),
        ratio_line("capture over SSH vs rsync -a -e ssh", figure("ssh_first", 0), figure("ssh_first", 1),
                   "ssh_first"),
        ratio_line("capture over SSH after a 1% change vs rsync -a -e ssh again",
                   figure("ssh_second", 0), figure("ssh_second", 1), "ssh_second"),
    ]
    for key, label, index in (("cpu_first", "first capture vs restic", 1), ("cpu_second", "second capture vs restic", 1),
                              ("cpu_restore", "restore vs restic", 1), ("cpu_restore", "restore vs rsync", 2),
                              ("cpu_ssh_first", "capture over SSH vs rsync (client side)", 1),
                              ("cpu_ssh_second", "capture over SSH after 1% vs rsync (client side)", 1)):
        lines.append(f"CPU seconds, {label}: {figure(key, 0):.2f} vs {figure(key, index):.2f}, "
                     f"ratio {_median([p[key][0] / max(p[key][index], 1e-3) for p in passes]):.2f}")
    lines.append(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ours1, restic1 = first["stored1"]
    ours2, restic2 = first["stored2"]
    lines.append(f"bytes stored by the second capture: clonekit {ours2 / 2**20:.1f} MiB = {ours2 / ours1:.2%} of the "
                 f"first ({ours1 / 2**20:.0f} MiB); restic {restic2 / 2**20:.1f} MiB = {restic2 / restic1:.2%} of "
                 f"{restic1 / 2**20:.0f} MiB; bytes changed {first['changed']['bytes'] / 2**20:.1f} MiB; "
                 f"files re-read {first['reread']}")
    lines.append(f"restored trees identical to the source: {all(p['exact'] for p in passes)}")
    # One process runs every phase in turn and keeps each one's result (a section of every file):
    # a phase's peak includes them. What it started from is printed beside it.
    lines.append("peak RSS of this process during each clonekit phase (resident when it started): "
                 + ", ".join(f"{name} {peak / 2**20:.0f} MiB ({resident / 2**20:.0f})"
                             for name, (resident, peak) in MEMORY.items()))
    for line in lines:
        print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"scale": args.scale, "passes": passes, "lines": lines}, indent=2))


if __name__ == "__main__":
    main()
