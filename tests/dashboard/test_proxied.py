"""dashboard.url on the previews' proxy: `clonekit serve` routes its host name through the real
Caddy proxy to the dashboard (its own password, no second prompt), replaces a stale route of an
earlier run, and takes the route, the proxy's attachment and its network away when it stops."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from support import PROXY_HTTP_PORT, PROXY_HTTPS_PORT, PROXY_IMAGE, PROXY_YAML

from clonekit.config import ProxyAuth, ProxyConfig, parse_config
from clonekit.dashboard.proxied import NETWORK_PREFIX, needs_own_socket, proxied_host
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.proxy import Proxy, Route, request_through

# one proxy per engine, with the settings every proxy test shares (tests/support.py): one worker
pytestmark = pytest.mark.xdist_group("ckprod")

CFG = ProxyConfig(bind="127.0.0.1", http_port=PROXY_HTTP_PORT, https_port=PROXY_HTTPS_PORT, tls="internal",
                  image=PROXY_IMAGE, auth=ProxyAuth("review", "CLONEKIT_TEST_REVIEW_PASSWORD"))
USER = "agency"
PASSWORD = "dash-" + uuid.uuid4().hex[:10]
GUARD_SECONDS = 120  # only keeps a broken build from hanging the suite


def _config(tmp_path: Path, project: str, url: str, previews: str = PROXY_YAML) -> Path:
    path = tmp_path / "clonekit.yml"
    path.write_text(textwrap.dedent(f"""\
        project: {project}
        sources: {{prod: {{files: [/srv/files]}}}}
        dashboard: {{user: {USER}, password_env: CK_TEST_PROXIED_PASSWORD, url: "{url}"}}
        previews:""") + previews)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "clonekit", "-c", str(config), "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_which_dashboard_urls_the_proxy_serves(tmp_path: Path) -> None:
    def host(url: str, previews_url: str = f"https://{{name}}.preview.test:{PROXY_HTTPS_PORT}") -> str | None:
        base = {"project": "news", "sources": {"prod": {"files": ["/srv/files"]}}, "dashboard": {"url": url},
                "previews": {"url": previews_url, "proxy": {"http_port": PROXY_HTTP_PORT,
                                                            "https_port": PROXY_HTTPS_PORT}}}
        return proxied_host(parse_config(base, tmp_path / "clonekit.yml"))

    assert host(f"https://ck.preview.test:{PROXY_HTTPS_PORT}") == "ck.preview.test"
    assert host(f"http://ck.preview.test:{PROXY_HTTP_PORT}/") == "ck.preview.test"  # redirected to HTTPS
    assert host("https://ck.preview.test") is None  # 443: not the proxy's port
    assert host("http://ck.preview.test:8765") is None  # served directly
    assert host(f"https://ck.preview.test:{PROXY_HTTPS_PORT}", "http://127.0.0.1:{port}") is None  # no proxy
    assert needs_own_socket("127.0.0.1", "172.18.0.1") and not needs_own_socket("0.0.0.0", "172.18.0.1")


def test_checked_before_anything_is_made(tmp_path: Path) -> None:
    project = f"dx{uuid.uuid4().hex[:6]}"
    url = f"https://ck-{project}.preview.test:{PROXY_HTTPS_PORT}"
    env = {k: v for k, v in os.environ.items() if k != "CK_TEST_PROXIED_PASSWORD"}
    # dashboard.password_env is named in the file: unset, nothing starts
    config = _config(tmp_path, project, url)
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "serve", "--port", "1"],
                          capture_output=True, text=True, env=env, timeout=GUARD_SECONDS)
    assert done.returncode == 2 and "CK_TEST_PROXIED_PASSWORD" in done.stderr and "Traceback" not in done.stderr
    # a remote preview engine: its proxy is not managed from here
    remote = PROXY_YAML + "  docker_host: tcp://192.0.2.1:2376\n"
    config = _config(tmp_path, project, url, remote)
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "serve", "--port", "1"],
                          capture_output=True, text=True, env={**env, "CK_TEST_PROXIED_PASSWORD": PASSWORD},
                          timeout=GUARD_SECONDS)
    assert done.returncode == 2, done.stderr
    assert "dashboard.url" in done.stderr and "tcp://192.0.2.1:2376" in done.stderr and "Traceback" not in done.stderr
    assert not DockerEngine().exists("network", NETWORK_PREFIX + project)


def test_dashboard_url_is_routed_by_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLONEKIT_TEST_REVIEW_PASSWORD", "review-" + PASSWORD)
    project = f"dp{uuid.uuid4().hex[:6]}"
    host = f"ck-{project}.preview.test"
    network = NETWORK_PREFIX + project
    proxy = Proxy(DockerEngine())
    # a stale route of a serve that died (its upstream listens nowhere): replaced, not refused
    proxy.add_route(CFG, Route(network, host, "127.0.0.1:9"))
    port = _free_port()
    env = {**os.environ, "CK_TEST_PROXIED_PASSWORD": PASSWORD}
    server = _serve(_config(tmp_path, project, f"https://{host}:{PROXY_HTTPS_PORT}"), port, env)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()  # printed once the route is there and the sockets listen
        assert f"127.0.0.1:{port}" in first and "routed by the previews' proxy" in first, first

        status, headers, body = request_through(CFG, host, headers={"Accept": "application/json"})
        headers = {k.lower(): v for k, v in headers.items()}  # Go writes Www-Authenticate
        assert status == 401
        assert headers["x-robots-tag"] == "noindex, nofollow"
        assert headers["www-authenticate"].startswith('Basic realm="clonekit"')  # the dashboard's, not the proxy's
        wrong = {"Authorization": "Basic " + base64.b64encode(f"review:review-{PASSWORD}".encode()).decode()}
        assert request_through(CFG, host, headers=wrong)[0] == 401  # the previews' password opens nothing here
        good = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
        status, headers, body = request_through(CFG, host, headers={**good, "Accept": "text/html"})
        assert status == 200 and "<h1>Previews</h1>" in body.decode()
        assert headers["X-Robots-Tag"] == "noindex, nofollow"
        routes = [r for r in proxy.status().routes if r.id == network]
        assert [r.host for r in routes] == [host] and routes[0].upstream.endswith(f":{port}")
    finally:
        server.terminate()
        out = server.communicate(timeout=GUARD_SECONDS)[0]
    assert server.returncode == 0, out
    assert all(r.id != network for r in proxy.status().routes)
    assert not proxy.engine.exists("network", network)
    try:
        status = request_through(CFG, host)[0]
    except OSError:  # no certificate for the name any more
        status = 404
    assert status == 404
