"""clonekit's Caddy proxy: one per Docker engine, shared by every project and preview on it.

The proxy is the container ``clonekit-proxy`` (``restart: unless-stopped``, so it comes back with
the engine) with the volume ``clonekit-proxy-data`` mounted at ``/data``: Caddy's certificates and
internal CA (``/data/caddy``), its autosaved configuration (``/data/config``, loaded again with
``--resume`` after a restart) and the first configuration clonekit writes (``/data/clonekit``).

The admin API listens on ``localhost:2019`` inside the proxy's own network namespace: the previews
share networks with the proxy but reach only its network addresses, never its loopback, so no
container (a preview included) can reconfigure it. clonekit reaches the admin API through a relay,
``docker run -i --network container:clonekit-proxy HELPER nc localhost 2019``, whose standard input
and output carry the HTTP requests. That is only the docker CLI, so the same code manages the proxy
of a local engine, of an ``ssh://`` or ``tcp://`` engine, and of a swarm's manager; files go in and
out of the volume with ``docker cp`` for the same reason.

Routes are added and removed one at a time through the admin API (``PUT .../routes/0`` inserts,
``DELETE /id/ROUTE``), which Caddy applies without dropping the other routes' connections. Every
response carries ``X-Robots-Tag: noindex, nofollow``; the HTTP port answers with a redirect to
HTTPS (unless ``tls: off``). This module knows nothing of previews or SQL.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import logging
import os
import socket
import ssl
import subprocess
import tarfile
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from ..config import LOOPBACK_BINDS, ProxyConfig
from ..errors import ConfigError, NotFoundError, PreviewError
from .docker import HELPER_IMAGE, DockerEngine

log = logging.getLogger("clonekit.runtime.proxy")

CONTAINER = "clonekit-proxy"
VOLUME = "clonekit-proxy-data"
# Its own bridge network, which carries the published ports. Docker keeps a container's published
# ports on the network that gives it its default gateway, and picks that network by name among equal
# ones: joining a network whose name sorts first moves the ports there, and each move refuses every
# connection for a moment. A preview's network is ck-PROJECT-NAME, PROJECT starting with a letter or
# digit; "ck--proxy" sorts before all of them, so previews that come and go never move the ports.
NETWORK = "ck--proxy"
LEGACY_NETWORK = "clonekit-proxy"  # an earlier clonekit's, which every preview network sorted before
LABEL_PROXY = "clonekit.proxy"
LABEL_LISTEN = "clonekit.proxy-listen"
LABEL_ADMIN = "clonekit.proxy-admin"
DATA = "/data"
ADMIN_ADDRESS = "localhost:2019"  # Caddy's default; inside the proxy's network namespace only
ADMIN_KIND = "relay-v1"  # LABEL_ADMIN of a container whose admin API the relay reaches
AUTOSAVE = "config/caddy/autosave.json"  # under DATA (XDG_CONFIG_HOME=/data/config)
SERVER = "previews"
REDIRECT_SERVER = "redirect"
ROBOTS = {"X-Robots-Tag": ["noindex, nofollow"]}
ADMIN_TIMEOUT_SECONDS = 30.0
# The first answer on a new relay waits for `docker run` itself (over SSH, on a busy engine) too.
RELAY_START_TIMEOUT_SECONDS = 120.0
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
    return {"admin": admin_config(), "apps": apps}


def admin_config() -> dict[str, Any]:
    """Loopback of the proxy's namespace only. Caddy checks the Host header of admin requests
    against ``origins``; the relay's requests send "localhost"."""
    return {"listen": ADMIN_ADDRESS, "origins": ["localhost"], "config": {"persist": True}}


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


# -- the admin API, through a relay container in the proxy's network namespace ----------------------


