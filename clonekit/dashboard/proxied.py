"""``dashboard.url`` served by the previews' proxy (docs/dashboard.md, "Behind the previews' proxy").

When ``previews.url`` has no ``{port}`` and ``dashboard.url`` names the proxy's scheme and port,
``clonekit serve`` gives the proxy a route from that host name to the dashboard. The proxy (a
container) reaches the dashboard through a Docker network of its own, ``clonekit-dashboard-PROJECT``:
the dashboard also listens on that network's gateway address (the host's side of the bridge),
which only this machine and its containers can reach, and which needs the dashboard's password
like every non-loopback bind. The route carries the proxy's noindex header but not
``previews.proxy.auth``: the dashboard asks for its own credentials (one prompt, not two).

The route's id is the network's name, so a proxy re-created by ``clonekit proxy stop`` and a later
preview joins the network again (runtime/proxy.py ``_reattach``). The route, the proxy's
attachment and the network go when the server stops; a stale route of an earlier run is replaced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Config
from ..errors import ClonekitError, ConfigError, PreviewError
from ..runtime.docker import DockerEngine
from ..runtime.proxy import LABEL_PROXY, Proxy, Route, check_bind

log = logging.getLogger("clonekit.dashboard")

NETWORK_PREFIX = "clonekit-dashboard-"
LABEL_DASHBOARD = "clonekit.dashboard"
WILDCARD_BINDS = ("0.0.0.0", "", "::")


def proxied_host(config: Config) -> str | None:
    """dashboard.url's host name when the previews' proxy serves it (its scheme and port); None otherwise."""
    url, previews = config.dashboard.url, config.previews
    if not url or not previews.uses_proxy:
        return None
    parts = urlsplit(url)
    proxy = previews.proxy
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if proxy.tls == "off":
        served = parts.scheme == "http" and port == proxy.http_port
    else:  # the proxy's HTTP port redirects to HTTPS
        served = (parts.scheme, port) in (("https", proxy.https_port), ("http", proxy.http_port))
    return parts.hostname if served else None


@dataclass(frozen=True)
class ProxiedDashboard:
    """The route of one project's dashboard on the proxy of the (local) preview engine."""

    config: Config
    host: str

    @property
    def network(self) -> str:
        return NETWORK_PREFIX + self.config.project

    def proxy(self) -> Proxy:
        return Proxy(DockerEngine.for_previews(self.config.previews))

    def open(self) -> str:
        """Start the proxy if needed, put it on the dashboard's network; that network's gateway address."""
        proxy = self.proxy()
        proxy.ensure(self.config.previews.proxy)
        engine = proxy.engine
        if not engine.exists("network", self.network):
            engine.cli(["network", "create", "--label", f"{LABEL_PROXY}=1",
                        "--label", f"{LABEL_DASHBOARD}={self.config.project}", self.network],
                       what=f"create network {self.network} (the proxy's way to the dashboard)")
        proxy.connect(self.network)
        gateways = [str(c["Gateway"]) for c in engine.network_ipam(self.network)
                    if c.get("Gateway") and ":" not in str(c["Gateway"])]
        if not gateways:
            raise PreviewError(f"network {self.network} has no IPv4 gateway: the proxy cannot reach the dashboard",
                               hint=f"docker network rm {self.network}, and run clonekit serve again")
        return gateways[0]

    def add_route(self, upstream: str) -> None:
        """Route dashboard.url's host to ``upstream`` (replaces the route of an earlier run)."""
        route = Route(id=self.network, host=self.host, upstream=upstream)
        self.proxy().add_route(self.config.previews.proxy, route, auth=False)

    def close(self) -> None:
        """Remove the route, detach the proxy, remove the network; problems are logged, not raised."""
        try:
            proxy = self.proxy()
            proxy.remove_route(self.network)
            proxy.disconnect(self.network)
            if proxy.engine.exists("network", self.network):
                proxy.engine.cli(["network", "rm", self.network], what=f"remove network {self.network}")
        except ClonekitError as exc:
            log.warning("dashboard: cannot remove its proxy route %s: %s", self.network, exc)


def prepare(config: Config) -> ProxiedDashboard | None:
    """Checks before any side effect: a local preview engine, the proxy's bind rule, a password."""
    host = proxied_host(config)
    if host is None:
        return None
    url = config.dashboard.url
    if not DockerEngine.for_previews(config.previews).is_local:
        raise ConfigError(
            f"dashboard.url {url} is served by the previews' proxy, which clonekit manages only on a local "
            f"Docker engine (previews.docker_host is {config.previews.docker_host}); the dashboard was not started",
            hint="run clonekit serve on the preview host, or give dashboard.url a port of its own "
                 "(e.g. http://host:8765 with --bind), served directly",
        )
    check_bind(config.previews.proxy)
    if config.dashboard.password() is None:
        raise ConfigError(
            f"dashboard.url {url} is served by the previews' proxy, which reaches the dashboard over a Docker "
            f"network (not loopback), and no password is set; the dashboard was not started",
            hint=f"export {config.dashboard.password_env}=... (dashboard.password_env names the variable)",
        )
    return ProxiedDashboard(config, host)


def needs_own_socket(bind: str, gateway: str) -> bool:
    """Whether the dashboard must also listen on ``gateway`` (a wildcard bind already covers it)."""
    return bind not in WILDCARD_BINDS and bind != gateway
