"""Helpers shared by test folders (on pytest's pythonpath: `from support import ...`)."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from clonekit.config import Config, ContainersSource, FileSource
from clonekit.containers import capture_services
from clonekit.db import DbEndpoint, capture_database
from clonekit.files import capture_files
from clonekit.manifest import Manifest, new_snapshot_id
from clonekit.repository import Repository
from clonekit.schema import CopyEverything

# The compose project of a test 'production': a database service and a web service serving a
# folder. The secrets are the production's own: none may reach a preview.
OFFICIAL_LIKE_DB = """
    image: clonekit/mariadb:10.11
    environment: {MARIADB_DATABASE: shop, MARIADB_USER: shop, MARIADB_PASSWORD: prod-db-secret,
                  MARIADB_ROOT_PASSWORD: prod-root-secret}"""
BUSYBOX_WEB = """
    image: clonekit/busybox:latest
    command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]"""
PROD_SECRETS = ("prod-db-secret", "prod-root-secret", "prod-app-key")
_SOURCE_COMPOSE = """
services:
  db:{db}
    volumes: [dbdata:/var/lib/mysql]
  web:{web}
    ports: ["127.0.0.1::80"]
    environment: {{SITE_URL: "{prod_url}", SECRET_KEY: prod-app-key, SMTP_HOST: smtp.real.example.com}}
    volumes: ["{site}:/www"]
    depends_on: [db]
volumes: {{dbdata: {{}}}}
"""


def source_compose(*, prod_url: str, site: Any, db: str = OFFICIAL_LIKE_DB, web: str = BUSYBOX_WEB) -> str:
    """The text of a test production's compose file; ``db`` and ``web`` are the services' blocks."""
    return (_SOURCE_COMPOSE.format(prod_url=prod_url, site=site, db="{db}", web="{web}")
            .replace("{db}", db).replace("{web}", web))


def source_project_config(source: Mapping[str, Any], project: str) -> dict[str, Any]:
    """clonekit.yml (as data) for the runtime tests' shop source: database, files, compose project."""
    server = source["server"]
    return {
        "project": project,
        "sources": {"prod": {
            "database": {"host": server.host, "port": server.port, "user": server.user,
                         "password_env": "CK_TEST_DB_PASSWORD", "name": source["database"]},
            "files": [str(source["site"])],
            "containers": {"compose_project": source["project"]},
        }},
        "sanitize": {"strict": False},
        "previews": {"env": {"DB_PASSWORD": "{db.password}", "SITE_URL": "{url}"}, "ttl": "1h"},
    }


