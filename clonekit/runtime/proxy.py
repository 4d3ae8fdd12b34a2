"""clonekit's Caddy proxy: one per Docker engine, shared by every project and preview on it.

The proxy is the container ``clonekit-proxy`` (``restart: unless-stopped``, so it comes back with
the engine) with the volume ``clonekit-proxy-data`` mounted at ``/data``: Caddy's certificates and
internal CA (``/data/caddy``), its autosaved configuration (``/data/config``, loaded again with
``--resume`` after a restart), the first configuration clonekit writes (``/data/clonekit``) and the
admin API's Unix socket (``/data/admin.sock``). The admin API listens on that socket only, never
on a TCP port, so no container (a preview included) can reconfigure the proxy; clonekit reaches
the socket through the volume's mount point on the Docker host.

Routes are added and removed one at a time through the admin API (``PUT .../routes/0`` inserts,
``DELETE /id/ROUTE``), which Caddy applies without dropping the other routes' connections. Every
response carries ``X-Robots-Tag: noindex, nofollow``; the HTTP port answers with a redirect to
HTTPS (unless ``tls: off``). This module knows nothing of previews or SQL.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from ..config import LOOPBACK_BINDS, ProxyConfig
from ..errors import ConfigError, NotFoundError, PreviewError
from .docker import DockerEngine

log = logging.getLogger("clonekit.runtime.proxy")

CONTAINER = "clonekit-proxy"
VOLUME = "clonekit-proxy-data"
LABEL_PROXY = "clonekit.proxy"
LABEL_LISTEN = "clonekit.proxy-listen"
DATA = "/data"
ADMIN_SOCKET = "admin.sock"
SERVER = "previews"
REDIRECT_SERVER = "redirect"
ROBOTS = {"X-Robots-Tag": ["noindex, nofollow"]}
ADMIN_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2
BCRYPT_COST = 10
CA_ROOT = "caddy/pki/authorities/local/root.crt"


@dataclass(frozen=True)
class Route:
    id: str
    host: str
    upstream: str


@dataclass(frozen=True)
class Certificate:
    host: str
    issuer: str
    not_after: str


@dataclass(frozen=True)
class ProxyStatus:
    running: bool
    state: str  # running | stopped | absent
    image: str
    ports: tuple[str, ...]
    tls: str
    routes: tuple[Route, ...]
    certificates: tuple[Certificate, ...]


# -- Caddy's JSON configuration (pure) ------------------------------------------------------------


def listen_key(cfg: ProxyConfig) -> str:
    """What needs a new container when it changes: image, address and ports."""
    return f"{cfg.image}|{cfg.bind}|{cfg.http_port}|{cfg.https_port}|{cfg.tls == 'off'}"


def _robots() -> dict[str, Any]:
    return {"handler": "headers", "response": {"set": ROBOTS, "deferred": False}}


def base_config(cfg: ProxyConfig) -> dict[str, Any]:
    """The proxy's configuration without preview routes: admin socket, servers, TLS mode."""
    fallback = {"handle": [_robots(), {"handler": "static_response", "status_code": 404,
                                       "body": "no preview at this address\n"}]}
    apps: dict[str, Any] = {}
    if cfg.tls == "off":
        servers = {SERVER: {"listen": [f":{cfg.http_port}"], "routes": [fallback],
                            "automatic_https": {"disable": True}}}
    else:
        redirect = {"handle": [_robots(), {
            "handler": "static_response", "status_code": 308,
            "headers": {"Location": [f"https://{{http.request.host}}:{cfg.https_port}{{http.request.uri}}"]}}]}
        servers = {
            SERVER: {"listen": [f":{cfg.https_port}"], "routes": [fallback], "protocols": ["h1", "h2"],
                     "automatic_https": {"disable_redirects": True,
                                         **({"disable_certificates": True} if cfg.tls == "files" else {})}},
            REDIRECT_SERVER: {"listen": [f":{cfg.http_port}"], "routes": [redirect],
                              "automatic_https": {"disable": True}},
        }
        if cfg.tls == "internal":
            apps["tls"] = {"automation": {"policies": [{"issuers": [{"module": "internal"}]}]}}
        elif cfg.tls == "acme":
            issuer: dict[str, Any] = {"module": "acme"}
            if cfg.acme_email:
                issuer["email"] = cfg.acme_email
            apps["tls"] = {"automation": {"policies": [{"issuers": [issuer]}]}}
        else:  # files: a certificate of the user's (e.g. a wildcard), copied into the volume
            apps["tls"] = {"certificates": {"load_files": [
                {"certificate": f"{DATA}/clonekit/tls/cert.pem", "key": f"{DATA}/clonekit/tls/key.pem"}]}}
    apps["http"] = {"http_port": cfg.http_port, "https_port": cfg.https_port, "servers": servers}
    # Caddy checks the Host header of admin requests; over the socket clonekit sends "localhost".
    return {"admin": {"listen": f"unix/{DATA}/{ADMIN_SOCKET}", "origins": ["localhost"], "config": {"persist": True}},
            "apps": apps}


