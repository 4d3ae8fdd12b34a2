"""A preview's code: which services run a branch's image instead of production's.

``--build SERVICE=PATH[:DOCKERFILE]`` builds the service's image from a folder, ``--image
SERVICE=REF`` runs a reference as is, ``--mount SERVICE=HOST:CONTAINER`` bind-mounts a live working
tree into the service (local engine only), ``previews.services`` in clonekit.yml does any of them
for every preview (the flags win). What each preview runs is recorded in ``code.json`` of its folder (the
build inputs, the Git commit of the folder when it is a repository, the image reference), so
``refresh`` (data) keeps it and ``refresh --code`` rebuilds from it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import Config, ServiceCode
from ..errors import PreviewError, UsageError
from ..runtime import build as rb
from ..runtime.docker import DockerEngine
from ..runtime.swarm import Swarm, own_image_of, registry_ref

log = logging.getLogger("clonekit.previews.code")

CODE_FILE = "code.json"


@dataclass(frozen=True)
class CodeOverride:
    """One overridden service of a preview, as recorded and shown by ``clonekit list``."""

    service: str
    origin: str  # "build" | "image" | "mount" (production's image, a live working tree mounted in it)
    image: str  # what the service runs: the preview's tag, or the reference given ("" for "mount")
    context: str | None = None  # build folder
    dockerfile: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    commit: str | None = None  # git rev-parse HEAD of the build folder, when it is a repository
    image_id: str | None = None
    mounts: Mapping[str, str] = field(default_factory=dict)  # live working trees: host folder -> container path

    def describe(self) -> str:
        live = ", ".join(f"{host} mounted at {target}" for host, target in sorted(self.mounts.items()))
        if self.origin == "mount":
            return f"{self.service}={live}"
        if self.origin == "image":
            text = f"{self.service}={self.image}"
        else:
            text = f"{self.service}={self.context or '?'}" + (f"@{self.commit[:12]}" if self.commit else "")
        return f"{text} ({live})" if live else text

    def inputs(self) -> rb.BuildInputs:
        assert self.context is not None
        return rb.BuildInputs(self.context, self.dockerfile, dict(self.args), self.target)


@dataclass(frozen=True)
class CodeRequest:
    """What the user asked for one service: build inputs or an image reference."""

    service: str
    build: rb.BuildInputs | None = None
    image: str | None = None
    mounts: Mapping[str, str] = field(default_factory=dict)  # host folder -> container path


def parse_build_flag(spec: str, cwd: Path | None = None) -> CodeRequest:
    """``SERVICE=PATH[:DOCKERFILE]`` → a build request (PATH relative to ``cwd``)."""
    service, sep, rest = spec.partition("=")
    if not sep or not service or not rest:
        raise UsageError(f"--build {spec!r}: expected SERVICE=PATH or SERVICE=PATH:DOCKERFILE (e.g. app=.)")
    path, _, dockerfile = rest.partition(":")
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        folder = ((cwd or Path.cwd()) / folder).resolve()
    return CodeRequest(service, build=rb.BuildInputs(str(folder), dockerfile or None))


def parse_image_flag(spec: str) -> CodeRequest:
    """``SERVICE=REF`` → an image request."""
    service, sep, ref = spec.partition("=")
    if not sep or not service or not ref:
        raise UsageError(f"--image {spec!r}: expected SERVICE=REF (e.g. app=registry.example.com/news/app:main)")
    return CodeRequest(service, image=ref)


def parse_mount_flag(spec: str, cwd: Path | None = None) -> CodeRequest:
    """``SERVICE=HOST:CONTAINER`` → a live working tree (HOST relative to ``cwd``)."""
    service, sep, rest = spec.partition("=")
    host, colon, target = rest.rpartition(":")
    if not sep or not service or not colon or not host or not target.startswith("/"):
        raise UsageError(f"--mount {spec!r}: expected SERVICE=HOST_FOLDER:/path/in/container (e.g. app=.:/var/www/html)")
    folder = Path(host).expanduser()
    if not folder.is_absolute():
        folder = ((cwd or Path.cwd()) / folder).resolve()
    return CodeRequest(service, mounts={str(folder): target.rstrip("/") or "/"})


def from_config(services: Mapping[str, ServiceCode]) -> list[CodeRequest]:
    out = []
    for name, spec in services.items():
        mounts = dict(spec.mounts)
        if spec.build is not None:
            b = spec.build
            out.append(CodeRequest(name, build=rb.BuildInputs(b.context, b.dockerfile, dict(b.args), b.target), mounts=mounts))
        else:
            out.append(CodeRequest(name, image=spec.image, mounts=mounts))
    return out


def merge_requests(configured: Sequence[CodeRequest], flags: Sequence[CodeRequest]) -> list[CodeRequest]:
    """previews.services, then the flags: the flags of a service replace its configured override
    (a --mount and a --build/--image of one service go together)."""
    by_service = {r.service: r for r in configured}
    given: dict[str, CodeRequest] = {}
    for request in flags:
        before = given.get(request.service)
        if before is not None:
            if (before.build or before.image) and (request.build or request.image):
                raise UsageError(f"service {request.service!r} is given twice in --build/--image")
            request = CodeRequest(request.service, build=before.build or request.build,
                                  image=before.image or request.image, mounts={**before.mounts, **request.mounts})
        given[request.service] = request
    by_service.update(given)
    return [by_service[s] for s in sorted(by_service)]


def check_requests(requests: Sequence[CodeRequest], services: Mapping[str, Any], *, db_service: str,
                   config: Config | None = None) -> None:
    """Every problem at once, before any side effect: unknown services, missing folders/Dockerfiles,
    live working trees that are missing, on a remote engine, or that would show clonekit's store."""
    problems: list[str] = []
    known = ", ".join(sorted(services)) or "none"
    for r in requests:
        what = f"--build/--image/--mount {r.service}"
        if config is not None:
            problems += check_mounts(config, r)
        if r.service not in services:
            problems.append(f"{what}: the snapshot has no service {r.service!r} (services: {known})")
        elif r.service == db_service:
            problems.append(f"{what}: {r.service!r} is the database service; its image holds the data")
        if r.build is not None:
            problems += rb.check_inputs(r.build, what)
    if problems:
        raise UsageError("cannot override the preview's code", problems=problems)


