"""The preview's compose project, built from the captured services by pure functions.

Input: the manifest's ``services`` section, the ``previews`` config and a ``PreviewPlan`` (name,
port, fresh credentials...). Output: the compose document (a dict) plus, per service, the secret
environment values that go into a 0600 env file beside ``compose.yml`` instead of into it.

Isolation rules applied here: no published port of the source is reused (only the HTTP port on
127.0.0.1, and, on a local engine, the database on an ephemeral 127.0.0.1 port: a remote engine's
database is reached through an SSH tunnel to its container, nothing published); every volume and bind of the source
becomes a fresh preview volume (read-only binds are kept only when asked); routing labels and
variables of the source (Traefik, nginx-proxy ``VIRTUAL_HOST``) are dropped; mail variables point
at a sink service that accepts and discards every message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import PreviewsConfig
from ..containers import is_secret_name
from ..errors import PreviewError
from .docker import HELPER_IMAGE

LABEL_PROJECT = "clonekit.project"
LABEL_PREVIEW = "clonekit.preview"
LABEL_SNAPSHOT = "clonekit.snapshot"
LABEL_SOURCE = "clonekit.source"
LABEL_CREATED = "clonekit.created"
LABEL_EXPIRES = "clonekit.expires"
LABEL_URL = "clonekit.url"
LABEL_PATH = "clonekit.restore-path"

MAIL_SERVICE = "mailsink"
MAIL_PORT = 25
DEFAULT_DB_IMAGE = "clonekit/mariadb:10.11"
DEFAULT_DB_PORT = 3306
HTTP_PORTS = (80, 8080)
SECRET_BYTES = 24

# The database image's conventions: the official mariadb and mysql images read these at first start.
DB_ENV = {
    "database": ("MARIADB_DATABASE", "MYSQL_DATABASE"),
    "user": ("MARIADB_USER", "MYSQL_USER"),
    "password": ("MARIADB_PASSWORD", "MYSQL_PASSWORD"),
    "root_password": ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"),
}
# Variables that would make a reverse proxy send the production domain to the preview.
ROUTING_ENV = {"VIRTUAL_HOST", "VIRTUAL_PORT", "LETSENCRYPT_HOST", "LETSENCRYPT_EMAIL"}
ROUTING_LABEL_PREFIXES = ("traefik.", "caddy", "com.docker.compose.", "clonekit.")
MAIL_HOST_ENV = re.compile(r"(^|_)(SMTP|MAIL|MAILER|EMAIL)_?(HOST|SERVER|HOSTNAME|RELAY)$")
MAIL_PORT_ENV = re.compile(r"(^|_)(SMTP|MAIL|MAILER|EMAIL)_?PORT$")
MAIL_URL_ENV = re.compile(r"(^|_)(MAILER|MAIL|SMTP|EMAIL)_(DSN|URL)$")
DB_PASSWORD_ENV = re.compile(r"(^|_)(DB|DATABASE|MYSQL|MARIADB)_(PASSWORD|PASS|PASSWD|PWD)$")
# A database host of the app that is not the preview's database could be production's.
DB_HOST_ENV = re.compile(r"(^|_)(DB|DATABASE|MYSQL|MARIADB)_(HOST|HOSTNAME|SERVER)$")
PLACEHOLDER = re.compile(r"\{(db\.host|db\.port|db\.name|db\.user|db\.password|url|name|project|port)\}")

# An SMTP server in busybox sh: answers every command, swallows DATA, keeps nothing.
MAIL_SINK_SCRIPT = r"""
cat > /tmp/smtp.sh <<'EOF'
cr=$(printf '\r')
printf '220 preview mail sink: nothing is delivered\r\n'
while read -r line; do
  line=${line%"$cr"}
  case "$line" in
    [Dd][Aa][Tt][Aa]*) printf '354 go ahead\r\n'
      while read -r body; do [ "${body%"$cr"}" = "." ] && break; done
      printf '250 discarded\r\n';;
    [Qq][Uu][Ii][Tt]*) printf '221 bye\r\n'; exit 0;;
    [Ee][Hh][Ll][Oo]*) printf '250-preview\r\n250 OK\r\n';;
    *) printf '250 OK\r\n';;
  esac
