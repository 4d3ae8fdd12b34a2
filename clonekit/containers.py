"""Capture a source's compose project: per service what a preview needs to run it again.

Read-only on the source: only ``docker ps`` / ``docker inspect`` run there, on the local engine,
on ``containers.docker_host`` (``ssh://``, ``tcp://``) through python-on-whales, or through the
source's own SSH session when only ``ssh:`` is set. The inspect JSON is turned into the manifest's
``services`` section by a pure function. Values of secret-looking environment variables (and of
the names listed in ``containers.secret_env``) never leave that function: only
``{"name": X, "secret": true}`` is kept, and a preview gets a fresh random value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from .config import ContainersSource, SshTarget
from .errors import SourceError

SERVICES_FORMAT = 1
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_DEPENDS_LABEL = "com.docker.compose.depends_on"
COMPOSE_ONEOFF_LABEL = "com.docker.compose.oneoff"
NANOSECONDS_PER_SECOND = 1_000_000_000

# Parts of a name that mark its value as a secret. Over-redacting costs a random value in a
# preview; under-redacting leaks a credential into every copy of every snapshot.
SECRET_NAME_PARTS = (
    "PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "KEY", "TOKEN", "SALT", "AUTH", "CREDENTIAL",
    "PRIVATE", "DSN", "NONCE",
)
SECRET_NAME_WORDS = ("PASS", "PWD", "PW")
# scheme://user:password@host: a credential inside an otherwise harmless-looking value
CREDENTIAL_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@", re.IGNORECASE)
SOURCE_ONLY_LABEL_PREFIXES = ("com.docker.compose.", "org.opencontainers.")


class DockerReader(Protocol):
    """Runs one read-only docker CLI command on the source's engine and returns its stdout."""

    where: str

    def docker(self, args: Sequence[str]) -> str: ...


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    upper = name.upper()
    if upper in {e.upper() for e in extra}:
        return True
    if any(part in upper for part in SECRET_NAME_PARTS):
        return True
    words = re.split(r"[^A-Z0-9]+", upper)
    return any(word in SECRET_NAME_WORDS or word.endswith("PASS") for word in words)  # REQUIREPASS, SMTPPASS


def is_secret_value(value: str) -> bool:
    return bool(CREDENTIAL_IN_URL.search(value))


def capture_services(spec: ContainersSource, *, ssh: SshTarget | None = None) -> dict:
    """The manifest ``services`` section of ``spec.compose_project`` (secrets redacted)."""
    if spec.docker_host:
        from .config import source_engine_ssh
        from .runtime.docker import DockerEngine

        engine = DockerEngine(spec.docker_host, error=SourceError, ssh=source_engine_ssh(spec.docker_host, ssh))
        return _capture(_EngineReader(engine), spec)
    if ssh is not None:
        from .transport.ssh import SshSession

        with SshSession.connect(ssh) as session:
            return _capture(_SshReader(session, str(ssh)), spec)
    from .runtime.docker import DockerEngine

    return _capture(_EngineReader(DockerEngine(None, error=SourceError)), spec)


def _capture(reader: DockerReader, spec: ContainersSource) -> dict:
    ids = reader.docker(["ps", "-a", "-q", "--no-trunc", "--filter", f"label={COMPOSE_PROJECT_LABEL}={spec.compose_project}"]).split()
    if not ids:
        raise SourceError(
            f"no containers of compose project {spec.compose_project!r} on {reader.where}",
            hint="check containers.compose_project (`docker compose ls` on the source host lists the projects)",
        )
    containers = _json(reader, ["container", "inspect", *ids])
    image_ids = sorted({c.get("Image", "") for c in containers if c.get("Image")})
    images = _json(reader, ["image", "inspect", *image_ids]) if image_ids else []
    return services_from_inspect(spec, containers, images, where=reader.where)


def _json(reader: DockerReader, args: Sequence[str]) -> list[dict[str, Any]]:
    text = reader.docker(args)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SourceError(f"docker on {reader.where} returned unreadable JSON for `docker {args[0]} {args[1]}`") from exc
    return value if isinstance(value, list) else [value]


# -- pure transform ------------------------------------------------------------------------------


def services_from_inspect(
    spec: ContainersSource,
    containers: Sequence[Mapping[str, Any]],
    images: Sequence[Mapping[str, Any]],
    *,
    where: str = "",
) -> dict:
    """``docker inspect`` JSON of a compose project's containers (and their images) → ``services``."""
    images_by_id = {i.get("Id"): i for i in images}
    services: dict[str, dict[str, Any]] = {}
    # Running containers first (a stale exited one may predate the current config); one-off
    # `docker compose run` containers carry a command that is not the service's.
    def order(c: Mapping[str, Any]) -> tuple[bool, str]:
        return (not (c.get("State") or {}).get("Running"), c.get("Name", ""))

    for container in sorted(containers, key=order):
        labels = (container.get("Config") or {}).get("Labels") or {}
        if labels.get(COMPOSE_ONEOFF_LABEL, "").lower() == "true":
            continue
        name = labels.get(COMPOSE_SERVICE_LABEL) or container.get("Name", "").lstrip("/")
        if name in services:
            services[name]["replicas"] += 1
            continue
        services[name] = _service(spec, container, images_by_id.get(container.get("Image")) or {})
    return {
        "format": SERVICES_FORMAT,
        "compose_project": spec.compose_project,
        "docker_host": where,
        "services": services,
    }


