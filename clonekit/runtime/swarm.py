"""Previews on a Docker Swarm (``previews.engine: swarm``): one stack per preview, pinned to one node.

A preview's compose document (``runtime/compose.py``) is deployed with ``docker stack deploy`` on the
manager (``previews.docker_host``), adapted by ``stack_document`` (pure): no ``build``, no published
port, no ``restart``/``depends_on`` (swarm ignores them), a placement constraint
``node.hostname == NODE`` on every service, DNS round-robin endpoints (no ingress routing mesh, so
no IPVS needed), an attachable overlay network of its own, and images clonekit made (golden copies,
branch builds) taken from ``previews.registry``.

Why one node per preview: a stack's named volumes are created by the engine of the node its task
runs on, and the database and file volumes must stay with their containers. So the database, the
files and the application of a preview run on the same node, chosen by most free memory (or
``previews.placement``), and everything done to their data goes to that node's engine
(``previews.nodes``, ``ssh://``): volumes are filled with ``docker run -i`` there, the database is
loaded through an SSH tunnel to the container's address on that node's ``docker_gwbridge`` (a
task's overlay address is not reachable from the node itself), and ``destroy`` removes the stack
on the manager, waits for the node to stop its containers, then removes the volumes there.

A ``SwarmNodeEngine`` is the node's ``DockerEngine`` (containers, volumes, exec, logs, tunnels)
whose ``compose_cli`` turns ``up`` into a stack deploy and ``down`` into a stack removal through
the manager. Each task container carries the ``com.docker.compose.project``/``service`` labels a
compose project's containers have, so the code that finds a preview's containers is the same for
both engines.
"""

from __future__ import annotations

import http.client
import logging
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config import MOST_FREE_MEMORY, SSH_ENGINE_URL, PreviewsConfig, SshTarget
from ..errors import ConfigError, PreviewError
from ..private_file import write_private
from ..retry import poll
from .compose import env_file_text, env_file_values
from .docker import DockerEngine, container_address
from .proxy import SniConnection

log = logging.getLogger("clonekit.runtime.swarm")

LABEL_NODE = "clonekit.node"
STACK_FILE = "stack.yml"
STACK_VERSION = "3.8"
GWBRIDGE = "docker_gwbridge"
# Repositories of the images clonekit makes: golden copies (materialize) and branch builds
# (--build). They exist on one engine; on a swarm they go through the registry.
OWN_REPOSITORIES = ("clonekit-golden/", "clonekit-preview/")
REMOVE_WAIT_SECONDS = 120.0
REGISTRY_TIMEOUT_SECONDS = 30.0
# What a registry may hold under a tag: Docker's and OCI's manifests and manifest lists.
MANIFEST_TYPES = ", ".join(("application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json",
                            "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"))
STOP_GRACE_PERIOD = "5s"  # as `compose down -t 5` on one engine: a preview's data is thrown away anyway
POLL_SECONDS = 0.5
_MEMORY_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
                 "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4}


@dataclass(frozen=True)
class SwarmNode:
    """One node of the swarm as ``docker node inspect`` and its engine see it."""

    hostname: str
    ready: bool  # Status.State == ready
    active: bool  # Spec.Availability == active (not paused or drained)
    memory_bytes: int  # Description.Resources.MemoryBytes
    used_bytes: int = 0  # memory used by its running containers (docker stats)

    @property
    def free_bytes(self) -> int:
        return max(self.memory_bytes - self.used_bytes, 0)


def registry_ref(registry: str, image: str) -> str:
    """``image`` (a clonekit-made repository) as named in the registry."""
    return f"{registry.rstrip('/')}/{image}"


def is_own_image(image: str) -> bool:
    return image.startswith(OWN_REPOSITORIES)


def own_image_of(registry: str, name: str) -> str | None:
    """The clonekit-made image a tag names, with or without the registry in front; None for others."""
    prefix = registry.rstrip("/") + "/"
    base = name[len(prefix):] if registry and name.startswith(prefix) else name
    return base if is_own_image(base) else None


def split_reference(ref: str) -> tuple[str, int | None, str, str]:
    """(host, port or None, repository, tag) of ``host[:port]/repository:tag`` (pure)."""
    first, _, rest = ref.partition("/")
    host, _, port = first.partition(":")
    repository, _, tag = rest.rpartition(":")
    return host, int(port) if port else None, repository, tag


