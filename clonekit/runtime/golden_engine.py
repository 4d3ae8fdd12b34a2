"""Docker operations only the golden path needs: commit, copy a tar stream into a container, images.

Kept beside ``docker.py`` (not in it, so that adapter stays as it is) and built on its
``DockerEngine``: every call goes through the same docker CLI and error mapping.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from .docker import DockerEngine, label_filters, stderr_tail

READ_CHUNK_BYTES = 1 << 20
log = logging.getLogger("clonekit.runtime.golden_engine")


def images(engine: DockerEngine, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Inspect JSON of every image carrying all of ``labels``."""
    ids = sorted(set(engine.cli(["images", "-q", "--no-trunc", *label_filters(labels)], what="list images").split()))
    return engine.json(["image", "inspect", *ids], what="inspect images") if ids else []


def containers_using(engine: DockerEngine, image: str) -> list[str]:
    """Containers (running or not) created from ``image`` or from an image built on it."""
    return [line for line in engine.cli(["ps", "-aq", "--no-trunc", "--filter", f"ancestor={image}"],
                                        what=f"list containers of {image}").split() if line]


def containers_with_volume(engine: DockerEngine, volume: str) -> list[str]:
    return [line for line in engine.cli(["ps", "-aq", "--no-trunc", "--filter", f"volume={volume}"],
                                        what=f"list containers of volume {volume}").split() if line]


def remove_image(engine: DockerEngine, image: str) -> None:
    engine.cli(["image", "rm", image], what=f"remove image {image}")


def commit(engine: DockerEngine, container: str, image: str, changes: Sequence[str]) -> str:
    """``docker commit`` (container stopped: no pause needed); returns the image id."""
    args = ["commit"]
    for change in changes:
        args += ["--change", change]
    return engine.cli([*args, container, image], what=f"commit {image}").strip()


def copy_into(engine: DockerEngine, container: str, dest: str, tar_chunks: Iterable[bytes]) -> int:
    """Extract a tar stream into ``dest`` (an existing folder) of a container; keeps owners and modes."""
    argv = [*engine.base_argv, "cp", "-", f"{container}:{dest}"]
    return engine.stream_into(argv, tar_chunks, what=f"copy a file tree into {dest}")


def copy_volume(engine: DockerEngine, source: str, target: str, *, image: str, volume_labels: Mapping[str, str]) -> None:
    """A preview's own copy of a golden volume, made inside the engine (no bytes cross the client)."""
    engine.create_volume(target, volume_labels)
    args = ["run", "--rm", "--network", "none", "-v", f"{source}:/src:ro", "-v", f"{target}:/dst"]
    for key, value in volume_labels.items():
        args += ["--label", f"{key}={value}"]
    engine.cli([*args, image, "sh", "-c", "cp -a /src/. /dst/"], what=f"copy golden volume {source}")


def copy_out(engine: DockerEngine, container: str, folder: str) -> Iterator[bytes]:
    """The tar stream of what ``folder`` holds in a container (running or stopped), entries ``./...``:
    ``copy_into`` another container's folder writes the same tree there, owners and modes kept."""
    argv = [*engine.base_argv, "cp", f"{container}:{folder.rstrip('/')}/.", "-"]
    what = f"copy {folder} out of container {container[:12]}"
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=engine.env)
    except OSError as exc:
        raise engine.error(f"cannot run the docker client to {what}: {exc.strerror}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    finished = False
    try:
        while chunk := proc.stdout.read(READ_CHUNK_BYTES):
            yield chunk
        finished = True
    finally:
        if not finished:  # the reader stopped early: nothing more is wanted
            proc.kill()
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.stderr.close()
        code = proc.wait()
    if code != 0:
        raise engine.error(f"{what} failed (exit {code}): {stderr_tail(stderr)}")


def replace_volume_content(engine: DockerEngine, source: str, target: str, *, image: str,
                           labels: Mapping[str, str]) -> None:
    """Make volume ``target`` hold exactly what volume ``source`` holds, inside the engine."""
    args = ["run", "--rm", "--network", "none", "-v", f"{source}:/src:ro", "-v", f"{target}:/dst"]
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    script = "cd /dst && rm -rf -- * .[!.]* ..?* && cp -a /src/. /dst/"
    engine.cli([*args, image, "sh", "-c", script], what=f"copy volume {source} into {target}")


# Opens each file named after it for appending (writes nothing: content and times stay), when it
# is there: overlayfs copies a file of the image's layers into the container's own layer when it
# is first opened for writing.
COPY_UP_SCRIPT = 'for f in "$@"; do if [ -f "$f" ]; then : >> "$f"; fi; done'


def copy_up(engine: DockerEngine, container: str, paths: Sequence[str]) -> None:
    """Have overlayfs copy ``paths`` (files of the image) into the running ``container``'s own layer
    now, as a write to them would later (on ext4 a copy of the whole file: seconds for gigabytes;
    on XFS or btrfs a reflink). A clone of a golden copy does it while its server starts, for the
    table files its ``previews.replace`` writes. Errors are logged, not raised: it only moves work."""
    if not paths:
        return
    try:
        engine.exec(container, ["sh", "-c", COPY_UP_SCRIPT, "copy-up", *paths],
                    what=f"open {len(paths)} table file(s) in container {container[:12]}")
    except engine.error as exc:
        log.info("copy-up ahead of the rewrite skipped: %s", exc)


def layer_files(engine: DockerEngine, container: str) -> dict[str, int] | None:
    """The files in a container's own overlay layer (path inside the container: size), read from
    the engine's upper directory; None when that directory is not readable here (a remote engine,
    another storage driver, no permission). ``docker container diff`` leaves out a file that
    overlayfs copied up unchanged: an InnoDB table file opened read-write, i.e. any table read."""
    info = engine.json(["container", "inspect", container], what=f"inspect container {container[:12]}")[0]
    upper = ((info.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir") or ""
    if not engine.is_local or not upper or not os.access(upper, os.R_OK | os.X_OK):
        return None
    out: dict[str, int] = {}
    for folder, _dirs, files in os.walk(upper):
        for name in files:
            path = os.path.join(folder, name)
            try:
                out["/" + os.path.relpath(path, upper)] = os.lstat(path).st_size
            except OSError:
                continue  # removed meanwhile
    return out
