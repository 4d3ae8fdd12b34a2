"""Docker operations only the golden path needs: commit, copy a tar stream into a container, images.

Kept beside ``docker.py`` (not in it, so that adapter stays as it is) and built on its
``DockerEngine``: every call goes through the same docker CLI and error mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .docker import DockerEngine


def label_filters(labels: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in labels.items():
        out += ["--filter", f"label={key}={value}" if value else f"label={key}"]
    return out


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