def _local_store(config: Config) -> Path | None:
    url = config.store.url
    if config.store.is_s3:
        return None
    return Path(url[len("file://"):] if url.startswith("file://") else url).resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_mounts(config: Config, request: CodeRequest) -> list[str]:
    """A live working tree: a folder of this machine, a local engine, not clonekit's store or state."""
    problems: list[str] = []
    host = config.previews.docker_host
    for folder, target in request.mounts.items():
        what = f"the live working tree {folder} of service {request.service} ({target})"
        path = Path(folder)
        if host and not host.startswith("unix://"):
            problems.append(f"{what}: a bind mount needs the local Docker engine (previews.docker_host is {host}); "
                            "use --build on a remote engine")
        if not path.is_dir():
            problems.append(f"{what}: no such folder")
        for name, private in (("store", _local_store(config)), ("state folder", config.state_dir.resolve())):
            if private is not None and _inside(path.resolve(), private):
                problems.append(f"{what}: it is inside clonekit's {name} {private}; mount the application's folder")
    return problems


def hidden_paths(config: Config, mounts: Mapping[str, str]) -> list[str]:
    """Container paths where clonekit's store or state folder would show through a live working
    tree (the project folder usually holds ``.clonekit``): an empty tmpfs covers each."""
    out: list[str] = []
    for folder, target in mounts.items():
        root = Path(folder).resolve()
        for private in (_local_store(config), config.state_dir.resolve()):
            if private is not None and root in private.parents:
                out.append(f"{target.rstrip('/')}/{private.relative_to(root)}")
    return sorted({p for p in out if not any(p.startswith(other + "/") for other in out)})  # (the store is often in the state folder)


def prepare(config: Config, engine: DockerEngine, name: str, requests: Sequence[CodeRequest],
            progress: Any = None) -> tuple[CodeOverride, ...]:
    """Build (or check) every requested image; returns what the preview will run."""
    out: list[CodeOverride] = []
    for r in requests:
        if progress is not None:
            progress(f"code {r.service}", total=None)
        if r.build is None and r.image is None:
            out.append(CodeOverride(r.service, "mount", "", commit=rb.git_commit(next(iter(r.mounts), ".")),
                                    mounts=dict(r.mounts)))
        elif r.build is not None:
            tag = rb.preview_image_tag(config.project, name, r.service)
            labels = {"clonekit.project": config.project, "clonekit.preview": name, "clonekit.service": r.service}
            image_id = rb.build_image(engine, r.build, tag, labels)
            out.append(CodeOverride(r.service, "build", tag, r.build.context, r.build.dockerfile, dict(r.build.args),
                                    r.build.target, rb.git_commit(r.build.context), image_id, mounts=dict(r.mounts)))
        else:
            assert r.image is not None
            rb.check_image(engine, r.image, f"service {r.service} of preview {name}")
            out.append(CodeOverride(r.service, "image", r.image, mounts=dict(r.mounts)))
    return tuple(out)