def runtime_lifecycle(module_name: str) -> ModuleType:
    """tests/runtime/test_preview_lifecycle.py loaded as ``module_name``: its module-scoped ``source``
    fixture is the runtime tests' "production" (a small database, a folder, a compose project)."""
    path = Path(__file__).with_name("runtime") / "test_preview_lifecycle.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def seed_shop_database(server: Any, prefix: str, options: Mapping[str, str], posts: int) -> str:
    """A fresh database on ``server`` holding ``options`` (id, name, value; previews.replace works on
    them) and ``posts`` rows of ``posts``; returns its name."""
    database = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{database}`")
            cur.execute(f"CREATE TABLE `{database}`.options (id INT PRIMARY KEY, name VARCHAR(64), value LONGTEXT)")
            cur.execute(f"CREATE TABLE `{database}`.posts (id INT PRIMARY KEY, title VARCHAR(200))")
            cur.executemany(f"INSERT INTO `{database}`.options VALUES (%s, %s, %s)",
                            [(i, name, value) for i, (name, value) in enumerate(options.items(), 1)])
            cur.executemany(f"INSERT INTO `{database}`.posts VALUES (%s, %s)", [(i, f"post {i}") for i in range(1, posts + 1)])
    finally:
        conn.close()
    return database


def make_manifest(*, source: str = "prod", project: str = "p", at: datetime | None = None,
                  snapshot_id: str | None = None, **fields: Any) -> Manifest:
    """The one way tests build a Manifest: an empty snapshot of ``source`` taken ``at`` (now),
    with ``fields`` (database, files, services, stats, ...) set as given."""
    at = at or datetime.now(UTC)
    values: dict[str, Any] = {
        "id": snapshot_id or new_snapshot_id(source, at), "source": source, "project": project, "created_at": at,
        "tool_version": "test", "rules_digest": "none", "database": None, "files": (), "services": None, "stats": {},
    }
    values.update(fields)
    return Manifest(**values)


def build_snapshot(config: Config, source: dict[str, Any], compose_project: str) -> Manifest:
    """A committed snapshot of a test 'production' (database, one folder, a compose project), copied
    as is: the preview and golden tests exercise restore, not sanitization."""
    server = source["server"]
    endpoint = DbEndpoint(server.host, server.port, server.user, server.password, source["database"])
    repo = Repository.open(config.store)
    started = datetime.now(UTC)
    with repo.writer() as writer:
        database = capture_database(endpoint, CopyEverything(), writer)
        files = capture_files(FileSource(str(source["site"])), writer)
    manifest = make_manifest(project=config.project, at=started, database=database, files=(files,),
                             services=capture_services(ContainersSource(compose_project)))
    repo.commit(manifest)
    return manifest


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``clonekit ARGS`` in this process: (exit code, stdout, stderr)."""
    from clonekit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


# The settings every proxy test uses: one proxy per Docker engine, so they must all agree
# (tests/runtime/test_proxy.py, tests/e2e/test_previews_online.py; xdist group "ckprod").
PROXY_IMAGE = "clonekit/caddy:2.6"
PROXY_HTTP_PORT = 18080
PROXY_HTTPS_PORT = 18443
PROXY_YAML = f"""
  url: "https://{{name}}.preview.test:{PROXY_HTTPS_PORT}"
  proxy:
    bind: 127.0.0.1
    http_port: {PROXY_HTTP_PORT}
    https_port: {PROXY_HTTPS_PORT}
    tls: internal
    image: {PROXY_IMAGE}
    auth: {{user: review, password_env: CLONEKIT_TEST_REVIEW_PASSWORD}}
"""


class HostListener:
    """A TCP listener on every address of this machine (port 0: a free one) that greets each
    connection with an SMTP-like line and records it. ``close()`` wakes the accepting thread
    (a plain close() leaves the port listening while accept() blocks)."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self._socket_module = socket
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("0.0.0.0", port))
        self.server.listen()
        self.port = int(self.server.getsockname()[1])
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.sendall(b"220 host\r\n")
            conn.close()

    def close(self) -> None:
        try:
            self.server.shutdown(self._socket_module.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
        self._thread.join(timeout=10)


def fetch_rows(connect: Callable[[], Any], sql: str, args: Any = None) -> list[tuple]:
    """Run one query on a fresh connection from ``connect`` and return every row."""
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def foreign_masquerades(network: str) -> list[str]:
    """This host's masquerade rules that translate traffic between the containers of ``network``:
    ``-s SUBNET ! -o br-OTHER -j MASQUERADE`` of another bridge whose subnet overlaps ``network``'s.

    Docker adds one per bridge network and removes it with the network; a dockerd stopped with its
    data removed leaves it behind, and once a new network gets the subnet (its old bridge deleted
    by scripts/services.sh) every packet from it leaves with the gateway's address, even between
    two containers of the bridge (br_netfilter shows bridged traffic to iptables). Plain TCP
    hardly notices; a swarm of engines on that network loses its overlay: the receiving node's
    VXLAN drops a frame whose outer source is not the address Docker recorded for the sender's
    MAC ("VXLAN_ENTRY_EXISTS"), so a task on another node times out."""
    if shutil.which("iptables") is None:
        return []
    found = subprocess.run(["docker", "network", "inspect", "-f", "{{.Id}} {{range .IPAM.Config}}{{.Subnet}} {{end}}",
                            network], check=True, capture_output=True, text=True).stdout.split()
    bridge = f"br-{found[0][:12]}"
    subnets = [ipaddress.ip_network(cidr) for cidr in found[1:] if ":" not in cidr]
    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True).stdout
    foreign = []
    for rule in rules.splitlines():
        match = re.search(r"-s (\S+) ! -o (\S+) -j MASQUERADE", rule)
        if match and match.group(2) != bridge and any(
                ipaddress.ip_network(match.group(1), strict=False).overlaps(s) for s in subnets):
            foreign.append(rule)
    return foreign
