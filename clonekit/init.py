"""``clonekit init``: a commented starter clonekit.yml, filled from the compose project in the folder.

What the compose file says (and, when the project runs on the local engine, what ``docker
inspect`` says of it) becomes the config: the database service, its engine and published port,
the database name and user and the *name* of the variable holding the password (from the app's
and the database's environment: ``WORDPRESS_DB_*``, ``DRUPAL_DB_*``, ``DB_*``, ``MARIADB_*``,
``MYSQL_*``, or a mounted Drupal ``settings.php``), and the mounts that hold uploads
(``wp-content/uploads``, ``sites/*/files``) for ``files`` and ``previews.files``. A secret value is
never written: the config names the variable, the notes say which one to export.

The compose file is read the way ``docker compose`` reads it: ``environment`` as a list or a
mapping, ``env_file``, ``${VAR}``/``${VAR:-default}``/``${VAR:?error}`` interpolation from the
environment and the folder's ``.env``, short and long ``ports`` and ``volumes`` syntax, named
volumes (``name:``, ``external``) and bind mounts relative to the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import CONFIG_FILENAME, DNS_LABEL, load_config
from .errors import ClonekitError, ConfigError

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
# read on top of the compose file, as `docker compose` does when no -f is given
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
                  "docker-compose.override.yml")
DB_IMAGE = re.compile(r"(^|/)(mariadb|mysql|percona)([:@]|$)|mariadb|mysql")
DB_SERVICE_NAMES = ("db", "database", "mariadb", "mysql")
DB_PORT = 3306
DEFAULT_PASSWORD_ENV = "PROD_DB_PASSWORD"
# (database keys, user keys, password keys) per convention, most specific first. The app's
# own settings come before the database server's: they are what the site logs in with.
CREDENTIAL_KEYS = (
    (("WORDPRESS_DB_NAME",), ("WORDPRESS_DB_USER",), ("WORDPRESS_DB_PASSWORD",)),
    (("DRUPAL_DB_NAME", "DRUPAL_DB_DATABASE"), ("DRUPAL_DB_USER", "DRUPAL_DB_USERNAME"), ("DRUPAL_DB_PASSWORD",)),
    (("DB_NAME", "DB_DATABASE"), ("DB_USER", "DB_USERNAME"), ("DB_PASSWORD", "DB_PASS")),
    (("MARIADB_DATABASE",), ("MARIADB_USER",), ("MARIADB_PASSWORD",)),
    (("MYSQL_DATABASE",), ("MYSQL_USER",), ("MYSQL_PASSWORD",)),
)
ROOT_PASSWORD_KEYS = ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
# Folders that hold what users upload, and where they sit under a mounted parent.
UPLOADS_TARGET = re.compile(r"(^|/)(wp-content/uploads|sites/[^/]+/files)/?$")
UPLOADS_BELOW = ("wp-content/uploads", "sites/default/files", "web/sites/default/files", "uploads", "files")
DB_ENV_PREFIX = re.compile(r"^(WORDPRESS_DB|DRUPAL_DB|DB|DATABASE)_")
DB_ENV_PLACEHOLDERS = (
    (re.compile(r"_(HOST|HOSTNAME|SERVER)$"), "{db.host}"),
    (re.compile(r"_PORT$"), "{db.port}"),
    (re.compile(r"_(NAME|DATABASE)$"), "{db.name}"),
    (re.compile(r"_(USER|USERNAME)$"), "{db.user}"),
    (re.compile(r"_(PASSWORD|PASS)$"), "{db.password}"),
)
VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
ONLY_A_VARIABLE = re.compile(r"^\s*\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))\s*$")
SETTINGS_DB = re.compile(r"""['"](database|username|password|port)['"]\s*=>\s*(?:['"]([^'"]*)['"]|"""
                         r"""(?:getenv\(|\$_ENV\[|\$_SERVER\[)\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]\s*[)\]]|(\d+))""")


@dataclass(frozen=True)
class Mount:
    kind: str  # bind | volume
    source: str  # host path (bind) or volume name (volume)
    target: str


@dataclass(frozen=True)
class Detected:
    compose_file: str | None = None
    compose_project: str | None = None
    running: bool = False  # the project's containers were read with docker inspect
    db_service: str | None = None
    engine: str = "mariadb"
    db_name: str = "app"
    db_user: str = "root"
    db_port: int | None = None
    db_host: str = "127.0.0.1"
    password_env: str = DEFAULT_PASSWORD_ENV
    app_service: str | None = None
    cms: str = "none"
    volumes: tuple[tuple[str, str, str], ...] = ()  # (host path, service, container path)
    preview_env: tuple[tuple[str, str], ...] = ()  # the app's database variables -> placeholders
    site_url: str | None = None  # the app's published HTTP address, rewritten to each preview's URL
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitResult:
    path: Path
    detected: Detected
    notes: tuple[str, ...] = field(default_factory=tuple)


def write_starter_config(folder: Path, *, force: bool = False, project: str | None = None) -> InitResult:
    """Write ``folder/clonekit.yml``; refuses to overwrite unless ``force``."""
    target = folder / CONFIG_FILENAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists", hint="pass --force to overwrite it")
    name = project or _dns_label(folder.resolve().name)
    if not DNS_LABEL.match(name):
        raise ConfigError(f"project name {name!r} is not a DNS label", hint="pass --project NAME (a-z, 0-9, -)")
    detected = detect_compose_project(folder)
    text = render_starter_config(name, detected)
    tmp = target.with_suffix(".yml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    load_config(target)  # what we write must load: a safety net for the template itself
    notes = []
    if detected.compose_file:
        how = "running, read with docker inspect" if detected.running else "not running here: read from the file"
        notes.append(f"found {detected.compose_file}: project {detected.compose_project} ({how}), "
                     f"database service {detected.db_service or 'none'}")
    else:
        notes.append("no compose file here: fill in sources.prod by hand")
    notes.extend(detected.notes)
    notes.append(f"sanitize preset: {detected.cms} (strict mode on)")
    notes.append(f"next: export {detected.password_env} and CLONEKIT_SECRET, then `clonekit scan prod` "
                 "and `clonekit clone prod --as NAME`")
    return InitResult(path=target, detected=detected, notes=tuple(notes))


# -- reading a compose file -----------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose reads them (comments, ``export``, quotes)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        out[key.strip()] = value
    return out


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``, ``${VAR:+alt}``, ``$VAR``, ``$$``."""
    def one(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op") or "", match.group("arg") or ""
        found = variables.get(name)
        if op in (":-", ":?"):
            return found if found else (interpolate(arg, variables) if op == ":-" else "")
        if op in ("-", "?"):
            return found if found is not None else (interpolate(arg, variables) if op == "-" else "")
        if op == ":+":
            return interpolate(arg, variables) if found else ""
        if op == "+":
            return interpolate(arg, variables) if found is not None else ""
        return found or ""

    parts = value.split("$$")
    return "$".join(VARIABLE.sub(one, part) for part in parts)


def variable_named(raw: str | None) -> str | None:
    """``PW`` when a value is nothing but a reference to the variable ``PW``."""
    match = ONLY_A_VARIABLE.match(raw or "")
    return (match.group("braced") or match.group("bare")) if match else None


@dataclass(frozen=True)
class EnvValue:
    raw: str | None  # as written (None: passed through from the environment compose runs in)
    value: str  # interpolated
    origin: str  # "compose file" or the env_file it came from


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    env: Mapping[str, EnvValue]
    ports: tuple[tuple[str, int | None, int], ...]  # (host ip, published port or None, container port)
    mounts: tuple[Mount, ...]


def parse_service(name: str, spec: Mapping[str, Any], base: Path, variables: Mapping[str, str],
                  project: str, named_volumes: Mapping[str, Any]) -> Service:
    def text(value: Any) -> str:
        return interpolate(str(value), variables) if value is not None else ""

    env: dict[str, EnvValue] = {}
    env_files = spec.get("env_file") or []
    for item in [env_files] if isinstance(env_files, (str, dict)) else env_files:
        path = text(item.get("path") if isinstance(item, dict) else item)
        for key, value in read_env_file(base / path).items():
            env[key] = EnvValue(value, interpolate(value, variables), path)
    environment = spec.get("environment") or {}
    pairs: list[tuple[str, str | None]] = []
    if isinstance(environment, list):
        for entry in environment:
            key, eq, value = str(entry).partition("=")
            pairs.append((key, value if eq else None))
    else:
        pairs = [(str(k), None if v is None else str(v)) for k, v in environment.items()]
    for key, raw in pairs:
        value = variables.get(key, "") if raw is None else interpolate(raw, variables)
        env[key] = EnvValue(raw, value, "compose file")

    ports: list[tuple[str, int | None, int]] = []
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            host_ip, published, target = text(port.get("host_ip")), text(port.get("published")), text(port.get("target"))
        else:
            spec_text = text(port).rsplit("/", 1)[0]
            host_ip, published = "", ""
            if spec_text.startswith("["):  # [::1]:P:T
                host_ip, _, spec_text = spec_text[1:].partition("]:")
            parts = spec_text.split(":")
            target = parts[-1]
            if len(parts) >= 2:
                published = parts[-2]
            if len(parts) >= 3:
                host_ip = ":".join(parts[:-2])
        try:
            container_port = int(target.split("-")[0])
        except ValueError:
            continue
        ports.append((host_ip, int(published) if published.isdigit() else None, container_port))

    mounts: list[Mount] = []
    for volume in spec.get("volumes") or []:
        if isinstance(volume, dict):
            kind, source, target = text(volume.get("type") or "volume"), text(volume.get("source")), text(volume.get("target"))
        else:
            parts = text(volume).split(":")
            if len(parts) < 2:
                continue  # an anonymous volume: nothing of the source's to capture
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if not source or not target or kind not in ("bind", "volume"):
            continue
        if kind == "bind":
            source = str((base / os.path.expanduser(source)).resolve())
        else:
            declared = named_volumes.get(source) or {}
            external = declared.get("external") if isinstance(declared, dict) else None
            if isinstance(declared, dict) and declared.get("name"):
                source = text(declared["name"])
            elif isinstance(external, dict) and external.get("name"):
                source = text(external["name"])
            elif not external:
                source = f"{project}_{source}"
        mounts.append(Mount(kind, source, target))
    return Service(name, text(spec.get("image")), env, tuple(ports), tuple(mounts))


def _read_compose(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services") or {}, dict):
        raise ConfigError(f"{path}: expected a mapping with a `services` mapping")
    return doc


def _environment_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {key: (item if eq else None) for key, eq, item in (str(e).partition("=") for e in value)}
    return dict(value or {})


def merge_compose(base: Any, override: Any, key: str = "") -> Any:
    """``override`` on top of ``base`` the way compose merges files: mappings by key,
    ``environment`` by variable, service ``volumes`` by target, other lists appended."""
    if key == "environment":
        return {**_environment_mapping(base), **_environment_mapping(override)}
    if key in ("command", "entrypoint", "test"):
        return override
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: merge_compose(base.get(k), v, k) for k, v in override.items()}}
    if isinstance(base, list) and isinstance(override, list):
        if key == "volumes":
            def target(entry: Any) -> str:
                return str(entry.get("target")) if isinstance(entry, dict) else str(entry).split(":")[1 if ":" in str(entry) else 0]
            replaced = {target(e) for e in override}
            return [e for e in base if target(e) not in replaced] + override
        return base + [e for e in override if e not in base]
    return override


def _compose_project_name(doc: Mapping[str, Any], folder: Path, variables: Mapping[str, str]) -> str:
    name = interpolate(str(doc.get("name") or ""), variables) or variables.get("COMPOSE_PROJECT_NAME") or folder.resolve().name
    return re.sub(r"[^a-z0-9_-]", "", name.lower()) or "site"


# -- what the running project says ----------------------------------------------------------------


def _running_overlay(project: str, services: dict[str, Service]) -> bool:
    """Replace mounts and published ports by what ``docker inspect`` says of the running project
    (variables resolved as they really were). False when it does not run here."""
    from .config import ContainersSource
    from .containers import capture_services

    try:
        captured = capture_services(ContainersSource(project))["services"]
    except ClonekitError:
        return False
    for name, spec in captured.items():
        known = services.get(name)
        if known is None:
            continue
        mounts = tuple(Mount(m["type"], m.get("source") or m.get("name") or "", m["target"])
                       for m in spec.get("mounts") or [] if m.get("type") in ("bind", "volume"))
        ports = tuple((p.get("host_ip") or "", int(p["host_port"]) if str(p.get("host_port")).isdigit() else None,
                       int(p["container_port"])) for p in spec.get("ports") or [])
        services[name] = Service(name, known.image or spec.get("image") or "", known.env, ports or known.ports,
                                 mounts or known.mounts)
    return True


def _volume_folder(name: str) -> tuple[str, bool]:
    """The host folder of a named volume, and whether the engine knows it."""
    from .runtime.docker import DockerEngine

    try:
        found = DockerEngine(None).inspect("volume", [name])
    except ClonekitError:
        found = []
    if found and found[0].get("Mountpoint"):
        return str(found[0]["Mountpoint"]), True
    return f"/var/lib/docker/volumes/{name}/_data", False


# -- detection ------------------------------------------------------------------------------------


def detect_compose_project(folder: Path) -> Detected:
    compose_file = next((folder / f for f in COMPOSE_FILES if (folder / f).is_file()), None)
    if compose_file is None:
        return Detected(cms=_cms_from_tree(folder))
    doc = _read_compose(compose_file)
    override = next((folder / f for f in OVERRIDE_FILES if (folder / f).is_file()), None)
    if override is not None:
        doc = merge_compose(doc, _read_compose(override))
    dotenv = read_env_file(folder / ".env")
    variables = {**dotenv, **os.environ}
    project = _compose_project_name(doc, folder, variables)
    named_volumes = doc.get("volumes") or {}
    services = {str(name): parse_service(str(name), spec or {}, compose_file.parent, variables, project, named_volumes)
                for name, spec in (doc.get("services") or {}).items()}
    running = _running_overlay(project, services)
    notes: list[str] = []

    db = next((s for s in services.values() if DB_IMAGE.search(s.image)), None) or next(
        (services[n] for n in DB_SERVICE_NAMES if n in services), None)
    engine = "mysql" if db is not None and re.search(r"mysql|percona", db.image) and "mariadb" not in db.image \
        else "mariadb"
    others = [s for s in services.values() if s is not db]
    app = _app_service(others)
    cms = _cms(app) if app else _cms_from_tree(folder)
    if cms == "none":
        cms = _cms_from_tree(folder)

    db_port, db_host = None, "127.0.0.1"
    if db is not None:
        host_ip, db_port = next(((ip, published) for ip, published, target in db.ports if target == DB_PORT and published),
                                ("", None))
        if host_ip and host_ip not in ("0.0.0.0", "::", "127.0.0.1"):
            db_host = host_ip  # published on one address only: that one
        if db_port is None:
            notes.append(f"the database service {db.name} publishes no port: add `ports: [\"127.0.0.1:3306:3306\"]` "
                         "to it, or set sources.prod.database.host/port (and ssh) by hand")

    volumes = _upload_volumes(others, notes)
    settings = _settings_php(app, variables) if app else None
    db_name, db_user, password_env = _credentials([s for s in (app, db) if s], settings, notes)
    if password_env in dotenv and password_env not in os.environ:
        notes.append(f"{password_env} is in .env: `set -a; . ./.env; set +a` exports it")
    preview_env = _preview_env(app) if app else ()
    site_url = _site_url(app) if app else None
    return Detected(
        compose_file=compose_file.name,
        compose_project=project,
        running=running,
        db_service=db.name if db else None,
        engine=engine,
        db_name=db_name,
        db_user=db_user,
        db_port=db_port,
        db_host=db_host,
        password_env=password_env,
        app_service=app.name if app else None,
        cms=cms,
        volumes=tuple(volumes),
        preview_env=preview_env,
        site_url=site_url,
        notes=tuple(notes),
    )


def _cms(service: Service) -> str:
    if "wordpress" in service.image or any(k.startswith("WORDPRESS_") for k in service.env) or any(
            "wp-content" in m.target for m in service.mounts):
        return "wordpress"
    if "drupal" in service.image or any(k.startswith("DRUPAL_") for k in service.env) or any(
            "/sites/" in m.target or m.target.endswith("settings.php") for m in service.mounts):
        return "drupal"
    return "none"


def _app_service(candidates: list[Service]) -> Service | None:
    """The service that runs the site: a CMS first, then one that talks to the database."""
    for test in (lambda s: _cms(s) != "none", lambda s: any(DB_ENV_PREFIX.match(k) for k in s.env),
                 lambda s: any(target == 80 for _, _, target in s.ports)):
        found = next((s for s in candidates if test(s)), None)
        if found is not None:
            return found
    return candidates[0] if candidates else None


def _upload_volumes(services: list[Service], notes: list[str]) -> list[tuple[str, str, str]]:
    """(host folder, service, container folder) of every mount that holds uploads."""
    out: list[tuple[str, str, str]] = []
    for service in services:
        for mount in service.mounts:
            if mount.kind == "bind":
                host, known = mount.source, True
            else:
                host, known = _volume_folder(mount.source)
            target = mount.target.rstrip("/")
            if UPLOADS_TARGET.search(target):
                found = (host, service.name, target)
            else:  # a parent (a web root, wp-content, sites/default) holding the uploads folder
                below = next((b for b in UPLOADS_BELOW if UPLOADS_TARGET.search(f"{target}/{b}")
                              and Path(host, b).is_dir()), None)
                if below is None:
                    continue
                found = (f"{host}/{below}", service.name, f"{target}/{below}")
            if found[0] not in {v[0] for v in out}:
                out.append(found)
                if not known:
                    notes.append(f"volume {mount.source} does not exist on this engine yet: files.path "
                                 f"{host} is where Docker will keep it")
    return out


def _settings_php(app: Service, variables: Mapping[str, str]) -> dict[str, str] | None:
    """database, username, password (a value or ``env:NAME``) and port of a mounted Drupal settings.php."""
    for mount in app.mounts:
        if mount.kind != "bind":
            continue
        for candidate in (Path(mount.source), Path(mount.source, "settings.php"), Path(mount.source, "default", "settings.php"),
                          Path(mount.source, "sites", "default", "settings.php"),
                          Path(mount.source, "web", "sites", "default", "settings.php")):
            if candidate.name == "settings.php" and candidate.is_file():
                try:
                    text = candidate.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                found: dict[str, str] = {}
                for key, literal, env_name, number in SETTINGS_DB.findall(text):
                    if key in found:
                        continue
                    if env_name and key != "password":  # a name or user from the environment
                        if variables.get(env_name):
                            found[key] = variables[env_name]
                    else:
                        found[key] = f"env:{env_name}" if env_name else (literal or number)
                if "database" in found or "username" in found:
                    found["file"] = str(candidate)
                    return found
    return None


def _credentials(services: list[Service], settings: Mapping[str, str] | None,
                 notes: list[str]) -> tuple[str, str, str]:
    """(database, user, password variable name), from the first convention that names a user."""
    name = user = None
    password: tuple[str, EnvValue | None] | None = None  # (key, value)
    for database_keys, user_keys, password_keys in CREDENTIAL_KEYS:
        for service in services:
            name = name or next((service.env[k].value for k in database_keys if k in service.env and service.env[k].value), None)
            if user is None:
                key = next((k for k in user_keys if k in service.env and service.env[k].value), None)
                if key is not None:
                    user = service.env[key].value
                    pk = next((k for k in password_keys if k in service.env or f"{k}_FILE" in service.env), None)
                    password = (pk, service.env.get(pk)) if pk else None
    if settings is not None:
        name = name or settings.get("database")
        if user is None and settings.get("username"):
            user = settings["username"]
            secret = settings.get("password", "")
            if secret.startswith("env:"):
                return name or "app", user, secret[4:]
            notes.append(f"{settings['file']} holds the database password: export {DEFAULT_PASSWORD_ENV} with it")
            return name or "app", user, DEFAULT_PASSWORD_ENV
    if user is None:  # only the server's root account is named
        for service in services:
            key = next((k for k in ROOT_PASSWORD_KEYS if k in service.env), None)
            if key is not None:
                user, password = "root", (key, service.env[key])
                notes.append("no application account found: using root (a read-only account is better)")
                break
    if user is None:
        notes.append("no database user found in the compose file: set sources.prod.database.user")
    if name is None:
        notes.append("no database name found in the compose file: set sources.prod.database.name")
    return name or "app", user or "root", _password_env(password, notes)


def _password_env(password: tuple[str, EnvValue | None] | None, notes: list[str]) -> str:
    if password is None:
        notes.append(f"no database password variable found: export {DEFAULT_PASSWORD_ENV} with it")
        return DEFAULT_PASSWORD_ENV
    key, value = password
    if value is None:  # only KEY_FILE: a Docker secret
        notes.append(f"the password is read from a file ({key}_FILE): export {DEFAULT_PASSWORD_ENV}=\"$(cat THAT_FILE)\"")
        return DEFAULT_PASSWORD_ENV
    if value.raw is None:  # `- KEY` passes the variable through
        notes.append(f"export {key} (the compose file passes it through from the environment)")
        return key
    named = variable_named(value.raw)
    if named:
        if value.origin != "compose file":
            notes.append(f"export {named} ({value.origin} reads it from the environment)")
        else:
            notes.append(f"export {named} (the compose file reads it from the environment or .env)")
        return named
    if value.origin != "compose file":
        notes.append(f"export {key} from {value.origin}: set -a; . {value.origin}; set +a")
        return key
    notes.append(f"the compose file holds the database password as {key}: export {DEFAULT_PASSWORD_ENV} with it "
                 "(clonekit.yml names variables, never values)")
    return DEFAULT_PASSWORD_ENV


def _preview_env(app: Service) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for key, value in app.env.items():
        if not DB_ENV_PREFIX.match(key):
            continue
        placeholder = next((p for pattern, p in DB_ENV_PLACEHOLDERS if pattern.search(key)), None)
        if placeholder is None:
            continue
        if placeholder == "{db.host}" and re.search(r":\d+$", value.value):
            placeholder = "{db.host}:{db.port}"
        out.append((key, placeholder))
    return tuple(out)


def _site_url(app: Service) -> str | None:
    for host_ip, published, target in app.ports:
        if target in (80, 8080) and published:
            host = host_ip if host_ip and host_ip not in ("0.0.0.0", "::") else "localhost"
            return f"http://{host}:{published}" if published != 80 else f"http://{host}"
    return None


# -- the file -------------------------------------------------------------------------------------


def _yaml_key(text: str) -> str:
    return text if re.match(r"^[A-Za-z0-9_./-]+$", text) else yaml.safe_dump(text, default_style='"').strip()


def render_starter_config(project: str, d: Detected) -> str:
    files_block = ""
    preview_files = ""
    if d.volumes:
        files_block = "    files:                                  # file trees to capture (excludes are globs)\n"
        for host, service, container in d.volumes:
            exclude = "[css/*, js/*, php/*, styles/*]" if d.cms == "drupal" else "[]"
            files_block += f"      - path: {_yaml_key(host)}\n        exclude: {exclude}\n"
            preview_files += f"    {_yaml_key(host)}: {{service: {service}, path: {_yaml_key(container)}}}\n"
    else:
        files_block = (
            "    # files:                                # file trees to capture\n"
            "    #   - path: /srv/site/files\n"
            "    #     exclude: [css/*, js/*, php/*, styles/*]\n"
        )
        preview_files = "    # /srv/site/files: {service: app, path: /var/www/html/sites/default/files}\n"
    containers = (
        f"    containers:\n      compose_project: {d.compose_project}        # a running compose project on this Docker host\n"
        if d.compose_project
        else "    # containers:\n    #   compose_project: site\n"
    )
    port = d.db_port or DB_PORT
    if d.preview_env:
        env_lines = "".join(f"    {key}: \"{value}\"\n" for key, value in d.preview_env)
    else:
        env_lines = {
            "wordpress": '    WORDPRESS_DB_HOST: "{db.host}:{db.port}"\n    WORDPRESS_DB_USER: "{db.user}"\n'
            '    WORDPRESS_DB_PASSWORD: "{db.password}"\n    WORDPRESS_DB_NAME: "{db.name}"\n',
            "drupal": '    DRUPAL_DB_HOST: "{db.host}"\n    DRUPAL_DB_PASSWORD: "{db.password}"\n',
        }.get(d.cms, '    DB_HOST: "{db.host}"\n    DB_PASSWORD: "{db.password}"\n')
    if d.cms == "wordpress":
        env_lines += '    WP_HOME: "{url}"                        # honoured by images that read it\n'
    http_service = f"  http_service: {d.app_service}                     # its port 80 is the preview's URL\n" \
        if d.app_service else ""
    if d.site_url:
        replace = (f"  replace:                                  # rewritten in the restored database (serialization-safe)\n"
                   f"    {_yaml_key(d.site_url)}: \"{{url}}\"      # add the production domain too\n")
    else:
        replace = ("  # replace:                                # rewritten in the restored database (serialization-safe)\n"
                   "  #   \"https://www.example.net\": \"{url}\"\n")
    return f"""# clonekit.yml: written by `clonekit init`. Reference: docs/configuration.md
project: {project}                          # [a-z0-9-]; part of every preview's resource names

# Where snapshots live: a folder (default) or s3://bucket/prefix. Credentials for S3 come
# from the usual AWS chain (env, ~/.aws), never from this file.
store: .clonekit/store
# store_options:
#   endpoint_url: https://s3.fr-par.scw.cloud
#   region: fr-par
#   encryption_key_env: CLONEKIT_STORE_KEY   # client-side AES-256-GCM; keep the key safe

sources:
  prod:
    # ssh: deploy@prod.example.net:22        # reach everything below through SSH (host key checked)
    database:
      engine: {d.engine}
      host: {_yaml_key(d.db_host)}                        # as seen from the SSH host when ssh is set
      port: {port}
      name: {_yaml_key(d.db_name)}
      user: {_yaml_key(d.db_user)}                      # a read-only account is enough
      password_env: {d.password_env}         # the NAME of the variable holding the password
{files_block}{containers}
sanitize:
  preset: {d.cms}                           # drupal | wordpress | none
  secret_env: CLONEKIT_SECRET               # keys the pseudonyms: keep it stable across nights
  strict: true                              # refuse a snapshot with personal data no rule covers
  # tables:                                 # your own rules, on top of the preset
  #   my_customers:
  #     columns: {{email: email, phone: phone, name: name}}
  #   "cache_*": {{rows: none}}

previews:
  database_service: {d.db_service or "db"}                    # the compose service that runs the database
{http_service}  url: "http://127.0.0.1:{{port}}"           # or https://{{name}}.{{project}}.preview.example: clonekit's HTTPS proxy
  # proxy: {{bind: 0.0.0.0, tls: acme, acme_email: ops@example.com, auth: {{user: review, password_env: CLONEKIT_REVIEW_PASSWORD}}}}
  # egress: no-mail                         # the default: outbound SMTP blocked; none: no outbound at all; open
  files:                                    # where each captured path goes in the preview
{preview_files}  env:                                      # overrides for every preview service
    SMTP_HOST: ""                           # mail goes nowhere real
{env_lines}{replace}  ttl: 14d

retention:
  keep_last: 7
  keep_daily: 14
"""


def _cms_from_tree(folder: Path) -> str:
    if any((folder / p).exists() for p in ("wp-config.php", "wp-content", "web/wp-config.php")):
        return "wordpress"
    if any((folder / p).exists() for p in ("web/core", "core/lib/Drupal.php", "web/sites/default")):
        return "drupal"
    return "none"


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "site"
