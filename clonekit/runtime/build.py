"""Build or name a preview service's image (``--build``, ``--image``), tag it, remove it when unused.

Images built for a preview are tagged ``clonekit-preview/PROJECT-PREVIEW-SERVICE:latest`` and
labelled ``clonekit.project``, ``clonekit.preview`` and ``clonekit.service``. The build uses
BuildKit when the engine's client has it (``docker buildx``), else the classic builder
(``DOCKER_BUILDKIT=0``), so it works on hosts where buildx is not installed. Build output is
logged (``clonekit.runtime.build``); a failed build raises ``PreviewError`` with its last lines.
Knows nothing of SQL or the store.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PreviewError
from .docker import DockerEngine, label_filters

log = logging.getLogger("clonekit.runtime.build")

TAG_REPOSITORY = "clonekit-preview"
BUILD_TAIL_LINES = 20
GIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class BuildInputs:
    """What an image is built from: a folder, its Dockerfile, build args and a target stage."""

    context: str  # absolute folder
    dockerfile: str | None = None  # relative to the context (or absolute); None: context/Dockerfile
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None


def preview_image_tag(project: str, preview: str, service: str) -> str:
    """The tag of ``service``'s image built for one preview (lowercase, as Docker requires)."""
    return f"{TAG_REPOSITORY}/{project}-{preview}-{service}".lower().replace("_", "-") + ":latest"


def buildkit_available(engine: DockerEngine) -> bool:
    """True when the docker client can build with BuildKit (the buildx plugin answers)."""
    try:
        done = subprocess.run([*engine.base_argv, "buildx", "version"], capture_output=True, timeout=30, env=engine.env)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def git_commit(folder: str | Path) -> str | None:
    """``git rev-parse HEAD`` of the folder when it is inside a Git work tree, else None."""
    try:
        done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def check_inputs(inputs: BuildInputs, what: str) -> list[str]:
    """Problems with a build's folder and Dockerfile (before any side effect); empty when fine."""
    folder = Path(inputs.context)
    if not folder.is_dir():
        return [f"{what}: build folder {folder} does not exist"]
    dockerfile = dockerfile_path(inputs)
    if not dockerfile.is_file():
        return [f"{what}: no Dockerfile at {dockerfile}"]
    return []


def dockerfile_path(inputs: BuildInputs) -> Path:
    if inputs.dockerfile is None:
        return Path(inputs.context) / "Dockerfile"
    path = Path(inputs.dockerfile)
    return path if path.is_absolute() else Path(inputs.context) / path


def build_image(engine: DockerEngine, inputs: BuildInputs, tag: str, labels: Mapping[str, str]) -> str:
    """Build ``inputs`` as ``tag`` (labelled); returns the image id. Streams the build output to the log."""
    argv = [*engine.base_argv, "build", "-t", tag, "-f", str(dockerfile_path(inputs))]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    for key, value in sorted(inputs.args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    if inputs.target:
        argv += ["--target", inputs.target]
    argv.append(inputs.context)
    env = dict(engine.env)
    if not buildkit_available(engine):
        env["DOCKER_BUILDKIT"] = "0"  # the classic builder: no buildx plugin on this host
    log.info("building %s from %s", tag, inputs.context)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                                errors="replace")
    except OSError as exc:
        raise PreviewError(f"cannot run the docker client to build {tag}: {exc.strerror}") from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        log.info("build %s: %s", tag, line)
        lines = (lines + [line])[-BUILD_TAIL_LINES:]
    code = proc.wait()
    if code != 0:
        tail = "\n".join(lines)
        raise PreviewError(f"building the image {tag} from {inputs.context} failed (exit {code}):\n{tail}",
                           hint=f"fix the Dockerfile, or try `docker build {inputs.context}` to see the whole output")
    found = engine.inspect("image", [tag])
    if not found:
        raise PreviewError(f"the build of {tag} finished but the engine has no such image")
    return str(found[0].get("Id") or "")


def check_image(engine: DockerEngine, ref: str, what: str) -> None:
    """A ``--image`` reference must be known to the engine, or pullable."""
    if engine.exists("image", ref):
        return
    engine.cli(["pull", ref], what=f"pull {ref} for {what}")


def remove_preview_images(engine: DockerEngine, labels: Mapping[str, str], *, prefix: tuple[str, ...]) -> list[str]:
    """Untag the images built for one preview (``labels``): an image whose id another tag or preview
    still uses stays; returns the tags removed."""
    ids = [i for i in engine.cli(["images", "-q", "--no-trunc", *label_filters(labels)], what="list preview images").split() if i]
    removed: list[str] = []
    for image in engine.inspect("image", sorted(set(ids))):
        for tag in image.get("RepoTags") or []:
            if not tag.startswith(prefix):
                continue
            try:
                engine.cli(["image", "rm", tag], what=f"remove image {tag}")
                removed.append(tag)
            except PreviewError as exc:  # a container of another preview runs it: it stays
                log.info("image %s kept: %s", tag, exc.message)
    return removed