def route_config(route: Route, *, user: str | None = None, password_hash: str | None = None) -> dict[str, Any]:
    """One preview's route: its host name, noindex, basic auth (when set), then its HTTP service."""
    handlers: list[dict[str, Any]] = [_robots()]
    if user and password_hash:
        handlers.append({"handler": "authentication", "providers": {"http_basic": {
            "hash": {"algorithm": "bcrypt"}, "realm": "clonekit preview",
            "accounts": [{"username": user, "password": password_hash}]}}})
    handlers.append({"handler": "reverse_proxy", "upstreams": [{"dial": route.upstream}]})
    return {"@id": route.id, "match": [{"host": [route.host]}], "handle": handlers, "terminal": True}


def hash_password(password: str) -> str:
    """A bcrypt hash, base64-encoded as Caddy 2.6's http_basic expects (later versions accept it too)."""
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST))
    return base64.b64encode(hashed).decode()


def credentials(cfg: ProxyConfig) -> tuple[str | None, str | None]:
    """(user, bcrypt hash) from previews.proxy.auth; the password comes from the named variable."""
    if cfg.auth is None:
        return None, None
    password = os.environ.get(cfg.auth.password_env, "")
    if not password:
        raise ConfigError(
            f"previews.proxy.auth.password_env: the environment variable {cfg.auth.password_env} is not set or empty",
            hint=f"export {cfg.auth.password_env}=... (the password people type to open a preview)",
        )
    return cfg.auth.user, hash_password(password)


def check_bind(cfg: ProxyConfig) -> None:
    """Previews hold production-shaped data: a proxy others can reach must ask for credentials."""
    if cfg.bind not in LOOPBACK_BINDS and cfg.auth is None:
        raise ConfigError(
            f"previews.proxy.auth: required when previews.proxy.bind is {cfg.bind} (not loopback); "
            "the proxy was not started",
            hint="set previews.proxy.auth: {user: review, password_env: CLONEKIT_REVIEW_PASSWORD}, or bind: 127.0.0.1",
        )


# -- the admin API over its Unix socket -----------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self.socket_path))
        self.sock = sock


