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
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import Timing, report, time_command, time_function
from benchmarks.uploads_tree import change_files, generate
from clonekit.config import FileSource, SshTarget, StoreConfig
from clonekit.files import capture_files, restore_files
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
        section = capture_files(FileSource(str(root)), writer, ssh=ssh, previous=previous)
    return section, writer.stats


def _restic(repo: Path, *args: str, name: str) -> Timing:
    return time_command(name, ["restic", "-r", str(repo), "--quiet", *args])


def _same_tree(a: Path, b: Path) -> bool:
    return subprocess.run(["diff", "-r", "-q", "--no-dereference", str(a), str(b)],
                          stdout=subprocess.DEVNULL).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    os.environ.setdefault("RESTIC_PASSWORD", "clonekit-bench")
    for tool in ("restic", "rsync", "tar"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y {tool}")

    src = WORK / f"src-{args.scale}"
    shutil.rmtree(src, ignore_errors=True)  # the 1% change below dirties it: regenerate every run
    tree = generate(src, args.scale)
    print(f"uploads tree ({args.scale}): {tree['files']} files, {tree['bytes'] / 2**20:.0f} MiB", flush=True)
    time_command("warm the page cache", ["tar", "-cf", "/dev/null", "-C", str(src), "."])
    figures: dict[str, Any] = {"scale": args.scale, **tree}

    # 1. first capture
    ck_store, restic_repo = _fresh(WORK / "ck-store"), _fresh(WORK / "restic-repo")
    repo = Repository.open(StoreConfig(url=str(ck_store)))
    time_command("restic init", ["restic", "-r", str(restic_repo), "--quiet", "init"])
    ours1 = time_function("clonekit capture", lambda: _capture(repo, src))
    first, first_stats = ours1.result
    anchor1 = _restic(restic_repo, "backup", str(src), name="restic backup")
    restic_bytes1 = _du(restic_repo)
    ck_bytes1 = _du(ck_store)
    figures["first_capture"] = {"ours_s": ours1.seconds, "restic_s": anchor1.seconds,
                                "line": report("first capture vs restic backup", ours1, anchor1),
                                "ours_stored": ck_bytes1, "restic_stored": restic_bytes1}

    # 2. second capture after a 1% change
    change = change_files(src, 0.01)
    ours2 = time_function("clonekit capture 2", lambda: _capture(repo, src, previous=first))
    second, second_stats = ours2.result
    anchor2 = _restic(restic_repo, "backup", str(src), name="restic backup 2")
    restic_new = _du(restic_repo) - restic_bytes1
    ck_new = _du(ck_store) - ck_bytes1
    line = report(f"second capture ({change['files']} files changed) vs restic backup", ours2, anchor2)
    stored = (f"  bytes stored by the second run: clonekit {ck_new / 2**20:.1f} MiB = {ck_new / ck_bytes1:.2%} of the "
              f"first; restic {restic_new / 2**20:.1f} MiB = {restic_new / restic_bytes1:.2%}; "
              f"changed bytes {change['bytes'] / 2**20:.1f} MiB; files re-read by clonekit {second['read_files']}")
    print(stored, flush=True)
    figures["second_capture"] = {"ours_s": ours2.seconds, "restic_s": anchor2.seconds, "line": line,
                                 "ours_new_stored": ck_new, "restic_new_stored": restic_new,
                                 "ours_new_ratio": ck_new / ck_bytes1, "restic_new_ratio": restic_new / restic_bytes1,
                                 "changed_bytes": change["bytes"], "files_reread": second["read_files"]}

    # 3. restore
    out_ours, out_restic, out_rsync = _fresh(WORK / "out-ours"), _fresh(WORK / "out-restic"), _fresh(WORK / "out-rsync")
    restore_repo = Repository.open(StoreConfig(url=str(ck_store)))  # a fresh object: nothing cached
    ours3 = time_function("clonekit restore", lambda: restore_files(restore_repo, second, out_ours))
    anchor3 = _restic(restic_repo, "restore", "latest", "--target", str(out_restic), name="restic restore")
    rsync3 = time_command("rsync -a", ["rsync", "-a", f"{src}/", f"{out_rsync}/"])
    figures["restore"] = {"ours_s": ours3.seconds, "restic_s": anchor3.seconds, "rsync_s": rsync3.seconds,
                          "line_restic": report("restore vs restic restore", ours3, anchor3),
                          "line_rsync": report("restore vs rsync -a (local copy)", ours3, rsync3),
                          "exact": _same_tree(src, out_ours)}
    print(f"  restored tree identical to the source: {figures['restore']['exact']}", flush=True)

    # 4. over SSH: full, then after another 1% change
    target = _ssh_target()
    ssh_store, rsync_dest = _fresh(WORK / "ck-store-ssh"), _fresh(WORK / "out-rsync-ssh")
    ssh_repo = Repository.open(StoreConfig(url=str(ssh_store)))
    rsync_ssh = ["rsync", "-a", "-e",
                 f"ssh -p {target.port} -i {target.key_file} -o UserKnownHostsFile={target.known_hosts} "
                 "-o StrictHostKeyChecking=yes -o BatchMode=yes",
                 f"{target.user}@{target.host}:{src}/", f"{rsync_dest}/"]
    with SshSession.connect(target) as ssh:
        ours4 = time_function("clonekit capture over SSH", lambda: _capture(ssh_repo, src, ssh=ssh))
        anchor4 = time_command("rsync -a -e ssh", rsync_ssh)
        change_files(src, 0.01, seed=12)
        ours5 = time_function("clonekit capture 2 over SSH", lambda: _capture(ssh_repo, src, ssh=ssh,
                                                                              previous=ours4.result[0]))
        anchor5 = time_command("rsync -a -e ssh (again)", rsync_ssh)
    figures["ssh_first"] = {"ours_s": ours4.seconds, "rsync_s": anchor4.seconds,
                            "line": report("capture over SSH vs rsync -a -e ssh", ours4, anchor4)}
    figures["ssh_second"] = {"ours_s": ours5.seconds, "rsync_s": anchor5.seconds,
                             "line": report("capture over SSH after 1% change vs rsync -a -e ssh again", ours5, anchor5)}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    for path in (out_ours, out_restic, out_rsync, rsync_dest):
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
