"""Fixtures for the preview runtime tests: the local busybox image and throwaway compose projects."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BUSYBOX_IMAGE = "clonekit/busybox:latest"


def _build_busybox_image() -> None:
    """The same recipe as scripts/images.sh: a static busybox with every applet linked."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        with tarfile.open(tar_path, "w") as tar:
            for folder in ("bin", "tmp", "etc", "root", "var", "var/www", "dst"):
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                info.mode = 0o1777 if folder == "tmp" else 0o755
                tar.addfile(info)
            tar.add(busybox, "bin/busybox")
            for applet in applets:
                if applet != "busybox":
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type = tarfile.SYMTYPE
                    link.linkname = "busybox"
                    tar.addfile(link)
        subprocess.run(
            ["docker", "import", "-c", "ENV PATH=/bin", "-c", 'CMD ["sh"]', str(tar_path), BUSYBOX_IMAGE],
            check=True, capture_output=True,
        )


@pytest.fixture(scope="session")
def busybox_image(docker) -> str:
    if not docker.image.exists(BUSYBOX_IMAGE):
        _build_busybox_image()
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
            subprocess.run(
                ["docker", "compose", "-f", str(compose_file), "-p", name, "down", "-v", "-t", "0"],
                capture_output=True, env={**os.environ},
            )