class CaddyAdmin:
    """Caddy's admin API on a Unix socket (https://caddyserver.com/docs/api)."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = _UnixConnection(self.socket_path, ADMIN_TIMEOUT_SECONDS)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise PreviewError(f"cannot reach the proxy's admin API at {self.socket_path}: {exc}",
                               hint="`clonekit proxy status` says whether it runs") from exc
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data.strip() else None
        except ValueError:
            parsed = data.decode("utf-8", "replace")
        return response.status, parsed

    def call(self, method: str, path: str, body: Any = None, *, what: str) -> Any:
        status, parsed = self.request(method, path, body)
        if status >= 300:
            detail = parsed.get("error") if isinstance(parsed, dict) else parsed
            raise PreviewError(f"the proxy refused to {what} (HTTP {status}): {detail}")
        return parsed

    def ready(self) -> bool:
        try:
            return self.request("GET", "/config/")[0] == 200
        except PreviewError:
            return False


# -- the proxy container --------------------------------------------------------------------------


class Proxy:
    """The proxy of one Docker engine (local engines only: the admin socket is read on this machine)."""

    def __init__(self, engine: DockerEngine) -> None:
        if not engine.is_local:
            raise ConfigError(
                f"previews.docker_host: the HTTPS proxy is managed through its admin socket on the Docker host, "
                f"so it needs a local engine (got {engine.host})",
                hint="run clonekit on the preview host itself, or use a previews.url with {port}",
            )
        self.engine = engine

    # where the volume lives on this machine
    def data_dir(self, *, create: bool = False) -> Path | None:
        found = self.engine.inspect("volume", [VOLUME])
        if not found:
            if not create:
                return None
            self.engine.cli(["volume", "create", "--label", f"{LABEL_PROXY}=1", VOLUME], what="create the proxy's volume")
            found = self.engine.inspect("volume", [VOLUME])
        return Path(found[0]["Mountpoint"])

    def admin(self) -> CaddyAdmin:
        data = self.data_dir()
        if data is None:
            raise NotFoundError("the proxy has never run on this engine", hint="create a preview whose previews.url has no {port}")
        return CaddyAdmin(data / ADMIN_SOCKET)

    def container(self) -> dict[str, Any] | None:
        found = self.engine.inspect("container", [CONTAINER])
        return found[0] if found else None

    def ensure(self, cfg: ProxyConfig) -> CaddyAdmin:
        """Start the proxy when it does not run; reload its TLS settings when they changed."""
        check_bind(cfg)
        container = self.container()
        wanted = listen_key(cfg)
        if container is not None:
            labels = (container.get("Config") or {}).get("Labels") or {}
            if labels.get(LABEL_LISTEN) != wanted:
                raise PreviewError(
                    f"the proxy of this engine runs with other settings ({labels.get(LABEL_LISTEN)}) "
                    f"than previews.proxy asks ({wanted})",
                    hint="`clonekit proxy stop` (previews keep their routes) and run again",
                )
            if not (container.get("State") or {}).get("Running"):
                self.engine.cli(["start", CONTAINER], what="start the proxy")
            admin = self._wait_ready()
            self._apply_base(admin, cfg)
            return admin
        data = self.data_dir(create=True)
        assert data is not None
        self._write_initial(data, cfg)
        ports = [f"{cfg.bind}:{cfg.http_port}:{cfg.http_port}"]
        if cfg.tls != "off":
            ports.append(f"{cfg.bind}:{cfg.https_port}:{cfg.https_port}")
        argv = ["run", "-d", "--name", CONTAINER, "--restart", "unless-stopped",
                "--label", f"{LABEL_PROXY}=1", "--label", f"{LABEL_LISTEN}={wanted}",
                "-v", f"{VOLUME}:{DATA}", "-e", f"XDG_DATA_HOME={DATA}", "-e", f"XDG_CONFIG_HOME={DATA}/config"]
        for port in ports:
            argv += ["-p", port]
        argv += [cfg.image, "caddy", "run", "--resume", "--config", f"{DATA}/clonekit/caddy.json"]
        log.info("starting the preview proxy (%s) on %s", cfg.image, ", ".join(ports))
        self.engine.cli(argv, what=f"start the proxy from image {cfg.image}")
        admin = self._wait_ready()
        self._apply_base(admin, cfg)
        self._reattach(admin)
        return admin

    def _reattach(self, admin: CaddyAdmin) -> None:
        """A new container (after `proxy stop`) resumes its routes: join their networks again
        (a route's id is its network's name) and drop the routes whose network is gone."""
        config = admin.call("GET", "/config/", what="read its configuration") or {}
        for route in (_route_of(r) for r in _routes_of(config) if r.get("@id")):
            if self.engine.exists("network", route.id):
                self.connect(route.id)
            else:
                admin.call("DELETE", f"/id/{route.id}", what=f"remove the stale route {route.id}")

    def _write_initial(self, data: Path, cfg: ProxyConfig) -> None:
        folder = data / "clonekit"
        folder.mkdir(mode=0o700, exist_ok=True)
        (folder / "caddy.json").write_text(json.dumps(base_config(cfg), indent=1))
        with contextlib.suppress(FileNotFoundError):
            (data / ADMIN_SOCKET).unlink()  # a stale socket of an earlier run
        if cfg.tls == "files":
            self._copy_tls_files(data, cfg)

    def _copy_tls_files(self, data: Path, cfg: ProxyConfig) -> None:
        folder = data / "clonekit" / "tls"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for key, src, name in (("cert_file", cfg.cert_file, "cert.pem"), ("key_file", cfg.key_file, "key.pem")):
            try:
                shutil.copyfile(str(src), folder / name)
            except OSError as exc:
                raise ConfigError(f"previews.proxy.tls.{key}: cannot read {src}: {exc.strerror}") from exc
            os.chmod(folder / name, 0o600)

    def _wait_ready(self) -> CaddyAdmin:
        admin = self.admin()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if admin.socket_path.exists() and admin.ready():
                return admin
            container = self.container() or {}
            state = container.get("State") or {}
            if container and not state.get("Running") and not state.get("Restarting"):
                raise PreviewError(f"the proxy stopped (exit code {state.get('ExitCode')})",
                                   hint=f"docker logs {CONTAINER}")
            time.sleep(POLL_SECONDS)
        raise PreviewError(f"the proxy's admin API did not answer within {START_TIMEOUT_SECONDS:.0f}s",
                           hint=f"docker logs {CONTAINER}")

    def _apply_base(self, admin: CaddyAdmin, cfg: ProxyConfig) -> None:
        """Load the base configuration when its TLS part differs, keeping every route."""
        current = admin.call("GET", "/config/", what="read its configuration") or {}
        wanted = base_config(cfg)
        if _without_routes(current) == _without_routes(wanted):
            return
        data = self.data_dir()
        if data is not None and cfg.tls == "files":
            self._copy_tls_files(data, cfg)
        routes = [r for r in _routes_of(current) if r.get("@id")]
        wanted["apps"]["http"]["servers"][SERVER]["routes"] = routes + wanted["apps"]["http"]["servers"][SERVER]["routes"]
        admin.call("POST", "/load", wanted, what="load its new TLS settings")

    # -- routes -------------------------------------------------------------------------------

    def add_route(self, cfg: ProxyConfig, route: Route, *, auth: bool = True) -> None:
        """Serve ``route.host`` from ``route.upstream``; replaces a route of the same id in place.
        ``auth=False``: no previews.proxy.auth on this route (an upstream with its own login)."""
        admin = self.ensure(cfg)
        user, password_hash = credentials(cfg) if auth else (None, None)
        doc = route_config(route, user=user, password_hash=password_hash)
        config = admin.call("GET", "/config/", what="read its configuration") or {}
        for other in (_route_of(r) for r in _routes_of(config) if r.get("@id")):
            if other.host == route.host and other.id != route.id:
                raise PreviewError(
                    f"{route.host} is already served by the proxy for {other.id} (another project on this engine?)",
                    hint="put {project} in previews.url (e.g. https://{name}.{project}.preview.example), or destroy that preview",
                )
        status, _ = admin.request("GET", f"/id/{route.id}")
        if status == 200:
            admin.call("PATCH", f"/id/{route.id}", doc, what=f"replace the route of {route.host}")
        else:  # PUT on an array index inserts before it: ahead of the fallback route
            admin.call("PUT", f"/config/apps/http/servers/{SERVER}/routes/0", doc, what=f"add the route of {route.host}")
        log.info("proxy: %s -> %s", route.host, route.upstream)
        if cfg.tls != "acme":  # a public certificate may take minutes (or need DNS): not waited for
            wait_serving(cfg, route.host)

    def remove_route(self, route_id: str) -> bool:
        """Remove one route; False when the proxy or the route is not there."""
        container = self.container()
        if container is None or not (container.get("State") or {}).get("Running"):
            return False
        admin = self.admin()
        status, _ = admin.request("GET", f"/id/{route_id}")
        if status != 200:
            return False
        admin.call("DELETE", f"/id/{route_id}", what=f"remove route {route_id}")
        return True

    def connect(self, network: str) -> None:
        """Attach the proxy to a preview's network (idempotent)."""
        container = self.container() or {}
        if network in ((container.get("NetworkSettings") or {}).get("Networks") or {}):
            return
        self.engine.cli(["network", "connect", network, CONTAINER], what=f"attach the proxy to network {network}")

    def disconnect(self, network: str) -> None:
        container = self.container() or {}
        if network not in ((container.get("NetworkSettings") or {}).get("Networks") or {}):
            return
        self.engine.cli(["network", "disconnect", "--force", network, CONTAINER],
                        what=f"detach the proxy from network {network}")

    # -- status, CA, stop ---------------------------------------------------------------------

    def status(self) -> ProxyStatus:
        container = self.container()
        if container is None:
            return ProxyStatus(False, "absent", "", (), "", (), ())
        state = container.get("State") or {}
        running = bool(state.get("Running"))
        ports = tuple(sorted(
            f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{key.split('/')[0]}"
            for key, binds in ((container.get("HostConfig") or {}).get("PortBindings") or {}).items()
            for b in binds or []))
        image = str((container.get("Config") or {}).get("Image") or "")
        routes: list[Route] = []
        tls = ""
        if running:
            config = self.admin().call("GET", "/config/", what="read its configuration") or {}
            tls = _tls_mode(config)
            routes = [_route_of(r) for r in _routes_of(config) if r.get("@id")]
        data = self.data_dir()
        hosts = {r.host for r in routes}  # certificates of removed routes stay on disk until they expire
        certs = tuple(c for c in _certificates(data) if c.host in hosts) if data is not None else ()
        return ProxyStatus(running, "running" if running else "stopped", image, ports, tls, tuple(routes), certs)

    def ca_certificate(self) -> str:
        data = self.data_dir()
        path = data / CA_ROOT if data is not None else None
        if path is None or not path.exists():
            raise NotFoundError(
                "the proxy has no internal CA yet (it is made when the proxy first serves a preview with tls: internal)",
                hint="create a preview whose previews.url has no {port}, with previews.proxy.tls: internal",
            )
        return path.read_text()

    def stop(self) -> bool:
        """Stop and remove the proxy container; its volume (routes, certificates, CA) stays."""
        if self.container() is None:
            return False
        self.engine.cli(["rm", "-f", CONTAINER], what="stop the proxy")
        return True


