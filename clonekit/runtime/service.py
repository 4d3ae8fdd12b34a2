"""What the preview and golden use cases do to one service's container beyond the adapter: which
image it runs, that image's configuration, and SQL run as the database server's root over its
unix socket inside the container (the SQL itself comes from ``clonekit.db.target``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..db.target import ROOT_CLIENT, root_client_input
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


def exec_root_sql(engine: DockerEngine, container: str, root_password: str, sql: bytes, *, what: str) -> None:
    """SQL as the server's root over its unix socket, inside the container. The password is the
    first line of stdin (never argv); a socket-authenticated root ignores it."""
    engine.exec(container, ["sh", "-c", ROOT_CLIENT], input=root_client_input(root_password, sql), what=what)