def rebuild(config: Config, engine: DockerEngine, name: str, recorded: Sequence[CodeOverride],
            flags: Sequence[CodeRequest], progress: Any = None) -> tuple[CodeOverride, ...]:
    """``refresh --code``: the recorded build inputs (or the new ones given), built/pulled again."""
    by_service: dict[str, CodeRequest] = {}
    for o in recorded:
        by_service[o.service] = CodeRequest(o.service, build=o.inputs() if o.origin == "build" else None,
                                            image=o.image if o.origin == "image" else None, mounts=dict(o.mounts))
    for r in flags:
        by_service[r.service] = r
    requests = [by_service[s] for s in sorted(by_service)]
    for r in requests:
        if r.image is not None:  # re-pull a moving tag; a local-only image stays as it is
            try:
                engine.cli(["pull", r.image], what=f"pull {r.image}")
            except PreviewError as exc:
                if not engine.exists("image", r.image):
                    raise
                log.info("kept the local image %s (pull failed: %s)", r.image, exc.message)
    return prepare(config, engine, name, requests, progress)


def apply(document: dict[str, Any], code: Sequence[CodeOverride], config: Config | None = None) -> None:
    """Point the overridden services of a preview's compose document at their images, and bind
    their live working trees (read-write; an entry of the same container path gives way; where
    clonekit's store or state folder is inside a tree, an empty read-only tmpfs covers it)."""
    hidden = hidden_paths(config, {h: t for o in code for h, t in o.mounts.items()}) if config is not None else []
    for override in code:
        spec = document["services"].get(override.service)
        if spec is None:
            raise PreviewError(f"service {override.service!r} is not in the preview's compose project")
        if override.image:
            spec["image"] = override.image
        if not override.mounts:
            continue
        targets = set(override.mounts.values())
        entries = [e for e in spec.get("volumes") or [] if _target_of(e) not in targets]
        spec["volumes"] = [*entries, *(f"{host}:{target}:rw" for host, target in sorted(override.mounts.items()))]
        covered = [path for path in hidden if any(path.startswith(t.rstrip("/") + "/") for t in targets)]
        if covered:
            spec["tmpfs"] = sorted({*spec.get("tmpfs", []), *(f"{path}:ro,size=4k" for path in covered)})  # (refresh --code: again)


def _target_of(entry: str) -> str:
    parts = entry.split(":")
    return (parts[1] if len(parts) > 1 else parts[0]).rstrip("/") or "/"


def without_overridden(document: dict[str, Any], code: Sequence[CodeOverride]) -> dict[str, Any]:
    """A view of a compose document without the overridden services (same service specs and
    volumes objects: changes made through the view are made to the document)."""
    skip = {o.service for o in code}
    return {**document, "services": {k: v for k, v in document["services"].items() if k not in skip}}


def save(folder: Path, code: Sequence[CodeOverride]) -> None:
    text = json.dumps([asdict(o) for o in code], indent=2, sort_keys=True)
    tmp = folder / (CODE_FILE + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / CODE_FILE)


def load(folder: Path) -> tuple[CodeOverride, ...]:
    """The recorded code of a preview (empty when it runs production's images)."""
    try:
        raw = json.loads((folder / CODE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as exc:
        raise PreviewError(f"cannot read {folder / CODE_FILE}: {exc}",
                           hint="`clonekit refresh NAME --code --build SERVICE=PATH` records it again") from exc
    try:
        return tuple(CodeOverride(**item) for item in raw)
    except TypeError as exc:
        raise PreviewError(f"{folder / CODE_FILE} is not a clonekit code record: {exc}") from exc


def _image_prefix(config: Config, name: str) -> str:
    """What the tags of every image built for preview ``name`` start with (any service)."""
    return rb.preview_image_tag(config.project, name, "x")[:-len("x:latest")]


def remove_images(config: Config, engine: DockerEngine, name: str, *, from_registry: bool = False) -> list[str]:
    """The images built for preview ``name`` (untagged; an image another preview uses stays);
    ``from_registry`` (the preview is gone, not moving to another node): the registry's copy too."""
    labels = {"clonekit.project": config.project, "clonekit.preview": name}
    prefix = _image_prefix(config, name)
    if not config.previews.registry:
        return rb.remove_preview_images(engine, labels, prefix=(prefix,))
    # On a swarm, also the copy pulled through the registry (and, with from_registry, the registry's own).
    removed = rb.remove_preview_images(engine, labels, prefix=(prefix, registry_ref(config.previews.registry, prefix)))
    if not from_registry:
        return removed
    swarm = Swarm(config.previews)
    for image in sorted({own for tag in removed if (own := own_image_of(config.previews.registry, tag))}):
        swarm.delete_from_registry(image)
    return removed


def delete_registry_images(config: Config, name: str, stack_file: Path) -> list[str]:
    """The registry's copies of the images built for preview ``name``, found in its stack file
    (its node is lost, so the node's own list cannot be read); the golden copies stay (`prune`)."""
    registry = config.previews.registry
    if not registry or not stack_file.exists():
        return []
    prefix = _image_prefix(config, name)
    stack = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    images = {own for spec in (stack.get("services") or {}).values()
              if (own := own_image_of(registry, str((spec or {}).get("image") or ""))) and own.startswith(prefix)}
    swarm = Swarm(config.previews)
    return [image for image in sorted(images) if swarm.delete_from_registry(image)]
