"""What the preview and golden use cases do to one service's container beyond the adapter: which
image it runs, that image's configuration, and a command run inside it with bytes on its stdin
(how ``clonekit.db.target`` reaches the database server's root over its unix socket)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import PreviewError
from .docker import DockerEngine

log = logging.getLogger("clonekit.runtime")


def resolve_image(engine: DockerEngine, service: Mapping[str, Any]) -> str:
    """The captured image as the preview engine knows it: the tag when it is the same image, else the digest."""
    image = service.get("image") or ""
    image_id = service.get("image_id") or ""
    found = engine.inspect("image", [image]) if image else []
    if found and (not image_id or found[0].get("Id") == image_id):
        return image
    for digest in service.get("repo_digests") or []:
        return digest
    if image_id and engine.exists("image", image_id):
        log.warning("image %s changed since the snapshot; using the snapshot's image id", image)
        return image_id
    return image


def image_config(engine: DockerEngine, image: str) -> dict[str, Any]:
    """The ``Config`` of ``image`` (volumes, entrypoint, command, user) as the engine reports it."""
    found = engine.inspect("image", [image])
    if not found:
        raise PreviewError(f"image {image} is not on the preview host",
                           hint="build or pull it there (scripts/images.sh builds the local ones)")
    return found[0].get("Config") or {}


def in_container(engine: DockerEngine, container: str, *, what: str) -> Callable[[list[str], bytes], object]:
    """``run(argv, stdin)`` inside ``container`` (for ``clonekit.db.target.run_as_root``)."""
    return lambda argv, stdin: engine.exec(container, argv, input=stdin, what=what)