def stack_document(document: Mapping[str, Any], *, node: str, registry: str,
                   services: Sequence[str] = ()) -> dict[str, Any]:
    """The stack file of a preview's compose document (pure): only ``services`` when given (the
    database first), every service pinned to ``node``, clonekit's images from ``registry``."""
    project = str(document["name"])
    out_services: dict[str, Any] = {}
    for name, spec in document["services"].items():
        if services and name not in services:
            continue
        adapted = {key: value for key, value in spec.items() if key not in ("restart", "depends_on", "ports", "build")}
        image = str(spec.get("image") or "")
        if is_own_image(image):
            adapted["image"] = registry_ref(registry, image)
        labels = dict(spec.get("labels") or {})
        adapted["labels"] = {**labels, "com.docker.compose.project": project, "com.docker.compose.service": name,
                             LABEL_NODE: node}
        adapted["stop_grace_period"] = STOP_GRACE_PERIOD
        adapted["deploy"] = {
            "endpoint_mode": "dnsrr",
            "placement": {"constraints": [f"node.hostname == {node}"]},
            "restart_policy": {"condition": "any"},
            "labels": {key: value for key, value in labels.items() if key.startswith("clonekit.")},
        }
        out_services[name] = adapted
    networks = {key: {**value, "driver": "overlay", "attachable": True}
                for key, value in (document.get("networks") or {}).items()}
    return {"version": STACK_VERSION, "services": out_services, "networks": networks,
            "volumes": dict(document.get("volumes") or {})}


def parse_memory(text: str) -> int:
    """Bytes in a ``docker stats`` memory figure ("12.5MiB", "1.2GB"); 0 when unreadable."""
    match = re.match(r"^\s*([\d.]+)\s*([a-zA-Z]+)\s*$", text)
    if not match:
        return 0
    unit = _MEMORY_UNITS.get(match.group(2).lower())
    return int(float(match.group(1)) * unit) if unit else 0


def choose_node(nodes: Sequence[SwarmNode], placement: str, allowed: Sequence[str]) -> SwarmNode:
    """The node a new preview runs on (pure): ``placement`` when it names one, else the ready,
    active node of ``allowed`` with the most free memory (ties: by hostname)."""
    usable = [n for n in nodes if n.hostname in allowed and n.ready and n.active]
    if placement != MOST_FREE_MEMORY:
        usable = [n for n in usable if n.hostname == placement]
    if not usable:
        known = ", ".join(f"{n.hostname} ({'ready' if n.ready else 'down'}, {'active' if n.active else 'not active'})"
                          for n in nodes) or "none"
        wanted = placement if placement != MOST_FREE_MEMORY else ", ".join(sorted(allowed))
        raise PreviewError(f"no ready and active swarm node among {wanted} (the swarm has: {known})",
                           hint="`docker node ls` on the manager; previews.nodes lists the nodes previews may use")
    return sorted(usable, key=lambda n: (-n.free_bytes, n.hostname))[0]