def _service(spec: ContainersSource, container: Mapping[str, Any], image: Mapping[str, Any]) -> dict[str, Any]:
    config = container.get("Config") or {}
    image_config = image.get("Config") or {}
    host_config = container.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    image_labels = image_config.get("Labels") or {}
    project = spec.compose_project
    return {
        "image": config.get("Image") or "",
        "image_id": container.get("Image") or "",
        "repo_digests": list(image.get("RepoDigests") or []),
        "command": _unless_default(config.get("Cmd"), image_config.get("Cmd"), spec.secret_env_names),
        "entrypoint": _unless_default(config.get("Entrypoint"), image_config.get("Entrypoint"), spec.secret_env_names),
        "environment": _environment(config.get("Env") or [], image_config.get("Env") or [], spec.secret_env_names),
        "ports": _ports(host_config.get("PortBindings") or {}),
        "expose": sorted({int(p.split("/")[0]) for p in (config.get("ExposedPorts") or {}) if p.endswith("/tcp")}),
        "mounts": [_mount(m, project) for m in container.get("Mounts") or []],
        "healthcheck": _healthcheck(config.get("Healthcheck"), spec.secret_env_names),
        "depends_on": _depends_on(labels.get(COMPOSE_DEPENDS_LABEL, "")),
        "labels": _labels(labels, image_labels, spec.secret_env_names),
        "working_dir": config.get("WorkingDir") or None,
        "user": config.get("User") or None,
        "replicas": 1,
    }


def _unless_default(value: Any, default: Any, secret_names: Iterable[str] = ()) -> list[Any] | None:
    """None when the container runs the image's own command (the preview inherits it then).
    Values of secret-looking options (``--requirepass X``, ``--db-password=X``) become
    ``{"secret": true}``: a preview gets a fresh value in their place."""
    if not value or value == default:
        return None
    return redact_argv(list(value), secret_names)


SECRET_MARK: dict[str, Any] = {"secret": True}


def redact_argv(argv: Sequence[str], secret_names: Iterable[str] = ()) -> list[Any]:
    names = tuple(secret_names)
    out: list[Any] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(dict(SECRET_MARK))
            hide_next = False
            continue
        flag, eq, value = arg.partition("=")
        if arg.startswith("-") and is_secret_name(flag.lstrip("-").replace("-", "_"), names):
            if eq:
                out.append({"secret": True, "prefix": flag + "="})
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append({"secret": True} if is_secret_value(arg) else arg)
    return out


def _environment(env: Sequence[str], image_env: Sequence[str], secret_names: Iterable[str]) -> list[dict[str, Any]]:
    inherited = set(image_env)
    out: list[dict[str, Any]] = []
    for item in env:
        if item in inherited:
            continue  # the image sets it; the preview runs the same image
        name, _, value = item.partition("=")
        if is_secret_name(name, secret_names) or is_secret_value(value):
            out.append({"name": name, "secret": True})
        else:
            out.append({"name": name, "value": value})
    return out


def _labels(labels: Mapping[str, str], image_labels: Mapping[str, str], secret_names: Iterable[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(labels.items()):
        if key.startswith(SOURCE_ONLY_LABEL_PREFIXES) or image_labels.get(key) == value:
            continue
        if is_secret_name(key.replace(".", "_"), secret_names) or is_secret_value(value):
            out[key] = {"secret": True}
        else:
            out[key] = value
    return out


def _ports(bindings: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, hosts in sorted(bindings.items()):
        port, _, protocol = key.partition("/")
        for host in hosts or [{}]:
            out.append({
                "container_port": int(port),
                "protocol": protocol or "tcp",
                "host_ip": (host or {}).get("HostIp") or "",
                "host_port": (host or {}).get("HostPort") or "",
            })
    return out


def _mount(mount: Mapping[str, Any], project: str) -> dict[str, Any]:
    kind = mount.get("Type", "volume")
    out: dict[str, Any] = {"type": kind, "target": mount.get("Destination", ""), "read_only": not mount.get("RW", True)}
    if kind == "volume":
        name = mount.get("Name", "")
        out["name"] = name
        out["volume"] = name[len(project) + 1:] if name.startswith(project + "_") else name
    elif kind == "bind":
        out["source"] = mount.get("Source", "")
    return out


def _healthcheck(health: Mapping[str, Any] | None, secret_names: Iterable[str] = ()) -> dict[str, Any] | None:
    if not health or not health.get("Test") or health.get("Test") == ["NONE"]:
        return None

    def seconds(key: str) -> float | None:
        value = health.get(key)
        return value / NANOSECONDS_PER_SECOND if value else None

    return {
        "test": redact_argv(list(health["Test"]), secret_names),
        "interval_seconds": seconds("Interval"),
        "timeout_seconds": seconds("Timeout"),
        "start_period_seconds": seconds("StartPeriod"),
        "retries": health.get("Retries") or None,
    }


def _depends_on(label: str) -> dict[str, str]:
    """Compose's label ``db:service_healthy:false,cache:service_started:false`` → {service: condition}."""
    out: dict[str, str] = {}
    for item in filter(None, label.split(",")):
        parts = item.split(":")
        out[parts[0]] = parts[1] if len(parts) > 1 else "service_started"
    return out


# -- readers -------------------------------------------------------------------------------------


class _EngineReader:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.where = engine.host or "the local Docker engine"

    def docker(self, args: Sequence[str]) -> str:
        return self.engine.cli(args, what=f"read the compose project ({args[0]} {args[1]})")


class _SshReader:
    """The docker CLI on the source host, over the source's SSH session (host key checked)."""

    def __init__(self, session: Any, where: str) -> None:
        self.session = session
        self.where = where

    def docker(self, args: Sequence[str]) -> str:
        return self.session.run(["docker", *args]).decode("utf-8", "replace")