def request_through(cfg: ProxyConfig, host: str, path: str = "/", *, headers: Mapping[str, str] | None = None,
                    timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """One request to the proxy on this machine for ``host`` (TLS with that server name, not verified:
    this checks routing, not trust). Raises OSError / HTTPException when nothing answers."""
    address = "127.0.0.1" if cfg.bind in ("0.0.0.0", "", *LOOPBACK_BINDS) else cfg.bind
    if cfg.tls == "off":
        conn: http.client.HTTPConnection = http.client.HTTPConnection(address, cfg.http_port, timeout=timeout)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = _SniConnection(address, cfg.https_port, host, context, timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with another name in SNI (what curl --resolve does)."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = server_name
        self.tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.server_name)


def wait_serving(cfg: ProxyConfig, host: str) -> None:
    """Until the proxy answers for ``host`` (its certificate is made when the route is added)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            request_through(cfg, host)
            return
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(POLL_SECONDS)
    raise PreviewError(f"the proxy did not serve {host} within {START_TIMEOUT_SECONDS:.0f}s (last: {last})",
                       hint=f"docker logs {CONTAINER}")


def _without_routes(config: Mapping[str, Any]) -> Any:
    clone = json.loads(json.dumps(config))
    with contextlib.suppress(KeyError, TypeError):
        clone["apps"]["http"]["servers"][SERVER]["routes"] = []
    return clone


def _routes_of(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        return list(config["apps"]["http"]["servers"][SERVER]["routes"] or [])
    except (KeyError, TypeError):
        return []


def _route_of(doc: Mapping[str, Any]) -> Route:
    hosts = [h for m in doc.get("match") or [] for h in m.get("host") or []]
    dials = [u.get("dial", "") for h in doc.get("handle") or [] if h.get("handler") == "reverse_proxy"
             for u in h.get("upstreams") or []]
    return Route(id=str(doc.get("@id")), host=hosts[0] if hosts else "", upstream=dials[0] if dials else "")


def _tls_mode(config: Mapping[str, Any]) -> str:
    servers = ((config.get("apps") or {}).get("http") or {}).get("servers") or {}
    if REDIRECT_SERVER not in servers:
        return "off"
    tls = (config.get("apps") or {}).get("tls") or {}
    if "certificates" in tls:
        return "files"
    issuers = [i.get("module") for p in (tls.get("automation") or {}).get("policies") or [] for i in p.get("issuers") or []]
    return str(issuers[0]) if issuers else "acme"


def _certificates(data: Path) -> tuple[Certificate, ...]:
    from cryptography import x509

    out = []
    root = data / "caddy" / "certificates"
    for crt in sorted(root.glob("*/*/*.crt")) if root.is_dir() else []:
        try:
            cert = x509.load_pem_x509_certificate(crt.read_bytes())
        except (OSError, ValueError):
            continue
        not_after = cert.not_valid_after_utc if hasattr(cert, "not_valid_after_utc") else cert.not_valid_after.replace(tzinfo=UTC)
        out.append(Certificate(host=crt.parent.name, issuer=crt.parent.parent.name,
                               not_after=not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return tuple(out)