class Swarm:
    """The swarm behind ``previews.docker_host`` (its manager) and the engines of ``previews.nodes``."""

    def __init__(self, previews: PreviewsConfig) -> None:
        if not previews.uses_swarm or previews.registry is None:
            raise ConfigError("previews.engine is not swarm")
        self.previews = previews
        self.registry = previews.registry
        self.manager = DockerEngine.for_previews(previews)
        self._engines: dict[str, SwarmNodeEngine] = {}
        self._pushed: set[str] = set()
        self._registry_schemes: tuple[bool, ...] = (True, False)  # TLS first; the one that answered, once known

    def nodes(self, *, memory: bool = True) -> list[SwarmNode]:
        """Every node of the swarm; with ``memory``, the memory the containers of the ready nodes
        clonekit may use take (one ``docker stats`` on each)."""
        ids = self.manager.query(["node", "ls", "-q"], what="list the swarm's nodes").split()
        if not ids:
            return []
        out = []
        for item in self.manager.json(["node", "inspect", *ids], what="inspect the swarm's nodes"):
            hostname = str((item.get("Description") or {}).get("Hostname") or "")
            resources = (item.get("Description") or {}).get("Resources") or {}
            ready = ((item.get("Status") or {}).get("State") or "") == "ready"
            active = ((item.get("Spec") or {}).get("Availability") or "") == "active"
            used = self.used_memory(hostname) if memory and ready and hostname in self.previews.nodes else 0
            out.append(SwarmNode(hostname, ready, active, int(resources.get("MemoryBytes") or 0), used))
        return out

    def used_memory(self, hostname: str) -> int:
        text = self.engine(hostname).query(["stats", "--no-stream", "--format", "{{.MemUsage}}"],
                                           what=f"read the memory use of node {hostname}")
        return sum(parse_memory(line.split("/", 1)[0]) for line in text.splitlines() if line.strip())

    def place(self) -> str:
        """The hostname of the node a new preview goes to. The nodes' memory is read (one
        ``docker stats`` per node, over SSH: seconds) only when placement is by free memory."""
        placement = self.previews.placement
        nodes = self.nodes(memory=placement == MOST_FREE_MEMORY)
        return choose_node(nodes, placement, sorted(self.previews.nodes)).hostname

    def usable(self, hostname: str) -> bool:
        """The node is in the swarm, ready and active (a preview recorded there can stay)."""
        return any(n.hostname == hostname and n.ready and n.active for n in self.nodes(memory=False))

    def ready(self, hostname: str) -> bool:
        """The swarm sees the node ready (it answers; it may be drained)."""
        return any(n.hostname == hostname and n.ready for n in self.nodes(memory=False))

    def ready_engines(self) -> list[SwarmNodeEngine]:
        """The engines of the nodes of previews.nodes that the swarm sees ready (a lost one is skipped)."""
        ready = {n.hostname for n in self.nodes(memory=False) if n.ready}
        return [self.engine(hostname) for hostname in sorted(set(self.previews.nodes) & ready)]

    def engine(self, hostname: str) -> SwarmNodeEngine:
        if hostname not in self.previews.nodes:
            raise ConfigError(f"swarm node {hostname!r} is not in previews.nodes ({', '.join(sorted(self.previews.nodes))})",
                              hint="add it as hostname: ssh://user@host to previews.nodes in clonekit.yml")
        if hostname not in self._engines:
            self._engines[hostname] = SwarmNodeEngine(self, hostname, self.previews.nodes[hostname])
        return self._engines[hostname]

    def push(self, engine: DockerEngine, image: str) -> str:
        """Tag ``image`` (on ``engine``) into the registry and push it; returns the registry's name."""
        ref = registry_ref(self.registry, image)
        engine.cli(["tag", image, ref], what=f"tag {image} for the registry")
        engine.cli(["push", ref], what=f"push {ref} to previews.registry")
        return ref

    def publish_own_images(self, node: DockerEngine, document: Mapping[str, Any]) -> None:
        """Push the images clonekit made that ``document`` runs (a branch build on the node, a golden
        copy on the manager) to the registry, once per run: the stack names them there."""
        for spec in document["services"].values():
            image = str(spec.get("image") or "")
            if not is_own_image(image) or image in self._pushed:
                continue
            holder = next((engine for engine in (node, self.manager) if engine.exists("image", image)), None)
            if holder is None:  # pushed by an earlier run; the node pulls it from the registry
                continue
            self.push(holder, image)
            self._pushed.add(image)

    def deploy(self, compose_file: Path, document: Mapping[str, Any], node: str, services: Sequence[str]) -> None:
        """``docker stack deploy`` (through the manager) of the stack file made from ``document``,
        written beside ``compose_file`` (its env files are found there)."""
        stack_file = compose_file.parent / STACK_FILE
        stack = stack_document(document, node=node, registry=self.registry, services=services)
        # A stack reads env files as `docker run --env-file` does: quotes would be part of the
        # values (a database password with quotes around it), so the stack gets unquoted copies.
        for spec in stack["services"].values():
            copies = []
            for ref in spec.get("env_file") or []:
                values = env_file_values((compose_file.parent / ref).read_text(encoding="utf-8"))
                copy = f"{Path(ref).stem}.stack.env"
                write_private(compose_file.parent / copy, env_file_text(values, quoted=False))
                copies.append(copy)
            if copies:
                spec["env_file"] = copies
        text = yaml.safe_dump(stack, sort_keys=False, default_flow_style=False)
        stack_file.write_text(text, encoding="utf-8")
        stack_file.chmod(0o600)
        self.manager.cli(["stack", "deploy", "--with-registry-auth", "--resolve-image", "never", "-c", str(stack_file), str(document["name"])],
                         what=f"deploy stack {document['name']} on node {node}")

    def delete_from_registry(self, image: str) -> bool:
        """Delete the registry's copy of ``image`` (a clonekit-made image): its manifest, through
        the Registry API, from the manager (which pushed it, so reaches it) over a relay container
        there; HTTPS first, plain HTTP for a registry that does not speak TLS. The registry frees
        the space at its next garbage collection. False (logged, with what to do) when the
        registry refuses (no delete allowed, credentials asked, untrusted certificate)."""
        host, port, repository, tag = split_reference(registry_ref(self.registry, image))
        authority = f"{host}:{port}" if port else host
        answer = ""
        for tls in self._registry_schemes:
            try:
                with self.manager.relayed(port or (443 if tls else 80), host=host) as (address, local):
                    conn = (SniConnection(address, local, host, ssl.create_default_context(), REGISTRY_TIMEOUT_SECONDS)
                            if tls else http.client.HTTPConnection(address, local, timeout=REGISTRY_TIMEOUT_SECONDS))
                    try:
                        answer = _delete_manifest(conn, authority, repository, tag)
                    finally:
                        conn.close()
            except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
                answer = f"{'HTTPS' if tls else 'HTTP'}: {exc or type(exc).__name__}"
                continue
            self._registry_schemes = (tls,)  # the next image of this prune skips the failing attempt
            break
        if answer in ("deleted", "gone"):
            log.info("registry: %s %s", authority + "/" + repository + ":" + tag, answer)
            return True
        log.warning("registry: could not delete %s/%s:%s (%s); delete it there (its API or UI), then run its "
                    "garbage collection", authority, repository, tag, answer)
        return False

    def remove_stack(self, name: str) -> None:
        """``docker stack rm``; nothing to remove is not an error."""
        if self.manager.query(["stack", "ls", "--format", "{{.Name}}"], what="list stacks").split().count(name):
            self.manager.cli(["stack", "rm", name], what=f"remove stack {name}")


