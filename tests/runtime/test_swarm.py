"""Previews on a Docker Swarm (``previews.engine: swarm``): a manager and two workers, each a dockerd
in a container of this machine (tests/runtime/conftest.py, swarm_cluster), the registry on the manager.

From the CLI: clones land on the node with the most free memory (so two clones go to two nodes),
each answers through clonekit's one HTTPS proxy on the manager (over its stack's overlay network),
from a container on the manager, and through an SSH tunnel to its node; a golden copy made on the manager reaches a
node that never had it through the registry; a drained node's preview moves on ``refresh``, and
so does a lost node's (its processes frozen);
destroy leaves no container, volume or network on any node.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from support import PROXY_IMAGE, runtime_lifecycle, source_project_config

from clonekit.config import load_config
from clonekit.golden import prune_golden_images
from clonekit.runtime.compose import env_file_values
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.proxy import Proxy, request_through
from clonekit.runtime.swarm import Swarm

# In the ckprod group (tests/conftest.py) with the WordPress swarm test, which uses the production:
# one worker starts the session's one swarm and runs both, one after the other (this one drains
# and pauses nodes).
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("ckprod")]

_lifecycle = runtime_lifecycle("ck_preview_lifecycle_swarm")
source = _lifecycle.source
PROD_URL = _lifecycle.PROD_URL
PASSWORD = "not-a-real-password"
REVIEW = {"Authorization": "Basic " + base64.b64encode(f"review:{PASSWORD}".encode()).decode()}


def _write_config(path: Path, source, project: str, cluster) -> None:
    config = source_project_config(source, project)
    config["previews"] |= {
        "engine": "swarm",
        "docker_host": cluster.url(cluster.manager),
        "docker_ssh": {"key_file": str(cluster.key_file), "known_hosts": str(cluster.known_hosts)},
        "registry": cluster.registry,
        "nodes": {hostname: cluster.url(hostname) for hostname in cluster.workers},
        "egress": "open",  # no egress rules on a swarm (refused otherwise)
        "replace": {PROD_URL: "{url}"},
        "url": "https://{name}.{project}.preview.test",  # served by the proxy on the manager (its ports 80/443)
        "proxy": {"bind": "127.0.0.1", "tls": "internal", "image": PROXY_IMAGE,
                  "auth": {"user": "review", "password_env": "CK_TEST_REVIEW_PASSWORD"}},
    }
    path.write_text(yaml.safe_dump(config))


def _through_proxy(path: Path, project: str, name: str) -> tuple[int, bytes]:
    """GET /index.html of preview ``name`` through the proxy on the manager (an SSH tunnel to it)."""
    config = load_config(path)
    proxy = Proxy(DockerEngine.for_previews(config.previews))
    try:
        with proxy.reach(config.previews.proxy) as (address, port):
            status, _, body = request_through(config.previews.proxy, f"{name}.{project}.preview.test", "/index.html",
                                              headers=REVIEW, address=address, port=port)
            return status, body
    finally:
        proxy.close()


def _routes(path: Path) -> dict[str, str]:
    """The proxy's routes on the manager (host -> upstream), as `clonekit proxy status` reads them."""
    config = load_config(path)
    proxy = Proxy(DockerEngine.for_previews(config.previews))
    try:
        return {route.host: route.upstream for route in proxy.status().routes}
    finally:
        proxy.close()


def _over_overlay(cluster, network: str, host: str) -> str:
    """GET /index.html of ``host`` from a throwaway container on the manager attached to ``network``."""
    done = cluster.docker(cluster.manager, "run", "--rm", "--network", network, "clonekit/busybox:latest", "sh", "-c",
                          f'printf "GET /index.html HTTP/1.0\\r\\n\\r\\n" | nc -w 10 {host} 80')
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def _registry_tags(cluster, project: str) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """The tags the test registry holds in the repositories of ``project`` (its API, from here)."""
    import urllib.error
    import urllib.request

    def get(path: str) -> dict:
        try:
            with urllib.request.urlopen(f"http://{cluster.registry}/v2/{path}", timeout=30) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {}
            raise

    repositories = [r for r in get("_catalog").get("repositories") or [] if project in r]
    return {r: list(get(f"{r}/tags/list").get("tags") or []) for r in repositories}


def _wait_until(condition, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)


def _wait_node(cluster, hostname: str, state: str) -> None:  # type: ignore[no-untyped-def]
    """Until the manager sees ``hostname`` in ``state`` (ready, down)."""
    _wait_until(lambda: cluster.docker(cluster.manager, "node", "inspect", "-f", "{{.Status.State}}", hostname)
                .stdout.decode().strip() == state)