class _Relay:
    """One ``docker run -i ... nc localhost 2019`` whose stdin/stdout are one end of a socket pair:
    the other end is a socket that ``http.client`` talks HTTP/1.1 (keep-alive) over."""

    def __init__(self, engine: DockerEngine, image: str) -> None:
        ours, theirs = socket.socketpair()
        host, _, port = ADMIN_ADDRESS.partition(":")
        try:
            self.process = engine.nc_process(theirs, network=f"container:{CONTAINER}", host=host, port=int(port),
                                             label=f"{LABEL_PROXY}=relay", image=image)
        except OSError as exc:
            ours.close()
            raise PreviewError(f"cannot run the docker client to reach the proxy's admin API: {exc.strerror}") from exc
        finally:
            theirs.close()
        self.socket = ours
        self._finalizer = weakref.finalize(self, _Relay._stop, ours, self.process)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self._finalizer()

    @staticmethod
    def _stop(sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
        sock.close()  # nc sees the end of its input, half-closes, and exits when Caddy closes
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _RelayConnection(http.client.HTTPConnection):
    def __init__(self, relay: _Relay, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.relay = relay

    def connect(self) -> None:
        self.relay.socket.settimeout(self.timeout)
        self.sock = self.relay.socket


class CaddyAdmin:
    """Caddy's admin API (https://caddyserver.com/docs/api) through one relay, reused while it lives."""

    def __init__(self, engine: DockerEngine, image: str = HELPER_IMAGE) -> None:
        self.engine = engine
        self.image = image
        self._relay: _Relay | None = None
        self._conn: _RelayConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.sock = None  # the relay owns the socket
            self._conn = None
        if self._relay is not None:
            self._relay.close()
            self._relay = None

    def _connection(self) -> _RelayConnection:
        if self._relay is None or not self._relay.alive or self._conn is None:
            self.close()
            self._relay = _Relay(self.engine, self.image)
            self._conn = _RelayConnection(self._relay, RELAY_START_TIMEOUT_SECONDS)
        return self._conn

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        # A reading request may be sent again on a fresh relay when a relay that answered before
        # failed (Caddy may have closed it while idle); a change is sent once.
        for attempt in range(2 if method == "GET" else 1):
            conn = self._connection()
            started = conn.timeout == ADMIN_TIMEOUT_SECONDS
            sent = time.monotonic()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                log.debug("proxy admin: %s %s -> %s in %.2f s%s", method, path, response.status,
                          time.monotonic() - sent, "" if started else " (with the relay's start)")
                if not started:  # the relay runs now: Caddy's own answers are quick
                    conn.timeout = ADMIN_TIMEOUT_SECONDS
                    conn.relay.socket.settimeout(ADMIN_TIMEOUT_SECONDS)
                break
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 0 and method == "GET" and started:
                    continue
                waited = f"after {time.monotonic() - sent:.0f} s" + ("" if started else ", the relay's start included")
                raise PreviewError(f"cannot reach the proxy's admin API on {self.engine.host or 'the local engine'}: "
                                   f"{exc or type(exc).__name__} ({method} {path}, {waited})",
                                   hint="`clonekit proxy status` says whether it runs") from exc
        if response.will_close:
            self.close()
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


# -- files in the proxy's volume (docker cp: the same on every engine) ------------------------------


def tar_of(files: Mapping[str, bytes]) -> bytes:
    """A tar of ``files`` (relative paths), owner-only, for ``docker cp -``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders = sorted({"/".join(name.split("/")[:i]) for name in files for i in range(1, name.count("/") + 1)})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, int(time.time())
            tar.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def files_of(tar_bytes: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, content) of the regular files in a tar from ``docker cp CONTAINER:PATH -``."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar:
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()


# -- the proxy container --------------------------------------------------------------------------


class Proxy:
    """The proxy of one Docker engine: local, ``ssh://``, ``tcp://`` or a swarm's manager."""

    def __init__(self, engine: DockerEngine) -> None:
        self.engine = engine
        self._admin: CaddyAdmin | None = None
        # What ensure() saw, for the calls that follow it on this object (connect, add_route): the
        # container's inspect JSON and the listen key it was made ready for. One use case's life.
        self._ensured: tuple[str, dict[str, Any]] | None = None

    def admin(self) -> CaddyAdmin:
        if self._admin is None:
            self._admin = CaddyAdmin(self.engine)
        return self._admin

    def close(self) -> None:
        """Stop the admin relay (also done when the object is collected)."""
        self._ensured = None
        if self._admin is not None:
            self._admin.close()

    def container(self) -> dict[str, Any] | None:
        found = self.engine.inspect("container", [CONTAINER])
        return found[0] if found else None

    def ensure(self, cfg: ProxyConfig) -> CaddyAdmin:
        """Start the proxy when it does not run; reload its TLS settings when they changed."""
        self._ensured = None
        admin = self._ensure(cfg)
        container = self.container() if self._ensured is None else self._ensured[1]
        if container is not None:
            self._ensured = (listen_key(cfg), container)
        return admin

    def _ensure(self, cfg: ProxyConfig) -> CaddyAdmin:
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
            networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
            if labels.get(LABEL_ADMIN) == ADMIN_KIND and NETWORK in networks:
                if not (container.get("State") or {}).get("Running"):
                    self.engine.cli(["start", CONTAINER], what="start the proxy")
                else:  # (what ensure() keeps: a container started here is inspected again)
                    self._ensured = (listen_key(cfg), container)
                admin = self._wait_ready()
                self._apply_base(admin, cfg)
                return admin
            # Made by an earlier clonekit (admin API on a socket in the volume, or ports on a network
            # that previews took them from): replaced by a container of this one; its routes and
            # certificates stay in the volume, its networks are joined again.
            log.info("replacing the preview proxy of an earlier clonekit (its routes are kept)")
            self.stop()
            legacy = self.engine.inspect("network", [LEGACY_NETWORK])
            if legacy and ((legacy[0].get("Labels") or {}).get(LABEL_PROXY)):
                with contextlib.suppress(PreviewError):  # still used by something else: left
                    self.engine.cli(["network", "rm", LEGACY_NETWORK], what="remove the proxy's old network")
        if not self.engine.exists("volume", VOLUME):
            self.engine.cli(["volume", "create", "--label", f"{LABEL_PROXY}=1", VOLUME], what="create the proxy's volume")
        # A network of its own from the start, not the default bridge: a container started on the
        # default bridge gets the host's resolver, and Caddy (Go) keeps it for seconds after the
        # proxy joins a preview's network, failing to resolve the preview's containers meanwhile.
        if not self.engine.exists("network", NETWORK):
            self.engine.cli(["network", "create", "--label", f"{LABEL_PROXY}=1", NETWORK], what="create the proxy's network")
        ports = [f"{cfg.bind}:{cfg.http_port}:{cfg.http_port}"]
        if cfg.tls != "off":
            ports.append(f"{cfg.bind}:{cfg.https_port}:{cfg.https_port}")
        argv = ["create", "--name", CONTAINER, "--restart", "unless-stopped",
                "--label", f"{LABEL_PROXY}=1", "--label", f"{LABEL_LISTEN}={wanted}", "--label", f"{LABEL_ADMIN}={ADMIN_KIND}",
                "--network", NETWORK, "-v", f"{VOLUME}:{DATA}", "-e", f"XDG_DATA_HOME={DATA}", "-e", f"XDG_CONFIG_HOME={DATA}/config"]
        for port in ports:
            argv += ["-p", port]
        argv += [cfg.image, "caddy", "run", "--resume", "--config", f"{DATA}/clonekit/caddy.json"]
        log.info("starting the preview proxy (%s) on %s", cfg.image, ", ".join(ports))
        self.engine.cli(argv, what=f"create the proxy from image {cfg.image}")
        try:
            self._write_initial(cfg)
            self.engine.cli(["start", CONTAINER], what="start the proxy")
        except BaseException:
            with contextlib.suppress(PreviewError):
                self.engine.cli(["rm", "-f", CONTAINER], what="remove the proxy that did not start")
            raise
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

    def _write_initial(self, cfg: ProxyConfig) -> None:
        """Into the created (not started) container's volume: the first configuration, the TLS files,
        and a resumed configuration whose admin API is not the relay's (an earlier clonekit's) fixed."""
        files = {"clonekit/caddy.json": json.dumps(base_config(cfg), indent=1).encode()}
        if cfg.tls == "files":
            files |= _tls_files(cfg)
        saved = self.read(AUTOSAVE)
        if saved is not None:
            try:
                resumed = json.loads(saved)
            except ValueError:
                resumed = None  # Caddy would refuse it: start from the first configuration
            if not isinstance(resumed, dict):
                files[AUTOSAVE] = json.dumps(base_config(cfg)).encode()
            elif resumed.get("admin") != admin_config():
                files[AUTOSAVE] = json.dumps({**resumed, "admin": admin_config()}).encode()
        self.write(files)

    def read(self, path: str) -> bytes | None:
        """One file of the volume (``path`` under /data); None when it is not there."""
        for _, content in self.read_tree(path):
            return content
        return None

    def read_tree(self, path: str) -> list[tuple[str, bytes]]:
        """The files under ``path`` (in the volume) as (tar path, content); [] when it is not there."""
        if self.container() is None:
            return []
        found = self.engine.copy_from(CONTAINER, f"{DATA}/{path}")
        return list(files_of(found)) if found is not None else []

    def write(self, files: Mapping[str, bytes]) -> None:
        """Put ``files`` (paths under /data) into the volume, owner-only."""
        self.engine.copy_into(CONTAINER, DATA, tar_of(files))

    def _wait_ready(self) -> CaddyAdmin:
        admin = self.admin()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if admin.ready():
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
        if cfg.tls == "files":
            self.write(_tls_files(cfg))
        routes = [r for r in _routes_of(current) if r.get("@id")]
        wanted["apps"]["http"]["servers"][SERVER]["routes"] = routes + wanted["apps"]["http"]["servers"][SERVER]["routes"]
        admin.call("POST", "/load", wanted, what="load its new TLS settings")

    # -- routes -------------------------------------------------------------------------------

    def add_route(self, cfg: ProxyConfig, route: Route, *, auth: bool = True) -> None:
        """Serve ``route.host`` from ``route.upstream``; replaces a route of the same id in place.
        ``auth=False``: no previews.proxy.auth on this route (an upstream with its own login)."""
        # ensure() just before on this object (online.after_start: ensure, connect, add_route) is not redone
        admin = self.admin() if self._ensured is not None and self._ensured[0] == listen_key(cfg) else self.ensure(cfg)
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
            self.wait_serving(cfg, route.host, through=auth)

    def remove_route(self, route_id: str) -> bool:
        """Remove one route; False when the proxy or the route is not there."""
        container = self.container()
        if container is None or not (container.get("State") or {}).get("Running"):
            return False
        if ((container.get("Config") or {}).get("Labels") or {}).get(LABEL_ADMIN) != ADMIN_KIND:
            return False  # an earlier clonekit's proxy: its stale routes go when it is replaced
        admin = self.admin()
        status, _ = admin.request("GET", f"/id/{route_id}")
        if status != 200:
            return False
        admin.call("DELETE", f"/id/{route_id}", what=f"remove route {route_id}")
        return True

    def connect(self, network: str) -> None:
        """Attach the proxy to a preview's network (idempotent)."""
        container = self._ensured[1] if self._ensured is not None else self.container() or {}
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        if network in networks:
            return
        self.engine.cli(["network", "connect", network, CONTAINER], what=f"attach the proxy to network {network}")
        if self._ensured is not None:  # what ensure() saw stays true
            settings = {**(container.get("NetworkSettings") or {}), "Networks": {**networks, network: {}}}
            self._ensured = (self._ensured[0], {**container, "NetworkSettings": settings})

    def disconnect(self, network: str) -> None:
        container = self.container() or {}
        if network not in ((container.get("NetworkSettings") or {}).get("Networks") or {}):
            return
        self.engine.cli(["network", "disconnect", "--force", network, CONTAINER],
                        what=f"detach the proxy from network {network}")

    # -- reaching it from this machine --------------------------------------------------------

    @contextlib.contextmanager
    def reach(self, cfg: ProxyConfig) -> Iterator[tuple[str, int]]:
        """(address, port) of this machine where the proxy's TLS port (HTTP with tls: off) answers:
        its published port on a local engine, an SSH tunnel to the container on a remote one."""
        port = cfg.http_port if cfg.tls == "off" else cfg.https_port
        if self.engine.is_local:
            yield ("127.0.0.1" if cfg.bind in ("0.0.0.0", "", *LOOPBACK_BINDS) else cfg.bind), port
            return
        container = self.container()
        if container is None:
            raise PreviewError(f"the proxy does not run on {self.engine.host}", hint="`clonekit proxy status`")
        # Its address on its own bridge network: the preview networks it joined may be overlays that
        # the host cannot reach.
        own = ((container.get("NetworkSettings") or {}).get("Networks") or {}).get(NETWORK) or {}
        address = str(own.get("IPAddress") or "")
        with self.engine.reach({**container, "NetworkSettings": {"Networks": {NETWORK: {"IPAddress": address}}}}
                               if address else container, port) as local:
            yield local

    def wait_serving(self, cfg: ProxyConfig, host: str, *, through: bool = False) -> None:
        """Until the proxy answers for ``host`` (its certificate is made when the route is added);
        ``through``: and, with previews.proxy.auth's password, reaches the preview behind it (on
        a swarm, the overlay may need seconds before the proxy's node reaches a task on another):
        one wait, whose first answer other than a gateway error ends both."""
        with self.reach(cfg) as (address, port):
            if through:
                wait_upstream(cfg, host, address=address, port=port)
            else:
                wait_serving(cfg, host, address=address, port=port)

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
        current = ((container.get("Config") or {}).get("Labels") or {}).get(LABEL_ADMIN) == ADMIN_KIND
        if running and current:
            config = self.admin().call("GET", "/config/", what="read its configuration") or {}
            tls = _tls_mode(config)
            routes = [_route_of(r) for r in _routes_of(config) if r.get("@id")]
        hosts = {r.host for r in routes}  # certificates of removed routes stay on disk until they expire
        certs = tuple(c for c in _certificates(self.read_tree("caddy/certificates")) if c.host in hosts)
        return ProxyStatus(running, "running" if running else "stopped", image, ports, tls, tuple(routes), certs)

    def ca_certificate(self) -> str:
        root = self.read(CA_ROOT) if self.container() is not None else None
        if root is None:
            raise NotFoundError(
                "the proxy has no internal CA yet (it is made when the proxy first serves a preview with tls: internal)",
                hint="create a preview whose previews.url has no {port}, with previews.proxy.tls: internal",
            )
        return root.decode()

    def stop(self) -> bool:
        """Stop and remove the proxy container; its volume (routes, certificates, CA) stays."""
        if self.container() is None:
            return False
        self.close()
        self.engine.cli(["rm", "-f", CONTAINER], what="stop the proxy")
        return True


def _tls_files(cfg: ProxyConfig) -> dict[str, bytes]:
    """A certificate of the user's (e.g. a wildcard), read here, for the volume."""
    out = {}
    for key, src, name in (("cert_file", cfg.cert_file, "cert.pem"), ("key_file", cfg.key_file, "key.pem")):
        try:
            with open(str(src), "rb") as handle:
                out[f"clonekit/tls/{name}"] = handle.read()
        except OSError as exc:
            raise ConfigError(f"previews.proxy.tls.{key}: cannot read {src}: {exc.strerror}") from exc
    return out


def request_through(cfg: ProxyConfig, host: str, path: str = "/", *, headers: Mapping[str, str] | None = None,
                    timeout: float = 10.0, address: str | None = None, port: int | None = None,
                    ) -> tuple[int, dict[str, str], bytes]:
    """One request to the proxy for ``host`` (TLS with that server name, not verified: this checks
    routing, not trust), at ``address``:``port`` (default: its published port on this machine).
    Raises OSError / HTTPException when nothing answers."""
    if address is None:
        address = "127.0.0.1" if cfg.bind in ("0.0.0.0", "", *LOOPBACK_BINDS) else cfg.bind
    if cfg.tls == "off":
        conn: http.client.HTTPConnection = http.client.HTTPConnection(address, port or cfg.http_port, timeout=timeout)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = SniConnection(address, port or cfg.https_port, host, context, timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


class SniConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with another name in SNI and in the certificate check (what curl
    --resolve does; the context decides whether the certificate is checked)."""

    def __init__(self, address: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self.server_name = server_name
        self.tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.server_name)


def wait_serving(cfg: ProxyConfig, host: str, *, address: str | None = None, port: int | None = None) -> None:
    """Until the proxy answers for ``host`` (its certificate is made when the route is added)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            request_through(cfg, host, address=address, port=port)
            return
        except (OSError, http.client.HTTPException) as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(POLL_SECONDS)
    raise PreviewError(f"the proxy did not serve {host} within {START_TIMEOUT_SECONDS:.0f}s (last: {last})",
                       hint=f"docker logs {CONTAINER}")


GATEWAY_ERRORS = (502, 504)  # the proxy could not reach the upstream


def wait_upstream(cfg: ProxyConfig, host: str, *, address: str | None = None, port: int | None = None) -> None:
    """Until a request through the proxy (with the route's password) gets another answer than a
    gateway error. No answer at all after START_TIMEOUT_SECONDS raises, as ``wait_serving`` does;
    still a gateway error then is logged, not raised: the preview itself may answer 502 (an
    application behind a proxy of its own)."""
    headers = {}
    if cfg.auth is not None:
        token = base64.b64encode(f"{cfg.auth.user}:{os.environ.get(cfg.auth.password_env, '')}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    status, answered, last = 0, False, "no answer"
    while time.monotonic() < deadline:
        try:
            status = request_through(cfg, host, headers=headers, address=address, port=port, timeout=30)[0]
            answered = True
        except (OSError, http.client.HTTPException) as exc:
            status, last = 0, str(exc) or type(exc).__name__
        if status and status not in GATEWAY_ERRORS:
            return
        # the route's certificate and the proxy's way to the preview take a moment: ask often at first
        time.sleep(POLL_SECONDS if not answered else 1.0)
    if not answered:
        raise PreviewError(f"the proxy did not serve {host} within {START_TIMEOUT_SECONDS:.0f}s (last: {last})",
                           hint=f"docker logs {CONTAINER}")
    log.warning("proxy: %s still answers HTTP %s after %.0f s: the proxy does not reach the preview yet "
                "(`docker logs %s` on the proxy's host says why; an i/o timeout on a swarm: the nodes must reach "
                "each other without address translation, docs/troubleshooting.md #15b)",
                host, status or "nothing", START_TIMEOUT_SECONDS, CONTAINER)


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


def _certificates(files: list[tuple[str, bytes]]) -> tuple[Certificate, ...]:
    """The certificates in a tar of Caddy's ``certificates`` folder (``ISSUER/HOST/HOST.crt``)."""
    from cryptography import x509

    out = []
    for name, content in sorted(files):
        parts = name.split("/")
        if len(parts) < 3 or not name.endswith(".crt"):
            continue
        try:
            cert = x509.load_pem_x509_certificate(content)
        except ValueError:
            continue
        not_after = cert.not_valid_after_utc if hasattr(cert, "not_valid_after_utc") else cert.not_valid_after.replace(tzinfo=UTC)
        out.append(Certificate(host=parts[-2], issuer=parts[-3],
                               not_after=not_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return tuple(out)

