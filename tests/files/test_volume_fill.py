"""Filling a preview's volume on the real local engine: straight into the volume's folder when
clonekit may (local engine, root), as a tar stream the engine unpacks (``docker cp``) otherwise;
the same tree either way, and the direct way refuses every volume whose folder is not what
containers see."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from clonekit.manifest import canonical_json
from clonekit.preview import fill_volume
from clonekit.runtime.docker import HELPER_IMAGE, DockerEngine

ROOT = Path(__file__).resolve().parents[2]
WWW_DATA = 33


@pytest.fixture(scope="module")
def helper_image(docker) -> str:
    if not docker.image.exists(HELPER_IMAGE):
        subprocess.run([str(ROOT / "scripts" / "images.sh"), "busybox"], check=True)
    return HELPER_IMAGE


@pytest.fixture
def volumes():
    """Names of throwaway volumes, removed at the end."""
    made: list[str] = []

    def new() -> str:
        made.append(f"cktest-fill-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield new
    subprocess.run(["docker", "volume", "rm", "-f", *made], capture_output=True)


def _give_owners(tree: Path) -> Path:
    """The awkward tree with owners a web server's files have (www-data, a deploy user)."""
    for path in (tree / "exec.sh", tree / "hl" / "a", tree / "big.bin", tree / "dir-\udcff" / "inner"):
        os.lchown(path, WWW_DATA, WWW_DATA)
    os.lchown(tree / "link-dangling", 1000, 1001)
    os.lchown(tree / "empty", 1000, 1001)
    os.lchown(tree, WWW_DATA, WWW_DATA)
    return tree


def _captured(repo, tree: Path):
    from clonekit.config import FileSource
    from clonekit.files import capture_files

    with repo.writer() as writer:
        return json.loads(canonical_json(capture_files(FileSource(str(tree)), writer)))


def _fill(engine: DockerEngine, name: str, repo, section, monkeypatch, mode: str) -> None:
    monkeypatch.setenv("CLONEKIT_VOLUME_FILL", mode)
    since = time.time()
    engine.create_volume(name, {"clonekit.test": "fill"})
    fill_volume(engine, name, repo, section, task="files", progress=lambda *a, **k: None, image=HELPER_IMAGE,
                labels={"clonekit.test": "fill"}, created_since=since)


def _labelled_containers() -> list[str]:
    return subprocess.run(["docker", "ps", "-aq", "--filter", "label=clonekit.test=fill"],
                          check=True, capture_output=True, text=True).stdout.split()


def _mountpoint(engine: DockerEngine, name: str) -> Path:
    return Path(engine.inspect("volume", [name])[0]["Mountpoint"])


def test_direct_fill_is_exact_and_what_containers_see(docker, helper_image, repo, awkward_tree, describe_tree, volumes,
                                                       monkeypatch):
    assert os.geteuid() == 0, "the direct fill needs root: the test machine runs the suite as root"
    tree = _give_owners(awkward_tree)
    section = _captured(repo, tree)
    engine = DockerEngine()
    streamed: list[str] = []
    original = DockerEngine.fill_volume
    monkeypatch.setattr(DockerEngine, "fill_volume",
                        lambda self, volume, *a, **k: streamed.append(volume) or original(self, volume, *a, **k))

    direct = volumes()
    _fill(engine, direct, repo, section, monkeypatch, "auto")
    assert streamed == []  # written into the folder, no container
    folder = _mountpoint(engine, direct)
    expected, got = describe_tree(tree), describe_tree(folder)
    assert sorted(got) == sorted(expected)
    for key in expected:  # contents, modes, owners, mtimes to the nanosecond, hard links, symlinks
        assert got[key] == expected[key], key
    seen = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{direct}:/v:ro", helper_image,
                           "sh", "-c", "stat -c '%u:%g %a' /v /v/exec.sh /v/setuid && cat /v/hl-c | wc -c"],
                          check=True, capture_output=True, text=True).stdout.split("\n")
    assert seen[:3] == ["33:33 755", "33:33 755", "0:0 4750"]
    assert int(seen[3]) == len(b"shared inode" * 100)

    stream = volumes()
    _fill(engine, stream, repo, section, monkeypatch, "stream")
    assert streamed == [stream]
    through_tar = describe_tree(_mountpoint(engine, stream))
    assert sorted(through_tar) == sorted(expected)
    for key in expected:  # the engine unpacks the stream: the same tree, times to the nanosecond
        assert through_tar[key] == expected[key], key
    assert _labelled_containers() == []  # the container that filled it is gone
    for volume in (direct, stream):  # the volume's own folder belongs to the tree's owner (an app writes there)
        made = _mountpoint(engine, volume).stat()
        assert (made.st_uid, made.st_gid, made.st_mode & 0o7777) == (WWW_DATA, WWW_DATA, tree.stat().st_mode & 0o7777), volume


def test_direct_fill_refuses_folders_containers_would_not_see(docker, helper_image, volumes, monkeypatch):
    engine = DockerEngine()
    fresh = volumes()
    since = time.time()
    engine.create_volume(fresh, {})
    assert engine.host_volume_folder(fresh, created_since=since) == _mountpoint(engine, fresh)
    # made before the run asked: another engine's folder of the same name, or not made by this run
    assert engine.host_volume_folder(fresh, created_since=since + 60) is None
    monkeypatch.setenv("CLONEKIT_VOLUME_FILL", "stream")
    assert engine.host_volume_folder(fresh, created_since=since) is None
    monkeypatch.delenv("CLONEKIT_VOLUME_FILL")
    # not empty
    used = volumes()
    since = time.time()
    engine.create_volume(used, {})
    subprocess.run(["docker", "run", "--rm", "-v", f"{used}:/v", HELPER_IMAGE, "touch", "/v/x"], check=True)
    assert engine.host_volume_folder(used, created_since=since) is None
    # a volume with driver options is mounted only while a container uses it: its folder is not it
    mounted = volumes()
    since = time.time()
    subprocess.run(["docker", "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m",
                    mounted], check=True, capture_output=True)
    assert engine.host_volume_folder(mounted, created_since=since) is None
    assert engine.host_volume_folder(f"cktest-missing-{uuid.uuid4().hex[:6]}", created_since=since) is None
    # a remote engine: its folders are not on this machine
    assert DockerEngine("ssh://nobody@192.0.2.1").host_volume_folder(fresh, created_since=0) is None