def test_previews_across_a_swarm(source, swarm_cluster, tmp_path: Path) -> None:
    cluster = swarm_cluster
    project = f"ckswarm{uuid.uuid4().hex[:6]}"
    path = tmp_path / "clonekit.yml"
    _write_config(path, source, project, cluster)
    env = {**os.environ, "CK_TEST_DB_PASSWORD": source["server"].password, "CK_TEST_REVIEW_PASSWORD": PASSWORD}
    label = f"clonekit.project={project}"
    every_node = (cluster.manager, *cluster.workers)

    def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(path), *args],
                              capture_output=True, text=True, env=env, timeout=600)

    def listed() -> dict[str, dict]:
        done = clonekit("--json", "list")
        assert done.returncode == 0, done.stderr
        return {p["name"]: p for p in json.loads(done.stdout)}

    try:
        done = clonekit("clone", "prod", "--as", "s1")
        assert done.returncode == 0, done.stderr
        branch = tmp_path / "branch"  # a branch's web image: built on its node, pushed to the registry
        branch.mkdir()
        (branch / "Dockerfile").write_text("FROM clonekit/busybox:latest\nCOPY marker /marker\n")
        (branch / "marker").write_text("the branch\n")
        done = clonekit("clone", "prod", "--as", "s2", "--max-age", "1h", "--build", f"web={branch}")
        assert done.returncode == 0, done.stderr
        previews = listed()
        nodes = {previews["s1"]["node"], previews["s2"]["node"]}
        assert nodes == set(cluster.workers)  # the second went to the node with more free memory
        assert all(previews[n]["status"] == "running" for n in ("s1", "s2"))
        for name in ("s1", "s2"):
            node = previews[name]["node"]
            assert cluster.labelled(node, "volume", f"clonekit.preview={name}")
            other = next(w for w in cluster.workers if w != node)
            assert cluster.labelled(other, "container", f"clonekit.preview={name}") == []
        assert cluster.labelled(cluster.manager, "container", label) == []  # the manager runs none of them
        table = clonekit("list")
        assert table.returncode == 0 and "NODE" in table.stdout.splitlines()[0], table.stderr
        assert all(previews[n]["node"] in line for n in ("s1", "s2")
                   for line in table.stdout.splitlines() if line.startswith(f"{n} "))

        # Each answers through the one proxy on the manager, whichever node runs it...
        for name in ("s1", "s2"):
            assert _through_proxy(path, project, name) == (200, b"hello from the snapshot\n"), name
        assert cluster.labelled(cluster.manager, "container", "clonekit.proxy=1")
        # ...over its own overlay network, from the manager...
        for name in ("s1", "s2"):
            answer = _over_overlay(cluster, f"ck-{project}-{name}", "web")
            assert answer.startswith("HTTP/1.") and answer.endswith("hello from the snapshot\n"), answer
        # ...and through an SSH tunnel to its node, as clonekit's own HTTP check does.
        config = load_config(path)
        swarm = Swarm(config.previews)
        engine = swarm.engine(previews["s2"]["node"])
        web = engine.containers({"clonekit.project": project, "clonekit.preview": "s2", "clonekit.service": "web"})[0]
        with engine.reach(web, 80) as (host, port):
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/sub/data.txt")
            assert conn.getresponse().read() == b"a file in the volume\n"  # the file tree reached the node
            conn.close()
        done = clonekit("db", "s1", "-e", "SELECT value FROM options WHERE name = 'siteurl'")
        assert done.returncode == 0 and previews["s1"]["url"] in done.stdout and PROD_URL not in done.stdout, done.stderr
        done = clonekit("exec", "s2", "--", "cat", "/marker")
        assert done.returncode == 0 and done.stdout == "the branch\n", done.stderr
        # The secrets reach the application as they are (a stack's env file takes quotes literally).
        done = clonekit("exec", "s1", "--", "sh", "-c", 'printf %s "$DB_PASSWORD"')
        env_file = next((tmp_path / ".clonekit" / "previews" / "s1").glob("web.env"))
        expected = env_file_values(env_file.read_text())["DB_PASSWORD"]
        assert done.returncode == 0 and expected and done.stdout == expected, done.stderr
        done = clonekit("exec", "s2", "--", "cat", "/www/index.html")
        assert done.returncode == 0 and done.stdout == "hello from the snapshot\n", done.stderr

        # A golden copy made on the manager, pushed to the registry, pulled by a node that never had it.
        done = clonekit("materialize", "prod@latest")
        assert done.returncode == 0, done.stderr
        golden = f"{cluster.registry}/clonekit-golden/{project}-db"
        target = previews["s1"]["node"]
        assert not any(golden in line for line in cluster.docker(target, "images", "--format", "{{.Repository}}")
                       .stdout.decode().split())
        raw = yaml.safe_load(path.read_text())
        raw["previews"]["placement"] = target
        path.write_text(yaml.safe_dump(raw))
        done = clonekit("restore", "prod@latest", "--as", "s3")
        assert done.returncode == 0, done.stderr
        previews = listed()
        assert previews["s3"]["node"] == target and previews["s3"]["restore_path"] == "golden"
        assert previews["s3"]["status"] == "running"
        assert golden in cluster.docker(target, "images", "--format", "{{.Repository}}").stdout.decode().split()
        answer = _over_overlay(cluster, f"ck-{project}-s3", "web")
        assert answer.endswith("hello from the snapshot\n"), answer

        # A drained node's preview is recreated elsewhere by refresh, and the node is cleaned.
        raw["previews"].pop("placement")
        path.write_text(yaml.safe_dump(raw))
        drained = previews["s2"]["node"]
        assert cluster.docker(cluster.manager, "node", "update", "--availability", "drain", drained).returncode == 0
        try:
            done = clonekit("refresh", "s2")
            assert done.returncode == 0, done.stderr
        finally:
            cluster.docker(cluster.manager, "node", "update", "--availability", "active", drained)
        previews = listed()
        assert previews["s2"]["node"] != drained and previews["s2"]["status"] == "running"
        done = clonekit("exec", "s2", "--", "cat", "/marker")  # the branch image came from the registry
        assert done.returncode == 0 and done.stdout == "the branch\n", done.stderr
        for kind in ("container", "volume"):
            assert cluster.labelled(drained, kind, "clonekit.preview=s2") == [], kind
        assert _through_proxy(path, project, "s2") == (200, b"hello from the snapshot\n")  # its route followed

        # A node that stops answering (its processes frozen): refresh recreates its preview on
        # another node without waiting for it, and names what the lost node keeps; destroy of a
        # preview there goes through the manager alone (stack, route, the registry's branch image).
        lost = previews["s1"]["node"]
        assert previews["s2"]["node"] == lost  # moved there from the drained node: the only other one
        subprocess.run(["docker", "pause", lost], check=True, capture_output=True)
        try:
            _wait_node(cluster, lost, "down")
            done = clonekit("refresh", "s1")
            assert done.returncode == 0, done.stderr
            assert f"could not clean node {lost}" in done.stderr and "clonekit.preview=s1" in done.stderr, done.stderr
            previews = listed()
            assert previews["s1"]["node"] != lost and previews["s1"]["status"] == "running"
            assert _through_proxy(path, project, "s1") == (200, b"hello from the snapshot\n")
            done = clonekit("destroy", "s2", "--yes")
            assert done.returncode == 0, done.stderr
            assert f"could not clean node {lost}" in done.stderr and "clonekit.preview=s2" in done.stderr, done.stderr
            destroy_log = done.stderr  # names the commands to run on the node once it is back
            assert "s2" not in listed() and f"s2.{project}.preview.test" not in _routes(path)
            pushed = _registry_tags(cluster, project)
            assert [r for r in pushed if r.startswith("clonekit-preview/")] and not any(
                tags for r, tags in pushed.items() if r.startswith("clonekit-preview/")), pushed
            stacks = cluster.docker(cluster.manager, "stack", "ls", "--format", "{{.Name}}").stdout.decode().split()
            assert f"ck-{project}-s2" not in stacks
        finally:
            subprocess.run(["docker", "unpause", lost], check=True, capture_output=True)
        _wait_node(cluster, lost, "ready")
        # Back, the node stops the tasks of the removed stacks; their volumes (and s2's branch image)
        # stay until removed by hand, with the commands the log gave.
        for name in ("s1", "s2"):
            _wait_until(lambda name=name: cluster.labelled(lost, "container", f"clonekit.preview={name}") == [])
            assert cluster.labelled(lost, "volume", f"clonekit.preview={name}")
        assert cluster.labelled(lost, "image", "clonekit.preview=s2")
        for name in ("s1", "s2"):
            for kind in ("volume", "image"):
                command = f"docker {kind} prune {'-a ' if kind == 'image' else ''}-f --filter label=clonekit.preview={name}"
                assert name != "s2" or command in destroy_log, destroy_log
                assert cluster.docker(lost, *command.split()[1:]).returncode == 0
            assert cluster.labelled(lost, "volume", f"clonekit.preview={name}") == []
        assert cluster.labelled(lost, "image", "clonekit.preview=s2") == []

        done = clonekit("destroy", "--all", "--yes")
        assert done.returncode == 0, done.stderr
        done = clonekit("--json", "proxy", "status")
        assert done.returncode == 0, done.stderr
        assert not [r for r in json.loads(done.stdout)["routes"] if project in r["host"]]
        for node in every_node:
            for kind in ("container", "volume", "network"):
                assert cluster.labelled(node, kind, label) == [], (node, kind)
        stacks = cluster.docker(cluster.manager, "stack", "ls", "--format", "{{.Name}}").stdout.decode().split()
        assert not [s for s in stacks if project in s]
        pushed = _registry_tags(cluster, project)  # destroyed: the branch image's copy went, the golden ones stay
        assert [r for r in pushed if r.startswith("clonekit-preview/")] and not any(
            tags for r, tags in pushed.items() if r.startswith("clonekit-preview/")), pushed
        assert any(tags for r, tags in pushed.items() if r.startswith("clonekit-golden/")), pushed
        assert prune_golden_images(config, keep=[])
        for node in every_node:
            assert cluster.labelled(node, "image", label) == [], node
        assert not any(_registry_tags(cluster, project).values()), _registry_tags(cluster, project)
    finally:
        clonekit("destroy", "--all", "--yes")
        clonekit("proxy", "stop")
