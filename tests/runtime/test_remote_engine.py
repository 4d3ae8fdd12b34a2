"""Previews on a remote Docker engine: ``previews.docker_host: ssh://root@127.0.0.1:PORT`` where the
engine is a second dockerd reachable only through sshd (tests/runtime/conftest.py, remote_engine).

Every preview command runs from the CLI against it: clone (cold), materialize and restore (golden),
refresh, list, exec, logs, db, proxy, destroy, and the golden prune. The database is loaded and the
HTTP check done through SSH tunnels to the containers (nothing is published for the database on the
remote host), the previews are served by clonekit's HTTPS proxy on the remote engine, and nothing
is created on the local engine.
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
from clonekit.errors import ConfigError
from clonekit.golden import prune_golden_images
from clonekit.preview import create_preview
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.proxy import Proxy, request_through

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("ckremote")]  # one worker starts the remote engine

# The runtime tests' "production" (a small database, a folder, a compose project): reused as is.
_lifecycle = runtime_lifecycle("ck_preview_lifecycle_remote")
source = _lifecycle.source
PROD_URL = _lifecycle.PROD_URL
PASSWORD = "not-a-real-password"
REVIEW = {"Authorization": "Basic " + base64.b64encode(f"review:{PASSWORD}".encode()).decode()}


def _write_config(path: Path, source, project: str, remote, *, known_hosts: Path | None = None) -> None:
    config = source_project_config(source, project)
    config["previews"] |= {
        "docker_host": remote.url,
        "docker_ssh": {"key_file": str(remote.key_file), "known_hosts": str(known_hosts or remote.known_hosts)},
        "replace": {PROD_URL: "{url}"},  # (egress: the default, no-mail, set on the remote host)
        "url": "https://{name}.{project}.preview.test",  # no {port}: served by the proxy on the remote engine
        # The remote host's own ports 80/443 (its engine is another machine's: no clash with this one's).
        "proxy": {"bind": "127.0.0.1", "tls": "internal", "image": PROXY_IMAGE, "auth": {"user": "review", "password_env": "CK_TEST_REVIEW_PASSWORD"}},
    }
    path.write_text(yaml.safe_dump(config))


def _local_labelled(project: str) -> list[str]:
    found = []
    for args in (["ps", "-aq"], ["volume", "ls", "-q"], ["network", "ls", "-q"], ["image", "ls", "-q"]):
        found += subprocess.run(["docker", *args, "--filter", f"label=clonekit.project={project}"],
                                check=True, capture_output=True, text=True).stdout.split()
    return found


def test_every_preview_command_on_a_remote_engine(source, remote_engine, tmp_path: Path) -> None:
    project = f"ckremote{uuid.uuid4().hex[:6]}"
    path = tmp_path / "clonekit.yml"
    _write_config(path, source, project, remote_engine)
    env = {**os.environ, "CK_TEST_DB_PASSWORD": source["server"].password, "CK_TEST_REVIEW_PASSWORD": PASSWORD}
    label = f"clonekit.project={project}"

    def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(path), *args],
                              capture_output=True, text=True, env=env, timeout=600)

    def routes() -> dict[str, str]:
        done = clonekit("--json", "proxy", "status")
        assert done.returncode == 0, done.stderr
        return {r["host"]: r["upstream"] for r in json.loads(done.stdout)["routes"]}

    try:
        done = clonekit("clone", "prod", "--as", "r1")
        assert done.returncode == 0, done.stderr
        assert remote_engine.labelled("container", label) and remote_engine.labelled("volume", label)
        assert _local_labelled(project) == []  # nothing on the local engine

        # The database publishes nothing on the remote host; the HTTP answer comes through a tunnel.
        config = load_config(path)
        engine = DockerEngine.for_previews(config.previews)
        containers = engine.containers({"clonekit.project": project, "clonekit.preview": "r1"})
        by_service = {c["Config"]["Labels"]["clonekit.service"]: c for c in containers}
        assert not (by_service["db"]["NetworkSettings"].get("Ports") or {}).get("3306/tcp")
        with engine.reach(by_service["web"], 80) as (host, port):
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request("GET", "/index.html")
            answer = conn.getresponse()
            assert answer.status == 200 and answer.read() == b"hello from the snapshot\n"
            conn.close()

        done = clonekit("exec", "r1", "--", "cat", "/www/sub/data.txt")
        assert done.returncode == 0 and done.stdout == "a file in the volume\n", done.stderr
        done = clonekit("logs", "r1", "--tail", "5")
        assert done.returncode == 0, done.stderr
        done = clonekit("db", "r1", "-e", "SELECT value FROM options WHERE name = 'siteurl'")
        assert done.returncode == 0, done.stderr
        listed = json.loads(clonekit("--json", "list").stdout)
        preview_url = next(p["url"] for p in listed if p["name"] == "r1")
        assert preview_url in done.stdout and PROD_URL not in done.stdout  # loaded and rewritten through the tunnel

        # Golden: materialized on the remote engine, a clone from it, then a refresh of the cold one.
        done = clonekit("materialize", "prod@latest")
        assert done.returncode == 0, done.stderr
        assert remote_engine.labelled("image", label)
        done = clonekit("restore", "prod@latest", "--as", "r2")
        assert done.returncode == 0, done.stderr
        previews = {p["name"]: p for p in json.loads(clonekit("--json", "list").stdout)}
        assert previews["r2"]["restore_path"] == "golden" and previews["r2"]["status"] == "running"
        done = clonekit("-vv", "refresh", "r1")  # -vv: each proxy admin request and its time, if it fails
        assert done.returncode == 0, done.stderr
        done = clonekit("exec", "r2", "--", "cat", "/www/index.html")
        assert done.returncode == 0 and done.stdout == "hello from the snapshot\n", done.stderr

        # previews.egress no-mail, on the remote host: r1 reaches a server on that host (listening on
        # its network's gateway address), but not on an SMTP port.
        mx = f"ckeg-{uuid.uuid4().hex[:6]}"
        remote_engine.docker("run", "-d", "--name", mx, "--network", "host", "--label", label, "clonekit/busybox:latest",
                             "sh", "-c", "(while true; do echo 220 | nc -l -p 25; done) & "
                                         "while true; do echo 220 | nc -l -p 2525; done")
        refreshed = engine.containers({"clonekit.project": project, "clonekit.preview": "r1", "clonekit.service": "web"})[0]
        mx_address = next(iter(refreshed["NetworkSettings"]["Networks"].values()))["Gateway"]
        web = refreshed["Id"]

        seen: list[object] = []

        def reaches(port: int) -> bool:
            for _ in range(20):  # (the listener may not be up yet)
                done = remote_engine.docker("exec", web, "sh", "-c", f"nc -w 5 {mx_address} {port} </dev/null")
                seen.append((port, done.returncode, done.stdout, done.stderr))
                if done.returncode == 0 and b"220" in done.stdout:
                    return True
                if port == 25:
                    return False
                time.sleep(0.5)
            return False

        assert reaches(2525), seen[-3:]
        assert not reaches(25)
        rules = subprocess.run(["docker", "exec", remote_engine.container, "iptables", "-S"], capture_output=True,
                               text=True, check=True).stdout
        assert f"clonekit ck-{project}-r1" in rules
        remote_engine.docker("rm", "-f", mx)

        # Served by the proxy on the remote engine (reached here through an SSH tunnel): the
        # password is asked for, the preview answers; `proxy status` and `proxy ca` work there.
        r1_host = f"r1.{project}.preview.test"
        assert set(routes()) >= {r1_host, f"r2.{project}.preview.test"}
        cfg = config.previews.proxy
        proxy = Proxy(engine)
        with proxy.reach(cfg) as (address, port):
            status, _, body = request_through(cfg, r1_host, "/index.html", headers=REVIEW, address=address, port=port)
            assert (status, body) == (200, b"hello from the snapshot\n")
            assert request_through(cfg, r1_host, "/index.html", address=address, port=port)[0] == 401
        proxy.close()
        done = clonekit("proxy", "ca")
        assert done.returncode == 0 and done.stdout.startswith("-----BEGIN CERTIFICATE-----"), done.stderr

        done = clonekit("destroy", "--all", "--yes")
        assert done.returncode == 0, done.stderr
        for kind in ("container", "volume", "network"):
            assert remote_engine.labelled(kind, label) == [], kind
        assert not any(host.endswith(f".{project}.preview.test") for host in routes())
        rules = subprocess.run(["docker", "exec", remote_engine.container, "iptables", "-S"], capture_output=True,
                               text=True, check=True).stdout
        assert f"clonekit ck-{project}-" not in rules  # the egress rules went too
        assert prune_golden_images(config, keep=[])
        assert remote_engine.labelled("image", label) == []
        assert _local_labelled(project) == []
    finally:
        clonekit("destroy", "--all", "--yes")
        clonekit("proxy", "stop")
        for kind in ("container", "volume"):
            ids = remote_engine.labelled(kind, label)
            if ids:
                remote_engine.docker(*(["rm", "-f", "-v"] if kind == "container" else ["volume", "rm", "-f"]), *ids)


def test_unknown_host_key_is_refused(source, remote_engine, tmp_path: Path) -> None:
    """A host key that is not in the configured known_hosts is never accepted: exit 1, with the next step."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    path = tmp_path / "clonekit.yml"
    _write_config(path, source, f"ckremote{uuid.uuid4().hex[:6]}", remote_engine, known_hosts=empty)
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(path), "list"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Host key verification failed" in done.stderr and str(empty) in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_proxy_password_is_refused_before_anything(source, remote_engine, tmp_path: Path,
                                                             monkeypatch) -> None:
    """The remote proxy's password variable unset: exit 2 before anything is built, removed or
    created on the remote engine."""
    project = f"ckremote{uuid.uuid4().hex[:6]}"
    path = tmp_path / "clonekit.yml"
    _write_config(path, source, project, remote_engine)
    monkeypatch.delenv("CK_TEST_REVIEW_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="CK_TEST_REVIEW_PASSWORD is not set") as refused:
        create_preview(load_config(path), None, None, "r9")
    assert refused.value.exit_code == 2
    assert not (tmp_path / ".clonekit" / "previews" / "r9").exists()
    for kind in ("container", "volume", "network"):
        assert remote_engine.labelled(kind, f"clonekit.project={project}") == [], kind


def test_a_source_engine_over_ssh_checks_the_host_key_too(remote_engine, tmp_path: Path) -> None:
    """``containers.docker_host: ssh://`` on the source side goes through the same host-key-checking
    ssh as previews: the source's ssh.known_hosts decides; an unknown key fails, never prompts."""
    from clonekit.config import ContainersSource, SshTarget, source_engine_ssh
    from clonekit.containers import capture_services
    from clonekit.errors import SourceError

    port = int(remote_engine.url.rsplit(":", 1)[1])
    spec = ContainersSource(compose_project="ckremote-none", docker_host=remote_engine.url)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    untrusted = SshTarget("127.0.0.1", "root", port, str(empty), str(remote_engine.key_file))
    with pytest.raises(SourceError, match="Host key verification failed"):
        capture_services(spec, ssh=untrusted)
    trusted = SshTarget("127.0.0.1", "root", port, str(remote_engine.known_hosts), str(remote_engine.key_file))
    assert source_engine_ssh(remote_engine.url, trusted) == trusted
    with pytest.raises(SourceError, match="ckremote-none"):  # reached the engine: the project is not there
        capture_services(spec, ssh=trusted)


def test_previews_on_a_tcp_engine_with_tls(source, remote_engine, tmp_path: Path) -> None:
    """``previews.docker_host: tcp://`` with ``docker_tls`` (mutual TLS, no SSH): the database is
    loaded and the HTTP check done through relay containers in the preview containers' network
    namespaces, over the docker CLI's own connection; the egress rules are set on the remote host."""
    project = f"cktls{uuid.uuid4().hex[:6]}"
    path = tmp_path / "clonekit.yml"
    config = source_project_config(source, project)
    config["previews"] |= {"docker_host": remote_engine.tls_url, "docker_tls": {"cert_path": str(remote_engine.tls_dir)},
                           "replace": {PROD_URL: "{url}"}}
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "CK_TEST_DB_PASSWORD": source["server"].password}
    label = f"clonekit.project={project}"

    def clonekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(path), *args],
                              capture_output=True, text=True, env=env, timeout=600)

    try:
        done = clonekit("clone", "prod", "--as", "t1")
        assert done.returncode == 0, done.stderr
        assert remote_engine.labelled("container", label) and _local_labelled(project) == []
        done = clonekit("exec", "t1", "--", "cat", "/www/sub/data.txt")
        assert done.returncode == 0 and done.stdout == "a file in the volume\n", done.stderr
        done = clonekit("db", "t1", "-e", "SELECT value FROM options WHERE name = 'siteurl'")
        assert done.returncode == 0 and PROD_URL not in done.stdout and "127.0.0.1" in done.stdout, done.stderr
        rules = subprocess.run(["docker", "exec", remote_engine.container, "iptables", "-S"], capture_output=True,
                               text=True, check=True).stdout
        assert f"clonekit ck-{project}-t1" in rules  # egress: no-mail, the default
        done = clonekit("destroy", "t1", "--yes")
        assert done.returncode == 0, done.stderr
        for kind in ("container", "volume", "network"):
            assert remote_engine.labelled(kind, label) == [], kind
        assert remote_engine.labelled("container", "clonekit.relay=1") == []  # the relays went with their connections
    finally:
        clonekit("destroy", "--all", "--yes")
