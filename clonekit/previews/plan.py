"""The plan of a preview and what its use cases share: names, state files, ports, credentials,
the compose document's YAML, and waiting until the preview answers.

Below ``clonekit.preview`` (create, refresh, destroy) and ``clonekit.previews.refresh`` /
``access`` / ``clonekit.golden``; imports none of them.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..config import Config, env_number
from ..errors import PreviewError
from ..retry import poll
from ..runtime import compose as cmp
from ..runtime import golden_record as gr
from ..runtime import swarm as sw
from ..runtime.docker import DockerEngine
from ..runtime.service import resolve_image

PREVIEWS_FOLDER = "previews"
STATE_FILE = "state.json"
SECRETS_FILE = "secrets.json"
COMPOSE_FILE = "compose.yml"
HTTP_TIMEOUT_SECONDS = env_number("CLONEKIT_PREVIEW_HTTP_TIMEOUT", 300.0)
POLL_SECONDS = 0.25
HTTP_PROBE_TIMEOUT_SECONDS = 5.0


def compose_project_name(config: Config, name: str) -> str:
    return f"ck-{config.project}-{name}"


def preview_dir(config: Config, name: str) -> Path:
    return config.state_dir / PREVIEWS_FOLDER / name


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PreviewError(f"cannot read {path}: {exc}") from exc


def free_port(taken: set[int] | frozenset[int] = frozenset()) -> int:
    """A free 127.0.0.1 port that no other preview of this host has claimed (a stopped one keeps its port)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise PreviewError("no free port on 127.0.0.1 for the preview")


def claimed_ports(config: Config) -> set[int]:
    root = config.state_dir / PREVIEWS_FOLDER
    ports: set[int] = set()
    if root.is_dir():
        for state_file in root.glob(f"*/{STATE_FILE}"):
            with contextlib.suppress(PreviewError, KeyError, TypeError, ValueError):
                ports.add(int((read_json(state_file) or {})["port"]))
    return ports


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def services_of(manifest: Any) -> dict[str, Any]:
    section = manifest.services or {}
    services = dict(section.get("services") or {})
    if not services:
        raise PreviewError(
            f"snapshot {manifest.id} has no container configuration to run a preview from",
            hint="set containers.compose_project for the source in clonekit.yml and take a new snapshot",
        )
    return services


def new_plan(config: Config, manifest: Any, name: str, services: Mapping[str, Any], engine: DockerEngine,
              *, previous: Mapping[str, Any] | None = None, secrets_in: Mapping[str, Any] | None = None,
              golden: gr.GoldenCopy | None = None) -> cmp.PreviewPlan:
    """A fresh plan, or (refresh) one that keeps the previous port, URL and credentials."""
    cfg = config.previews
    http_service, http_port = cmp.guess_http_service(services, cfg)
    db_service = cfg.database_service
    if manifest.database is None and db_service not in services:
        db_service = ""  # nothing to load and nothing to run: a preview without a database
    db_image = resolve_image(engine, services[db_service]) if db_service in services else cmp.DEFAULT_DB_IMAGE
    fallback_db = str((manifest.database or {}).get("database") or (manifest.database or {}).get("name") or "preview")
    user, database = cmp.db_defaults(services, db_service, fallback_db)
    if golden is not None and golden.db is not None and golden.db_image:
        db_image = golden.db_image  # the loaded datadir is in this image's layer
        user, database = golden.db.user, golden.db.database
    now = datetime.now(UTC)
    if previous is not None and secrets_in is not None:
        db = cmp.DbCredentials(**secrets_in["db"])
        port = int(previous["port"])
        url = previous["url"]
        created = previous["created_at"]
        expires = previous.get("expires_at") or ""
        kept = dict(secrets_in.get("env") or {})
    else:
        db = cmp.DbCredentials(user=user, password=cmp.fresh_secret(), root_password=cmp.fresh_secret(), database=database)
        taken = claimed_ports(config)
        if not engine.is_local:  # free here is not free there: skip what the preview host publishes
            taken |= engine.published_host_ports()
        port = free_port(taken)
        url = cfg.url.replace("{name}", name).replace("{project}", config.project).replace("{port}", str(port))
        created = iso(now)
        expires = iso(now + timedelta(seconds=cfg.ttl_seconds)) if cfg.ttl_seconds else ""
        kept = {}
    secret_values = {n: kept.get(n) or cmp.fresh_secret() for n in cmp.secret_names(services)}
    return cmp.PreviewPlan(
        project=config.project, name=name, compose_project=compose_project_name(config, name),
        snapshot_id=manifest.id, source=manifest.source, port=port, url=url, created_at=created, expires_at=expires,
        http_service=http_service, http_container_port=http_port, db_service=db_service, db_image=db_image,
        db=db, secret_values=secret_values, restore_path="golden" if golden is not None else "cold",
    )