done
EOF
exec nc -ll -p 25 -e sh /tmp/smtp.sh
"""


@dataclass(frozen=True)
class DbCredentials:
    user: str
    password: str = field(repr=False)
    root_password: str = field(repr=False)
    database: str


@dataclass(frozen=True)
class PreviewPlan:
    """Everything that makes one preview; secrets live here only in memory and in 0600 files."""

    project: str  # the clonekit project
    name: str
    compose_project: str
    snapshot_id: str
    source: str
    port: int
    url: str
    created_at: str  # ISO 8601 UTC
    expires_at: str  # ISO 8601 UTC or ""
    http_service: str
    http_container_port: int
    db_service: str  # "" when the preview has no database (no database in the snapshot, none in the compose project)
    db_image: str
    db: DbCredentials
    secret_values: Mapping[str, str] = field(repr=False, default_factory=dict)  # env name -> fresh value
    restore_path: str = "cold"
    helper_image: str = HELPER_IMAGE

    def labels(self) -> dict[str, str]:
        return {
            LABEL_PROJECT: self.project,
            LABEL_PREVIEW: self.name,
            LABEL_SNAPSHOT: self.snapshot_id,
            LABEL_SOURCE: self.source,
            LABEL_CREATED: self.created_at,
            LABEL_EXPIRES: self.expires_at,
            LABEL_URL: self.url,
            LABEL_PATH: self.restore_path,
        }

    def placeholders(self) -> dict[str, str]:
        return {
            "db.host": self.db_service,
            "db.port": str(DEFAULT_DB_PORT),
            "db.name": self.db.database,
            "db.user": self.db.user,
            "db.password": self.db.password,
            "url": self.url,
            "name": self.name,
            "project": self.project,
            "port": str(self.port),
        }

    def volume_name(self, key: str) -> str:
        return f"{self.compose_project}-{key}"


@dataclass(frozen=True)
class FileVolume:
    """A snapshot file tree that goes into ``service`` at ``target``."""

    source_path: str
    service: str
    target: str
    key: str


@dataclass(frozen=True)
class ComposeBuild:
    document: dict[str, Any]
    secret_env: dict[str, dict[str, str]]  # service -> name -> value (written to a 0600 env file)
    file_volumes: tuple[FileVolume, ...]


def start_order(document: Mapping[str, Any]) -> list[str] | None:
    """The services of a preview's compose ``document``, each after those it depends on; None when
    starting them takes more than ``docker start`` in that order (a ``depends_on`` condition other
    than ``service_started``, a replica count, a dependency cycle): ``compose up`` decides then."""
    services = document.get("services") or {}
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> bool:
        if name in order:
            return True
        spec = services.get(name)
        if spec is None or name in path or spec.get("scale") or (spec.get("deploy") or {}).get("replicas"):
            return False
        depends = spec.get("depends_on") or {}
        if isinstance(depends, Mapping):
            if any((c or {}).get("condition", "service_started") != "service_started" for c in depends.values()):
                return False
        if not all(visit(dep, (*path, name)) for dep in depends):
            return False
        order.append(name)
        return True

    return order if all(visit(name, ()) for name in services) else None


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{db.password}``-style placeholders; other braces (JSON, shell) stay as they are."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def fresh_secret() -> str:
    return secrets.token_hex(SECRET_BYTES)


def app_services(services: Mapping[str, Any], db_service: str) -> list[str]:
    return [name for name in sorted(services) if name != db_service]


def guess_http_service(services: Mapping[str, Any], config: PreviewsConfig) -> tuple[str, int]:
    """(service, container port) that serves the preview URL."""
    db_service = config.database_service
    if config.http_service:
        if config.http_service not in services:
            known = ", ".join(sorted(services)) or "none"
            raise PreviewError(f"previews.http_service {config.http_service!r} is not a captured service (services: {known})")
        return config.http_service, _http_port(services[config.http_service]) or HTTP_PORTS[0]
    candidates = []
    for name in app_services(services, db_service):
        port = _http_port(services[name])
        if port is not None:
            candidates.append((0 if port in HTTP_PORTS else 1, name, port))
    if not candidates:
        raise PreviewError(
            "cannot tell which service serves HTTP: no captured service exposes port 80 or 8080",
            hint="set previews.http_service in clonekit.yml",
        )
    _, name, port = min(candidates)
    return name, port


def _http_port(service: Mapping[str, Any]) -> int | None:
    ports = [p["container_port"] for p in service.get("ports") or [] if p.get("protocol", "tcp") == "tcp"]
    ports += list(service.get("expose") or [])
    for preferred in HTTP_PORTS:
        if preferred in ports:
            return preferred
    published = [p["container_port"] for p in service.get("ports") or []]
    return published[0] if published else None


def db_defaults(services: Mapping[str, Any], db_service: str, fallback_database: str) -> tuple[str, str]:
    """(user, database) of the source's database service when its environment names them."""
    env = {e["name"]: e.get("value") for e in (services.get(db_service) or {}).get("environment") or []}
    user = next((env[n] for n in DB_ENV["user"] if env.get(n)), None) or "clonekit"
    database = next((env[n] for n in DB_ENV["database"] if env.get(n)), None) or fallback_database
    return user, database


