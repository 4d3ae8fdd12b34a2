"""Fixtures for the preview runtime tests: the local images and throwaway compose projects."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX_IMAGE = "clonekit/busybox:latest"
MARIADB_IMAGE = "clonekit/mariadb:10.11"


@pytest.fixture(scope="session")
def busybox_image(docker) -> str:
    """The local images (scripts/images.sh builds what is missing; idempotent, one builder at a time)."""
    if not (docker.image.exists(BUSYBOX_IMAGE) and docker.image.exists(MARIADB_IMAGE)):
        subprocess.run([str(ROOT / "scripts" / "images.sh"), "busybox", "mariadb"], check=True)
    return BUSYBOX_IMAGE


@pytest.fixture
def compose_project(docker, tmp_path) -> Iterator[tuple[str, Path]]:
    """A fresh compose project name (cktest-...) and a folder for its compose file; taken down afterwards."""
    name = f"cktest-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    try:
        yield name, folder
    finally:
        compose_file = folder / "compose.yml"
        if compose_file.exists():
            subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", name, "down", "-v", "--remove-orphans",
                            "-t", "0"], capture_output=True)
