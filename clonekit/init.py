"""``clonekit init``: a commented starter clonekit.yml, filled from the compose project in the folder."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import CONFIG_FILENAME, DNS_LABEL, load_config
from .errors import ConfigError

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
DB_IMAGE = re.compile(r"(^|/)(mariadb|mysql|percona)([:@]|$)|mariadb|mysql")


@dataclass(frozen=True)
class Detected:
    compose_file: str | None = None
    compose_project: str | None = None
    db_service: str | None = None
    engine: str = "mariadb"
    db_name: str = "app"
    db_user: str = "root"
    db_port: int | None = None
    app_service: str | None = None
    cms: str = "none"
    volumes: tuple[tuple[str, str, str], ...] = ()  # (host path, service, container path)


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
        notes.append(f"found {detected.compose_file}: project {detected.compose_project}, database service {detected.db_service or 'none'}")
    else:
        notes.append("no compose file here: fill in sources.prod by hand")
    notes.append(f"sanitize preset: {detected.cms} (strict mode on)")
    notes.append("next: export the variables it names, then `clonekit scan prod` and `clonekit snapshot prod`")
    return InitResult(path=target, detected=detected, notes=tuple(notes))


def detect_compose_project(folder: Path) -> Detected:
    compose_file = next((folder / f for f in COMPOSE_FILES if (folder / f).is_file()), None)
    if compose_file is None:
        return Detected(cms=_cms_from_tree(folder))
    try:
        doc = yaml.safe_load(compose_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{compose_file}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    services: dict[str, Any] = doc.get("services") or {}
    project = _dns_label(str(doc.get("name") or folder.resolve().name))
    db_service, engine, db_name, db_user, db_port = None, "mariadb", "app", "root", None
    for name, svc in services.items():
        image = str((svc or {}).get("image") or "")
        if DB_IMAGE.search(image) or name in ("db", "database", "mariadb", "mysql"):
            db_service = name
            engine = "mysql" if "mysql" in image and "mariadb" not in image else "mariadb"
            env = _env(svc)
            db_name = env.get("MARIADB_DATABASE") or env.get("MYSQL_DATABASE") or db_name
            db_user = env.get("MARIADB_USER") or env.get("MYSQL_USER") or db_user
            db_port = _published_port(svc, 3306)
            break
    app_service, cms, volumes = None, "none", []
    for name, svc in services.items():
        if name == db_service:
            continue
        svc = svc or {}
        image = str(svc.get("image") or "")
        env = _env(svc)
        if "wordpress" in image or any(k.startswith("WORDPRESS_") for k in env):
            cms, app_service = "wordpress", name
        elif "drupal" in image or any(k.startswith("DRUPAL_") for k in env):
            cms, app_service = "drupal", name
        app_service = app_service or name
        for mount in svc.get("volumes") or []:
            host, _, rest = str(mount).partition(":") if isinstance(mount, str) else (mount.get("source", ""), ":", mount.get("target", ""))
            container = rest.split(":")[0]
            if host.startswith((".", "/")) and container:
                volumes.append((str((folder / host).resolve()), name, container))
    if cms == "none":
        cms = _cms_from_tree(folder)
    return Detected(
        compose_file=compose_file.name,
        compose_project=project,
        db_service=db_service,
        engine=engine,
        db_name=db_name,
        db_user=db_user,
        db_port=db_port,
        app_service=app_service,
        cms=cms,
        volumes=tuple(volumes),
    )


def render_starter_config(project: str, d: Detected) -> str:
    files_block = ""
    preview_files = ""
    if d.volumes:
        files_block = "    files:                                  # file trees to capture (excludes are globs)\n"
        for host, service, container in d.volumes:
            exclude = "[css/*, js/*, php/*, styles/*]" if d.cms == "drupal" else "[]"
            files_block += f"      - path: {host}\n        exclude: {exclude}\n"
            preview_files += f"    {host}: {{service: {service}, path: {container}}}\n"
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
    port = d.db_port or 3306
    env_lines = {
        "wordpress": '    WORDPRESS_DB_HOST: "{db.host}:{db.port}"\n    WORDPRESS_DB_USER: "{db.user}"\n'
        '    WORDPRESS_DB_PASSWORD: "{db.password}"\n    WORDPRESS_DB_NAME: "{db.name}"\n',
        "drupal": '    DRUPAL_DB_HOST: "{db.host}"\n    DRUPAL_DB_PASSWORD: "{db.password}"\n    DRUPAL_ENV: preview\n',
    }.get(d.cms, '    DB_HOST: "{db.host}"\n    DB_PASSWORD: "{db.password}"\n')
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
      host: 127.0.0.1                        # as seen from the SSH host when ssh is set
      port: {port}
      name: {d.db_name}
      user: {d.db_user}                      # a read-only account is enough
      password_env: PROD_DB_PASSWORD         # the NAME of the variable holding the password
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
  url: "http://127.0.0.1:{{port}}"           # or http://{{name}}.{{project}}.example.dev behind a proxy
  files:                                    # where each captured path goes in the preview
{preview_files}  env:                                      # overrides for every preview service
    SMTP_HOST: ""                           # mail goes nowhere real
{env_lines}  # replace:                                # rewritten in the restored database (serialization-safe)
  #   "https://www.example.net": "{{url}}"
  ttl: 14d

retention:
  keep_last: 7
  keep_daily: 14
"""


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        pairs = (str(e).partition("=") for e in env)
        return {key: value for key, _, value in pairs}
    return {str(k): str(v) for k, v in env.items()}


def _published_port(svc: dict[str, Any], container_port: int) -> int | None:
    for port in svc.get("ports") or []:
        parts = str(port).split(":")
        if len(parts) >= 2 and parts[-1].split("/")[0] == str(container_port):
            try:
                return int(parts[-2])
            except ValueError:
                return None
    return None


def _cms_from_tree(folder: Path) -> str:
    if any((folder / p).exists() for p in ("wp-config.php", "wp-content", "web/wp-config.php")):
        return "wordpress"
    if any((folder / p).exists() for p in ("web/core", "core/lib/Drupal.php", "web/sites/default")):
        return "drupal"
    return "none"


def _dns_label(text: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "site"