def file_volumes(services: Mapping[str, Any], config: PreviewsConfig, source_paths: Sequence[str]) -> list[FileVolume]:
    """Where each captured file tree goes: ``previews.files``, else the source mount of that path."""
    out: list[FileVolume] = []
    for path in source_paths:
        target = config.files.get(path)
        if target is not None:
            service, dest = target.service, target.path
            if service not in services:
                known = ", ".join(sorted(services)) or "none"
                raise PreviewError(f"previews.files[{path!r}].service {service!r} is not a captured service (services: {known})")
        else:
            found = _mounted_at(services, path)
            if found is None:
                continue  # nowhere to put it: the preview runs without this tree
            service, dest = found
        out.append(FileVolume(path, service, dest, "files-" + _slug(f"{service}{dest}")))
    return out


def _mounted_at(services: Mapping[str, Any], path: str) -> tuple[str, str] | None:
    for name in sorted(services):
        for mount in services[name].get("mounts") or []:
            if mount.get("type") == "bind" and mount.get("source", "").rstrip("/") == path:
                return name, mount["target"]
            if mount.get("type") == "volume" and path.endswith(f"/volumes/{mount.get('name')}/_data"):
                return name, mount["target"]
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "root"


def secret_names(services: Mapping[str, Any]) -> list[str]:
    return sorted({e["name"] for s in services.values() for e in s.get("environment") or [] if e.get("secret")})


def build_compose(
    services: Mapping[str, Any],
    config: PreviewsConfig,
    plan: PreviewPlan,
    volumes_for_files: Sequence[FileVolume],
    *,
    resolve_image: Any = None,
    keep_readonly_binds: bool = False,
    db_paths_in_image: Sequence[str] = (),
    publish_db: bool = True,
) -> ComposeBuild:
    """The compose document of a preview (pure). ``publish_db``: the database gets an ephemeral
    127.0.0.1 port (a local engine; a remote one is reached through a tunnel instead)."""
    resolve = resolve_image or (lambda service: service.get("image") or "")
    values = plan.placeholders()
    labels = plan.labels()
    doc_services: dict[str, Any] = {}
    doc_volumes: dict[str, Any] = {}
    secret_env: dict[str, dict[str, str]] = {}
    all_services = dict(services)
    if plan.db_service and plan.db_service not in all_services:  # the source's database runs outside Docker
        all_services[plan.db_service] = {"image": plan.db_image, "environment": [], "mounts": [
            {"type": "volume", "volume": "dbdata", "target": "/var/lib/mysql", "read_only": False}]}

    for name in sorted(all_services):
        service = all_services[name]
        is_db = name == plan.db_service
        plain, secret = _environment(service, config, plan, values, is_db)
        spec: dict[str, Any] = {"image": plan.db_image if is_db else resolve(service)}
        for key in ("entrypoint", "command"):
            if service.get(key) is not None:
                spec[key] = [argv_word(part) for part in service[key]]
        if service.get("working_dir"):
            spec["working_dir"] = service["working_dir"]
        if service.get("user"):
            spec["user"] = service["user"]
        if plain:
            spec["environment"] = {k: _escape(v) for k, v in plain.items()}
        if secret:
            spec["env_file"] = [f"{name}.env"]
            secret_env[name] = secret
        spec["labels"] = {**_kept_labels(service.get("labels") or {}), **labels, "clonekit.service": name}
        if is_db and db_paths_in_image:  # golden: the data directory lives in the image's layer (copy-on-write)
            service = {**service, "mounts": [m for m in service.get("mounts") or []
                                             if m.get("target", "").rstrip("/") not in db_paths_in_image]}
        mounts, volumes = _mounts(service, plan, [v for v in volumes_for_files if v.service == name], keep_readonly_binds)
        if mounts:
            spec["volumes"] = mounts
        for key, volume in volumes.items():
            doc_volumes[key] = volume if volume.get("external") else volume | {"labels": labels}
        if service.get("healthcheck"):
            spec["healthcheck"] = _healthcheck(service["healthcheck"])
        # The database is up and loaded before the other services start: waiting for its
        # healthcheck again only costs an interval.
        depends = {dep: {"condition": "service_started" if cond == "service_healthy" else cond}
                   for dep, cond in (service.get("depends_on") or {}).items() if dep in all_services}
        if depends:
            spec["depends_on"] = depends
        if is_db:
            if publish_db:
                spec["ports"] = [f"127.0.0.1::{DEFAULT_DB_PORT}"]
        elif name == plan.http_service:
            spec["ports"] = [f"127.0.0.1:{plan.port}:{plan.http_container_port}"]
        spec["restart"] = "unless-stopped"
        doc_services[name] = spec

    doc_services[MAIL_SERVICE] = {
        "image": plan.helper_image,
        "command": ["sh", "-c", _escape(MAIL_SINK_SCRIPT)],
        "labels": {**labels, "clonekit.service": MAIL_SERVICE},
        "restart": "unless-stopped",
    }
    networks: dict[str, Any] = {"default": {"name": plan.compose_project, "labels": labels}}
    document = {
        "name": plan.compose_project,
        "services": doc_services,
        "networks": networks,
        "volumes": doc_volumes,
    }
    return ComposeBuild(document, secret_env, tuple(volumes_for_files))


