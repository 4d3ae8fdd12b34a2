"""Previews online: the proxy route and the egress rules of one preview, around its life cycle.

Called by the preview use cases at three points:

- ``before_start``: the preview's network exists (``compose up --no-start``), and its egress rules
  are installed before any of its containers runs (``previews.egress``, default ``no-mail``);
- ``after_start``: when ``previews.url`` has no ``{port}``, clonekit's proxy is started if needed,
  attached to the preview's network and given a route from the preview's host name to its HTTP
  service;
- ``before_remove`` / ``after_remove``: the route goes, the proxy leaves the network, the rules go.

The preview's own network stays private: the proxy joins each preview's network, previews never
share one. The 127.0.0.1 port of every preview keeps working for the machine itself.

The proxy runs on the engine of ``previews.docker_host``: this machine's, a remote host's, or a
swarm's manager, where it joins the preview's attachable overlay network and reaches the preview's
HTTP service by its swarm service name, whichever node runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Config
from .errors import ConfigError, PreviewError
from .runtime import egress
from .runtime.docker import DockerEngine
from .runtime.proxy import Proxy, Route, check_bind, credentials

log = logging.getLogger("clonekit.online")


def _subnets(engine: DockerEngine, network: str) -> list[str]:
    subnets = [c["Subnet"] for c in engine.network_ipam(network) if c.get("Subnet")]
    ipv6 = [subnet for subnet in subnets if ":" in subnet]
    if ipv6:  # fail closed: the rules are iptables (IPv4); IPv6 traffic would pass unfiltered
        raise PreviewError(
            f"network {network} has an IPv6 subnet ({', '.join(ipv6)}), and previews.egress rules filter IPv4 only",
            hint="give the preview network no IPv6 (clonekit's own networks have none), or set previews.egress: open",
        )
    return subnets


def _check_egress(config: Config) -> None:
    # A swarm task's outside traffic leaves through its node's docker_gwbridge, translated: rules on
    # the overlay's subnet would not see it, and a preview would go out unfiltered.
    if config.previews.egress != "open" and config.previews.engine == "swarm":
        raise ConfigError(
            f"previews.egress: {config.previews.egress} is enforced with iptables on the preview network's subnet, "
            "which a swarm's overlay traffic does not carry when it leaves a node; not done on a swarm",
            hint="set previews.egress: open (the mail sink still replaces the application's mail variables)",
        )


def proxy_of(config: Config) -> Proxy:
    """The proxy in front of the previews: on the engine of previews.docker_host (a swarm's manager)."""
    return Proxy(DockerEngine.for_previews(config.previews))


def preflight(config: Config, engine: DockerEngine) -> None:
    """What would stop a preview from going online, checked before anything is created."""
    _check_egress(config)
    if config.previews.uses_proxy:
        check_bind(config.previews.proxy)
        credentials(config.previews.proxy)  # the password variable is set


def before_start(config: Config, engine: DockerEngine, compose_project: str, compose_file: Path) -> None:
    """Create the preview's network and containers (not started) and close its egress."""
    mode = config.previews.egress
    if mode == "open":
        return
    _check_egress(config)
    engine.compose_cli(compose_file, compose_project, ["up", "--no-start", "--no-build", "--pull", "missing"],
                       what=f"create preview {compose_project}")
    egress.apply(compose_project, mode, _subnets(engine, compose_project), host=egress.host_of(engine))


def after_start(config: Config, engine: DockerEngine, compose_project: str, url: str, http_service: str,
                http_port: int) -> None:
    """Serve the preview at its URL through clonekit's proxy (only for a URL without {port})."""
    if not config.previews.uses_proxy:
        return
    proxy = proxy_of(config)
    try:
        proxy.ensure(config.previews.proxy)
        containers = engine.containers({"com.docker.compose.project": compose_project,
                                        "com.docker.compose.service": http_service})
        proxy.connect(compose_project)
        host = urlsplit(url).hostname or ""
        upstream = f"{upstream_name(containers[0] if containers else {}, compose_project, http_service)}:{http_port}"
        proxy.add_route(config.previews.proxy, Route(id=compose_project, host=host, upstream=upstream))
    finally:
        proxy.close()


def upstream_name(container: Mapping[str, Any], compose_project: str, service: str) -> str:
    """The name the proxy dials: a swarm task by its service (it resolves on the overlay from any
    node, and the proxy's other networks hold other previews' services of the same short name), a
    compose container by its own name (unique on the engine)."""
    labels = (container.get("Config") or {}).get("Labels") or {}
    swarm_service = labels.get("com.docker.swarm.service.name")
    if swarm_service:
        return str(swarm_service)
    return str(container.get("Name") or "").lstrip("/") or f"{compose_project}-{service}-1"


def before_remove(config: Config, compose_project: str) -> None:
    """Take the preview's route off the proxy and detach the proxy from its network."""
    proxy = proxy_of(config)
    try:
        if proxy.container() is None:
            return
        proxy.remove_route(compose_project)
        proxy.disconnect(compose_project)
    except PreviewError as exc:  # e.g. the proxy restarting: its next start drops a route whose network is gone
        log.warning("could not take preview %s off the proxy: %s", compose_project, exc.message)
    finally:
        proxy.close()


def after_remove(engine: DockerEngine, compose_project: str) -> None:
    if not engine.node:  # (no rules on a swarm's nodes)
        egress.remove(compose_project, host=egress.host_of(engine))

