"""The WordPress production (ckprod) cloned onto a Docker Swarm: two previews land on the two
workers and each answers through clonekit's one proxy on the manager, with its own address in the
page (previews.replace applied) and the production's nowhere; destroy leaves nothing on any node.

The session's swarm (swarm_cluster), the shop's swarm test's: both are in the ckprod xdist group
(this one uses the production; tests/runtime/test_swarm.py joins the group), so one worker starts
one swarm and runs them one after the other (the shop's test drains and pauses nodes)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from support import PROXY_IMAGE

from clonekit.config import load_config
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.proxy import Proxy, request_through

pytestmark = pytest.mark.docker
WORDPRESS_IMAGE = "clonekit/wordpress:6.1"
PASSWORD = "not-a-real-password"


def test_wordpress_previews_across_a_swarm(ckprod, swarm_cluster, tmp_path: Path) -> None:
    cluster = swarm_cluster
    every_node = (cluster.manager, *cluster.workers)
    # The application's image on every node (what a public registry would give them).
    saved = subprocess.run(["docker", "save", WORDPRESS_IMAGE], check=True, capture_output=True).stdout
    with ThreadPoolExecutor(max_workers=len(every_node)) as pool:
        for done in pool.map(lambda node: cluster.docker(node, "load", "-q", input=saved), every_node):
            assert done.returncode == 0, done.stderr

    project = f"ckswwp{uuid.uuid4().hex[:6]}"
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "demo" / "clonekit.yml").read_text())
    config["project"] = project
    config["previews"] |= {
        "engine": "swarm", "docker_host": cluster.url(cluster.manager),
        "docker_ssh": {"key_file": str(cluster.key_file), "known_hosts": str(cluster.known_hosts)},
        "registry": cluster.registry, "nodes": {hostname: cluster.url(hostname) for hostname in cluster.workers},
        "egress": "open",  # no egress rules on a swarm
        "url": "https://{name}.{project}.preview.test",
        "proxy": {"bind": "127.0.0.1", "tls": "internal", "image": PROXY_IMAGE,
                  "auth": {"user": "review", "password_env": "CK_TEST_REVIEW_PASSWORD"}},
    }
    path = tmp_path / "clonekit.yml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, **ckprod.secrets, "CLONEKIT_SECRET": "5e" * 32, "CK_TEST_REVIEW_PASSWORD": PASSWORD}
    label = f"clonekit.project={project}"

    def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(path), *args],
                              capture_output=True, text=True, env=env, timeout=900)

    try:
        for name, extra in (("w1", ()), ("w2", ("--max-age", "1h"))):
            done = clonekit("clone", "prod", "--as", name, *extra)
            assert done.returncode == 0, done.stderr
        listed = {p["name"]: p for p in json.loads(clonekit("--json", "list").stdout)}
        assert {listed["w1"]["node"], listed["w2"]["node"]} == set(cluster.workers)
        loaded = load_config(path)
        proxy = Proxy(DockerEngine.for_previews(loaded.previews))
        review = {"Authorization": "Basic " + base64.b64encode(f"review:{PASSWORD}".encode()).decode()}
        try:
            with proxy.reach(loaded.previews.proxy) as (address, port):
                for name in ("w1", "w2"):
                    host = f"{name}.{project}.preview.test"
                    status, _, body = request_through(loaded.previews.proxy, host, "/", headers=review,
                                                      address=address, port=port, timeout=60)
                    page = body.decode("utf-8", "replace")
                    assert status == 200 and "<title>" in page, (status, page[:500])
                    assert f"https://{host}" in page and ckprod.url not in page
        finally:
            proxy.close()

        done = clonekit("destroy", "--all", "--yes")
        assert done.returncode == 0, done.stderr
        for node in every_node:
            for kind in ("container", "volume", "network"):
                assert cluster.labelled(node, kind, label) == [], (node, kind)
    finally:
        clonekit("destroy", "--all", "--yes")
        clonekit("proxy", "stop")