def _environment(service: Mapping[str, Any], config: PreviewsConfig, plan: PreviewPlan,
                 values: Mapping[str, str], is_db: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) environment of one preview service."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}

    def put(name: str, value: str, is_secret: bool) -> None:
        plain.pop(name, None)
        secret.pop(name, None)
        (secret if is_secret or is_secret_name(name) else plain)[name] = value

    for item in service.get("environment") or []:
        name = item["name"]
        if name in ROUTING_ENV:
            continue
        if item.get("secret"):
            if not is_db and DB_PASSWORD_ENV.search(name.upper()):
                put(name, plan.db.password, True)
            else:
                put(name, plan.secret_values.get(name) or fresh_secret(), True)
            continue
        value = item.get("value", "")
        upper = name.upper()
        if MAIL_HOST_ENV.search(upper):
            value = MAIL_SERVICE
        elif MAIL_PORT_ENV.search(upper):
            value = str(MAIL_PORT)
        elif MAIL_URL_ENV.search(upper):
            value = f"smtp://{MAIL_SERVICE}:{MAIL_PORT}"
        elif DB_HOST_ENV.search(upper) and plan.db_service and not is_db:
            value = plan.db_service
        put(name, value, False)
    for name, template in config.env.items():
        put(name, render(template, values), "{db.password}" in template)
    if is_db:
        for key, names in DB_ENV.items():
            for env_name in names:
                put(env_name, getattr(plan.db, key), key.endswith("password"))
    return plain, secret


def _kept_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    return {
        key: _escape(value) for key, value in labels.items()
        if isinstance(value, str) and not key.startswith(ROUTING_LABEL_PREFIXES)
    }


def _mounts(service: Mapping[str, Any], plan: PreviewPlan, files: Sequence[FileVolume],
            keep_readonly_binds: bool) -> tuple[list[str], dict[str, Any]]:
    """Compose ``volumes:`` entries of a service and the top-level volumes they need."""
    entries: list[str] = []
    volumes: dict[str, Any] = {}
    by_target = {f.target.rstrip("/") or "/": f for f in files}
    for mount in service.get("mounts") or []:
        target = mount.get("target", "")
        if not target or target.rstrip("/") in by_target:
            continue
        kind = mount.get("type")
        mode = ":ro" if mount.get("read_only") else ""
        if kind == "bind" and mount.get("read_only") and keep_readonly_binds and mount.get("source"):
            entries.append(f"{mount['source']}:{target}:ro")
        elif kind in ("volume", "bind"):
            key = _slug(mount.get("volume") or target) if kind == "volume" else "bind-" + _slug(target)
            volumes[key] = {"name": plan.volume_name(key)}
            entries.append(f"{key}:{target}{mode if kind == 'volume' else ''}")
        # tmpfs and other kinds hold nothing to keep
    for item in files:
        volumes[item.key] = {"name": plan.volume_name(item.key), "external": True}
        entries.append(f"{item.key}:{item.target}")
    return entries, volumes


def _healthcheck(health: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"test": [argv_word(part) for part in health["test"]]}
    for key, name in (("interval_seconds", "interval"), ("timeout_seconds", "timeout"),
                      ("start_period_seconds", "start_period")):
        if health.get(key):
            out[name] = f"{health[key]:g}s"
    if health.get("retries"):
        out["retries"] = health["retries"]
    return out


def argv_word(part: Any) -> str:
    """A captured command word; a redacted secret gets a fresh value (the source's was never stored)."""
    if isinstance(part, dict):
        return _escape(str(part.get("prefix", ""))) + fresh_secret()
    return _escape(part)


def _escape(value: str) -> str:
    """Compose interpolates ``$``; captured values are literal."""
    return value.replace("$", "$$")


def env_file_text(values: Mapping[str, str], *, quoted: bool = True) -> str:
    """A compose env file; single quotes keep values literal (no interpolation). ``quoted=False``:
    the format of ``docker stack deploy`` (and ``docker run --env-file``), which takes every
    character after ``=`` as the value, quotes included, and interpolates nothing."""
    lines = []
    for name, value in sorted(values.items()):
        if "'" in value or "\n" in value:
            raise PreviewError(f"the value of {name} cannot be written to an env file (quote or newline)")
        lines.append(f"{name}='{value}'" if quoted else f"{name}={value}")
    return "\n".join(lines) + "\n"


def env_file_values(text: str) -> dict[str, str]:
    """The values of an env file ``env_file_text`` wrote (quoted)."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] == "'":
            values[name] = value[1:-1]
        elif sep:
            values[name] = value
    return values