def _delete_manifest(conn: http.client.HTTPConnection, authority: str, repository: str, tag: str) -> str:
    """The registry's answer to deleting ``repository:tag``: deleted, gone, or why not."""
    headers = {"Host": authority, "Accept": MANIFEST_TYPES}
    conn.request("HEAD", f"/v2/{repository}/manifests/{tag}", headers=headers)
    found = conn.getresponse()
    found.read()
    if found.status == 404:
        return "gone"
    digest = found.getheader("Docker-Content-Digest") or ""
    if found.status != 200 or not digest:
        return f"HTTP {found.status} to reading the manifest"
    conn.request("DELETE", f"/v2/{repository}/manifests/{digest}", headers=headers)
    done = conn.getresponse()
    done.read()
    if done.status in (200, 202):
        return "deleted"
    if done.status == 404:
        return "gone"
    if done.status == 405:
        return "HTTP 405: the registry does not allow deletes (storage.delete.enabled)"
    return f"HTTP {done.status} to the delete"


class SwarmNodeEngine(DockerEngine):
    """The engine of one node (``ssh://``) for a preview pinned there; ``compose_cli`` goes to the manager."""

    def __init__(self, swarm: Swarm, hostname: str, url: str) -> None:
        match = SSH_ENGINE_URL.match(url[len("ssh://"):])
        assert match is not None  # validated in config
        base = swarm.previews.docker_ssh
        ssh = SshTarget(host=match.group("host"), user=match.group("user"), port=int(match.group("port") or 22),
                        known_hosts=base.known_hosts if base else None, key_file=base.key_file if base else None)
        super().__init__(url, ssh=ssh)
        self.swarm = swarm
        self.node = hostname

    def __repr__(self) -> str:
        return f"SwarmNodeEngine({self.node} {self.host})"

    def address_of(self, container: Mapping[str, Any]) -> str | None:
        """A stack task's overlay address is not reachable from its node; its ``docker_gwbridge``
        address is (the bridge every overlay container gets for its outside traffic)."""
        labels = (container.get("Config") or {}).get("Labels") or {}
        if "com.docker.swarm.task.id" not in labels:
            return container_address(container)
        found = self.inspect("network", [GWBRIDGE])
        endpoint = ((found[0].get("Containers") or {}) if found else {}).get(str(container.get("Id") or ""))
        address = str((endpoint or {}).get("IPv4Address") or "").split("/", 1)[0]
        return address or None

    def remove(self, kind: str, refs: Sequence[str]) -> None:
        """A stack's overlay network is the swarm's: a worker refuses to remove it, and its copy
        on the node goes once the manager has removed it. So swarm-scoped networks are removed on
        the manager (if still there), then awaited on the node; anything else is removed here."""
        if kind != "network" or not refs:
            super().remove(kind, refs)
            return
        found = self.inspect("network", refs)
        swarm_scoped = [str(n["Id"]) for n in found if n.get("Scope") == "swarm"]
        super().remove("network", [str(n["Id"]) for n in found if n.get("Scope") != "swarm"])
        if not swarm_scoped:
            return
        manager = self.swarm.manager
        for network in swarm_scoped:
            try:
                manager.remove("network", [network])
            except manager.error:
                if manager.exists("network", network):  # not merely removed already (by `stack rm`)
                    raise

        def attempt() -> bool | None:
            return True if not any(self.exists("network", n) for n in swarm_scoped) else None

        if not poll(attempt, timeout=REMOVE_WAIT_SECONDS, interval=POLL_SECONDS):
            raise PreviewError(f"node {self.node} still has network(s) {', '.join(n[:12] for n in swarm_scoped)} "
                               f"{REMOVE_WAIT_SECONDS:.0f} s after the manager removed them",
                               hint="`docker network ls` on that node; then `clonekit destroy` again")

    def compose_cli(self, compose_file: Path, project: str, args: Sequence[str], *, what: str) -> str:
        verb = args[0] if args else ""
        if verb == "up":
            document = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
            services = _positional(args[1:])
            self.swarm.publish_own_images(self, document)
            self.swarm.deploy(compose_file, document, self.node, services)
            if "--force-recreate" in args:  # the same specification: swarm would leave the tasks as they are
                for service in services:
                    self.swarm.manager.cli(["service", "update", "--force", "--quiet", f"{project}_{service}"],
                                           what=f"restart service {service} of stack {project}")
            self.wait_running(project, services or list(document["services"]))
            return ""
        if verb == "down":
            self.swarm.remove_stack(project)
            self.wait_removed(project)
            return ""
        raise PreviewError(f"`docker compose {verb}` has no stack equivalent (preview {project} runs on a swarm)")

    def wait_running(self, project: str, services: Sequence[str]) -> None:
        """Until a container of each service runs on this node (the swarm starts tasks asynchronously)."""
        def attempt() -> bool | None:
            running = {str(((c.get("Config") or {}).get("Labels") or {}).get("com.docker.compose.service"))
                       for c in self.containers({"com.docker.compose.project": project})
                       if (c.get("State") or {}).get("Running")}
            return True if set(services) <= running else None

        if not poll(attempt, timeout=REMOVE_WAIT_SECONDS, interval=POLL_SECONDS):
            tasks = self.swarm.manager.query(["stack", "ps", "--no-trunc", "--format", "{{.Name}} {{.CurrentState}} {{.Error}}",
                                              project], what=f"list the tasks of stack {project}")
            raise PreviewError(f"the services of stack {project} did not start on node {self.node} within "
                               f"{REMOVE_WAIT_SECONDS:.0f} s: {tasks.strip()[-1500:]}",
                               hint=f"`docker stack ps {project}` on the manager tells why (image pull, placement)")

    def wait_removed(self, project: str) -> None:
        """Until the node has no container and no network of the removed stack left (so its
        volumes, no longer in use, can be removed)."""
        labels = {"com.docker.stack.namespace": project}

        def attempt() -> bool | None:
            return True if not self.ids("container", labels) and not self.ids("network", labels) else None

        started = time.monotonic()
        if not poll(attempt, timeout=REMOVE_WAIT_SECONDS, interval=POLL_SECONDS):
            raise PreviewError(f"node {self.node} still runs containers of stack {project} "
                               f"{time.monotonic() - started:.0f} s after its removal",
                               hint="`docker ps` on that node; then `clonekit destroy` again")


def _positional(args: Sequence[str]) -> list[str]:
    """The service names of a ``compose up`` argv (options and ``--pull``'s value left out)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--pull",):
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out