class PlainDumper(yaml.SafeDumper):
    """No YAML anchors: the file is for people to read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def compose_container(engine: DockerEngine, plan: cmp.PreviewPlan, service: str) -> dict[str, Any]:
    found = engine.containers({"com.docker.compose.project": plan.compose_project,
                               "com.docker.compose.service": service})
    if not found:
        raise PreviewError(f"the {service!r} container of preview {plan.name} was not created")
    return found[0]


def check_alive(engine: DockerEngine, plan: cmp.PreviewPlan, service: str) -> None:
    """Fail fast when a service the wait depends on exited or keeps restarting."""
    container = compose_container(engine, plan, service)
    state = container.get("State") or {}
    if state.get("Running") and not state.get("Restarting"):
        return
    # Its logs are not quoted here: an application may print secrets or row values.
    raise PreviewError(
        f"the {service!r} service of preview {plan.name} stopped (exit code {state.get('ExitCode')})",
        hint="run again with --keep-on-failure, then read "
        f"`docker compose -p {plan.compose_project} logs {service}`",
    )


def wait_http(config: Config, engine: DockerEngine, plan: cmp.PreviewPlan, *, timeout: float | None = None,
              alive: Callable[[], None] | None = None) -> None:
    """Until the HTTP service answers (any status below 500): on its 127.0.0.1 port for a local
    engine, through an SSH tunnel to its container for a remote one. ``alive`` (between tries;
    default ``check_alive`` of the HTTP service) raises when waiting longer is pointless."""
    if engine.is_local:
        _probe_http(config, engine, plan, ("127.0.0.1", plan.port), timeout, alive)
        return
    with engine.reach(compose_container(engine, plan, plan.http_service), plan.http_container_port) as address:
        _probe_http(config, engine, plan, address, timeout, alive)


def _probe_http(config: Config, engine: DockerEngine, plan: cmp.PreviewPlan, address: tuple[str, int],
                timeout: float | None, alive: Callable[[], None] | None = None) -> None:
    limit = HTTP_TIMEOUT_SECONDS if timeout is None else timeout
    host_header = urlsplit(plan.url).netloc or f"127.0.0.1:{plan.port}"
    last = ["no answer"]

    def attempt() -> bool | None:
        conn = http.client.HTTPConnection(*address, timeout=HTTP_PROBE_TIMEOUT_SECONDS)
        try:
            conn.request("GET", "/", headers={"Host": host_header, "User-Agent": "clonekit-preview-check"})
            status = conn.getresponse().status
            if status < 500:
                return True
            last[0] = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last[0] = type(exc).__name__
        finally:
            conn.close()
        return None

    if poll(attempt, timeout=limit, interval=POLL_SECONDS,
            between=alive or (lambda: check_alive(engine, plan, plan.http_service))):
        return
    raise PreviewError(
        f"preview {plan.name} did not answer on {plan.url} within {limit:.0f}s (last: {last[0]})",
        hint=f"docker compose -f {preview_dir(config, plan.name) / COMPOSE_FILE} logs {plan.http_service}",
    )


def preview_engine(config: Config, name: str) -> DockerEngine:
    """The engine preview ``name`` runs on: ``previews.docker_host``, or on a swarm the engine of
    the node recorded in its state (the manager's when none is: nothing of it runs on a node)."""
    if not config.previews.uses_swarm:
        return DockerEngine.for_previews(config.previews)
    swarm = sw.Swarm(config.previews)
    node = str((read_json(preview_dir(config, name) / STATE_FILE) or {}).get("node") or "")
    return swarm.engine(node) if node else swarm.manager  # a node no longer in previews.nodes: ConfigError


def find_golden(config: Config, engine: DockerEngine, snapshot_id: str) -> gr.GoldenCopy | None:
    """The golden copy a preview on ``engine`` starts from. On a swarm it is made on the manager
    and its images reach the node through the registry; its golden volumes stay on the manager, so
    a node fills those trees from the store."""
    if isinstance(engine, sw.SwarmNodeEngine):
        golden = gr.find_golden(config.state_dir, engine.swarm.manager, snapshot_id)
        return replace(golden, volumes={}) if golden is not None else None
    return gr.find_golden(config.state_dir, engine, snapshot_id)
