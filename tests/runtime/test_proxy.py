"""clonekit's Caddy proxy: its configuration, its refusal to open previews to strangers, and live
routes that come and go without interrupting the others (real Caddy, real Docker)."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import subprocess
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from support import PROXY_HTTP_PORT, PROXY_HTTPS_PORT, PROXY_IMAGE

from clonekit.cli import main
from clonekit.config import ProxyAuth, ProxyConfig
from clonekit.errors import ConfigError
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.proxy import Proxy, Route, base_config, hash_password, request_through, route_config, wait_serving

pytestmark = pytest.mark.xdist_group("ckprod")  # one proxy per engine: every test that uses it in one worker

CFG = ProxyConfig(bind="127.0.0.1", http_port=PROXY_HTTP_PORT, https_port=PROXY_HTTPS_PORT, tls="internal",
                  image=PROXY_IMAGE, auth=ProxyAuth("review", "CLONEKIT_TEST_REVIEW_PASSWORD"))
PASSWORD = "not-a-real-password"

CONFIG = """
project: px
sources:
  prod:
    database: {engine: mariadb, name: drupal, user: ro, password_env: PROD_DB_PASSWORD}
previews:
  url: "https://{name}.preview.example"
  proxy: %s
"""


# -- pure: the configuration Caddy gets ----------------------------------------------------------


def test_base_config_per_tls_mode() -> None:
    internal = base_config(CFG)
    assert internal["admin"]["listen"] == "localhost:2019"  # the proxy's own loopback: no preview reaches it
    servers = internal["apps"]["http"]["servers"]
    assert servers["previews"]["listen"] == [f":{PROXY_HTTPS_PORT}"]
    redirect = servers["redirect"]["routes"][0]["handle"]
    assert redirect[0]["response"]["set"] == {"X-Robots-Tag": ["noindex, nofollow"]}
    assert redirect[1]["status_code"] == 308
    assert redirect[1]["headers"]["Location"] == [f"https://{{http.request.host}}:{PROXY_HTTPS_PORT}{{http.request.uri}}"]
    assert internal["apps"]["tls"]["automation"]["policies"][0]["issuers"] == [{"module": "internal"}]
    acme = base_config(ProxyConfig(tls="acme", acme_email="ops@agency.example"))
    assert acme["apps"]["tls"]["automation"]["policies"][0]["issuers"] == [{"module": "acme", "email": "ops@agency.example"}]
    files = base_config(ProxyConfig(tls="files", cert_file="/c.pem", key_file="/k.pem"))
    assert files["apps"]["tls"]["certificates"]["load_files"][0]["certificate"] == "/data/clonekit/tls/cert.pem"
    off = base_config(ProxyConfig(tls="off", http_port=8000))
    assert list(off["apps"]["http"]["servers"]) == ["previews"] and "tls" not in off["apps"]
    assert off["apps"]["http"]["servers"]["previews"]["listen"] == [":8000"]


def test_route_has_noindex_auth_then_upstream() -> None:
    doc = route_config(Route("ck-p-a", "a.preview.test", "ck-p-a-app-1:80"), user="review",
                       password_hash=hash_password(PASSWORD))
    assert doc["@id"] == "ck-p-a" and doc["match"] == [{"host": ["a.preview.test"]}] and doc["terminal"]
    assert [h["handler"] for h in doc["handle"]] == ["headers", "authentication", "reverse_proxy"]
    account = doc["handle"][1]["providers"]["http_basic"]["accounts"][0]
    assert account["username"] == "review"
    assert bcrypt.checkpw(PASSWORD.encode(), base64.b64decode(account["password"]))
    assert PASSWORD not in str(doc)


# -- config: closed to strangers -----------------------------------------------------------------


def _run(tmp_path: Path, proxy: str, capsys) -> tuple[int, str]:
    path = tmp_path / "clonekit.yml"
    path.write_text(textwrap.dedent(CONFIG % proxy))
    with pytest.raises(SystemExit) as info:
        main(["-c", str(path), "list"])
    return int(info.value.code or 0), capsys.readouterr().err


def test_public_bind_without_auth_is_refused_exit_2(tmp_path: Path, capsys) -> None:
    code, err = _run(tmp_path, "{bind: 0.0.0.0}", capsys)
    assert code == 2
    assert "previews.proxy.auth" in err and "0.0.0.0" in err and "Traceback" not in err


@pytest.mark.parametrize(("proxy", "key"), [
    ("{tls: maybe}", "previews.proxy.tls"),
    ("{https_port: 8443}", "previews.url"),          # the URL must name the port the proxy listens on
    ("{tls: off}", "previews.url"),                  # tls off serves http://
    ("{tls: {cert_file: /c.pem}}", "previews.proxy.tls.key_file"),
    ("{auth: {user: r, password_env: 'not a name'}}", "previews.proxy.auth.password_env"),
    ("{colour: blue}", "previews.proxy.colour"),
])
def test_bad_proxy_keys_exit_2(tmp_path: Path, capsys, proxy: str, key: str) -> None:
    code, err = _run(tmp_path, proxy, capsys)
    assert code == 2 and key in err, err


def test_proxy_refuses_to_start_public_without_auth() -> None:
    with pytest.raises(ConfigError, match=r"previews\.proxy\.auth") as info:
        Proxy(DockerEngine()).ensure(ProxyConfig(bind="0.0.0.0", image=PROXY_IMAGE))
    assert info.value.exit_code == 2


# -- live: routes come and go, the others keep answering ------------------------------------------


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def site(docker) -> Iterator[object]:
    """Factory: a tiny web server alone on its own network (as a preview's HTTP service is)."""
    made: list[str] = []

    def make(text: str) -> str:
        name = f"ckpx-{uuid.uuid4().hex[:8]}"
        _docker("network", "create", "--label", "clonekit.test=proxy", name)
        _docker("run", "-d", "--name", f"{name}-web", "--network", name, "clonekit/busybox:latest", "sh", "-c",
                f"mkdir -p /w && echo {text} > /w/index.html && exec httpd -f -p 80 -h /w")
        made.append(name)
        return name

    yield make
    proxy = Proxy(DockerEngine())
    for name in made:
        proxy.remove_route(name)
        proxy.disconnect(name)
        subprocess.run(["docker", "rm", "-f", f"{name}-web"], capture_output=True)
        subprocess.run(["docker", "network", "rm", name], capture_output=True)


def _get(host: str, *, auth: bool = True) -> tuple[int, str, dict[str, str]]:
    """HTTPS to the proxy with ``host`` as server name and Host (trust is the e2e test's subject)."""
    headers = {"Authorization": "Basic " + base64.b64encode(f"review:{PASSWORD}".encode()).decode()} if auth else {}
    status, response_headers, body = request_through(CFG, host, headers=headers)
    return status, body.decode(), response_headers


def _serve(proxy: Proxy, name: str) -> None:
    """Route NAME.preview.test to the site NAME through the proxy (started when needed)."""
    proxy.ensure(CFG)
    proxy.connect(name)
    proxy.add_route(CFG, Route(name, f"{name}.preview.test", f"{name}-web:80"))


@pytest.fixture
def proxy(monkeypatch) -> Proxy:
    monkeypatch.setenv("CLONEKIT_TEST_REVIEW_PASSWORD", PASSWORD)
    return Proxy(DockerEngine())


def test_routes_come_and_go_without_interrupting_the_others(site, proxy) -> None:
    b = site("hello-b")
    _serve(proxy, b)
    assert _get(f"{b}.preview.test")[:2] == (200, "hello-b\n")
    # A preview shares a network with the proxy, but its admin API is out of its reach; the same
    # probe gets an answer from the port the proxy serves.
    def probe(port: int) -> str:
        return subprocess.run(["docker", "exec", f"{b}-web", "sh", "-c",
                               f"printf 'GET /config/ HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' | nc -w 3 clonekit-proxy {port}"],
                              capture_output=True, text=True, timeout=60).stdout

    assert probe(PROXY_HTTP_PORT).startswith("HTTP/1.")
    assert probe(2019) == ""

    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def get_b() -> tuple[int, str, dict[str, str]]:
        # Each route change makes Caddy load its whole configuration: a connection accepted in that
        # instant can be closed without an answer, rarely (docs/previews-online.md). A browser sends
        # such a request again; so does this poller, once. A refused connection is not retried: the
        # proxy's port must never close (Docker moved it to the network of a preview whose name
        # sorted before the proxy's own, refusing connections meanwhile; proxy.NETWORK sorts first).
        try:
            return _get(f"{b}.preview.test")
        except ConnectionRefusedError:
            raise
        except (OSError, http.client.HTTPException):
            return _get(f"{b}.preview.test")

    def poll_b() -> None:
        nonlocal answered
        for _ in range(5000):  # bounded; stops as soon as A has come and gone
            if stop.is_set():
                return
            try:
                status, body, headers = get_b()
            except (OSError, http.client.HTTPException) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if (status, body) != (200, "hello-b\n") or headers.get("X-Robots-Tag") != "noindex, nofollow":
                failures.append(f"{status} {body!r}")
            answered += 1

    poller = threading.Thread(target=poll_b)
    poller.start()
    try:
        a = site("hello-a")
        _serve(proxy, a)
        status, body, headers = _get(f"{a}.preview.test")
        assert (status, body) == (200, "hello-a\n")
        assert headers["X-Robots-Tag"] == "noindex, nofollow"
        assert _get(f"{a}.preview.test", auth=False)[0] == 401
        assert [r.host for r in proxy.status().routes if r.id in (a, b)] == [f"{a}.preview.test", f"{b}.preview.test"]
        assert proxy.remove_route(a)
        proxy.disconnect(a)
        try:  # A's name is gone: Caddy has no certificate for it any more, or (cached) answers 404
            status: int | None = _get(f"{a}.preview.test")[0]
        except ssl.SSLError:
            status = None
        assert status in (None, 404)
    finally:
        stop.set()
        poller.join()
    assert answered > 0 and not failures, f"{len(failures)} failed requests to B out of {answered}: {failures[:3]}"
    assert not proxy.remove_route(a)  # already gone


def test_preflight_refuses_before_anything_is_created(tmp_path: Path, monkeypatch) -> None:
    from clonekit import online
    from clonekit.config import load_config

    def config(previews: str):
        path = tmp_path / "clonekit.yml"
        path.write_text(textwrap.dedent(CONFIG.replace("  proxy: %s\n", "") ) + previews)
        return load_config(path)

    swarm = ("  engine: swarm\n  docker_host: ssh://root@manager\n  registry: registry:5000\n"
             "  nodes: {n1: ssh://root@n1}\n")
    with pytest.raises(ConfigError, match=r"previews\.egress: no-mail .* not done on a swarm") as info:
        online.preflight(config(swarm), DockerEngine("ssh://root@manager"))
    assert info.value.exit_code == 2
    online.preflight(config(swarm + "  egress: open\n"), DockerEngine("ssh://root@manager"))
    monkeypatch.delenv("CLONEKIT_TEST_REVIEW_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="CLONEKIT_TEST_REVIEW_PASSWORD is not set"):
        online.preflight(config("  proxy: {auth: {user: r, password_env: CLONEKIT_TEST_REVIEW_PASSWORD}}\n"),
                         DockerEngine())


def test_the_proxys_network_sorts_before_every_preview_network(tmp_path: Path) -> None:
    """Docker gives a container's published ports to the network whose name sorts first: a preview's
    network (ck-PROJECT-NAME, PROJECT a DNS label) must never sort before the proxy's own."""
    import string

    from clonekit.config import load_config
    from clonekit.previews.plan import compose_project_name
    from clonekit.runtime.proxy import NETWORK

    for first in string.ascii_lowercase + string.digits:
        assert NETWORK < f"ck-{first}"
    assert NETWORK < "ck-0-0" and NETWORK < "ckpx-0" and NETWORK < "clonekit-proxy"
    path = tmp_path / "clonekit.yml"
    path.write_text(textwrap.dedent(CONFIG % "{}").replace("project: px", "project: '0'"))
    assert compose_project_name(load_config(path), "0") == "ck-0-0"


def test_a_proxy_whose_ports_sit_on_its_old_network_is_replaced_routes_kept(site, proxy, monkeypatch) -> None:
    """A proxy made by an earlier clonekit, on the network every preview network sorted before, is
    replaced by one on proxy.NETWORK; its routes and networks come back, its old network goes."""
    from clonekit.runtime import proxy as proxy_module

    g = site("hello-g")
    proxy.stop()
    monkeypatch.setattr(proxy_module, "NETWORK", proxy_module.LEGACY_NETWORK)
    _serve(proxy, g)
    networks = (proxy.container() or {})["NetworkSettings"]["Networks"]
    assert set(networks) == {proxy_module.LEGACY_NETWORK, g}
    proxy.close()
    monkeypatch.undo()
    monkeypatch.setenv("CLONEKIT_TEST_REVIEW_PASSWORD", PASSWORD)
    proxy.ensure(CFG)
    networks = (proxy.container() or {})["NetworkSettings"]["Networks"]
    assert set(networks) == {proxy_module.NETWORK, g}
    assert not proxy.engine.exists("network", proxy_module.LEGACY_NETWORK)
    wait_serving(CFG, f"{g}.preview.test")
    assert _get(f"{g}.preview.test")[:2] == (200, "hello-g\n")


def test_routes_survive_a_restart_of_the_proxy(site, proxy) -> None:
    """restart: unless-stopped brings the proxy back with the engine; --resume reloads its routes."""
    c = site("hello-c")
    _serve(proxy, c)
    assert (proxy.container() or {})["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    _docker("restart", "clonekit-proxy")
    proxy.ensure(CFG)  # waits for the admin API
    wait_serving(CFG, f"{c}.preview.test")
    assert _get(f"{c}.preview.test")[:2] == (200, "hello-c\n")
    assert c in {r.id for r in proxy.status().routes}


def test_proxy_stop_then_start_resumes_routes_and_networks(site, proxy) -> None:
    d = site("hello-d")
    _serve(proxy, d)
    assert proxy.stop() and proxy.container() is None and proxy.status().state == "absent"
    assert not proxy.stop()
    proxy.ensure(CFG)  # a new container: routes from its volume, networks joined again
    wait_serving(CFG, f"{d}.preview.test")
    assert _get(f"{d}.preview.test")[:2] == (200, "hello-d\n")


def test_tls_with_a_certificate_of_ones_own(site, proxy, tmp_path: Path) -> None:
    """tls: {cert_file, key_file} (e.g. a wildcard): the proxy serves that certificate; then back to internal."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.preview.test")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.preview.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    own = ProxyConfig(**{**CFG.__dict__, "tls": "files", "cert_file": str(tmp_path / "cert.pem"),
                         "key_file": str(tmp_path / "key.pem")})
    e = site("hello-e")
    try:
        proxy.ensure(own)
        proxy.connect(e)
        proxy.add_route(own, Route(e, f"{e}.preview.test", f"{e}-web:80"))
        assert proxy.status().tls == "files"
        context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))  # verified against our own
        with socket.create_connection(("127.0.0.1", PROXY_HTTPS_PORT), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=f"{e}.preview.test") as tls:
                served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        assert served.fingerprint(hashes.SHA256()) == cert.fingerprint(hashes.SHA256())
        assert _get(f"{e}.preview.test")[:2] == (200, "hello-e\n")
    finally:
        proxy.ensure(CFG)  # back to the internal CA, routes kept
    assert proxy.status().tls == "internal"
    wait_serving(CFG, f"{e}.preview.test")
    assert _get(f"{e}.preview.test")[:2] == (200, "hello-e\n")


def test_a_route_added_after_ensure_inspects_the_proxy_once(site, proxy, monkeypatch) -> None:
    """online.after_start's sequence (ensure, connect, add_route) asks the engine about the proxy's
    container once, and waits through the proxy once (an answer from the site ends it)."""
    name = site("hello-once")
    proxy.ensure(CFG)  # started if needed, outside the count
    proxy.close()
    inspected: list[tuple[str, tuple[str, ...]]] = []
    real_inspect = proxy.engine.inspect

    def counting(kind, refs):
        inspected.append((kind, tuple(refs)))
        return real_inspect(kind, refs)

    monkeypatch.setattr(proxy.engine, "inspect", counting)
    _serve(proxy, name)
    assert inspected == [("container", ("clonekit-proxy",))]
    assert _get(f"{name}.preview.test")[:2] == (200, "hello-once\n")
    proxy.close()
    _serve(proxy, name)  # a new use case (close() forgets): it asks again, and the route is replaced in place
    assert len(inspected) == 2


def test_waiting_through_a_proxy_that_never_answers_fails(monkeypatch) -> None:
    from clonekit.errors import PreviewError
    from clonekit.runtime import proxy as proxy_module

    monkeypatch.setattr(proxy_module, "START_TIMEOUT_SECONDS", 1.0)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(PreviewError, match="did not serve nothing.preview.test"):
        proxy_module.wait_upstream(CFG, "nothing.preview.test", address="127.0.0.1", port=port)


class _SlowRelay:
    """A relay whose other end is a thread answering each request after the next delay of its list
    (None: never), as Caddy behind `docker run` over a slow SSH engine would."""

    made: list[_SlowRelay] = []
    delays: list[list[float | None]] = []

    def __init__(self, engine, image) -> None:
        self.socket, theirs = socket.socketpair()
        self.alive = True
        self.answered = 0
        delays = _SlowRelay.delays.pop(0)
        _SlowRelay.made.append(self)

        def serve() -> None:
            import time
            with theirs:
                for delay in delays:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = theirs.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    if delay is None:
                        theirs.recv(1)  # until the client gives up and closes
                        return
                    time.sleep(delay)
                    body = b'{"ok": true}'
                    # Counted before sending: the client may read the answer and check the count
                    # before this thread runs again.
                    self.answered += 1
                    theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                   + str(len(body)).encode() + b"\r\n\r\n" + body)

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self.alive = False
        self.socket.close()


def test_the_admin_relay_waits_longer_for_its_first_answer(monkeypatch) -> None:
    """The first answer on a new relay includes `docker run` (over SSH, on a busy engine): it gets
    RELAY_START_TIMEOUT_SECONDS; later answers are Caddy's alone and get ADMIN_TIMEOUT_SECONDS. A
    read that then times out is sent again on a new relay; a change is not."""
    from clonekit.errors import PreviewError
    from clonekit.runtime import proxy as proxy_module

    monkeypatch.setattr(proxy_module, "_Relay", _SlowRelay)
    monkeypatch.setattr(proxy_module, "ADMIN_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(proxy_module, "RELAY_START_TIMEOUT_SECONDS", 30.0)
    _SlowRelay.made.clear()
    _SlowRelay.delays[:] = [[1.0, None], [1.0, None]]
    admin = proxy_module.CaddyAdmin(DockerEngine())
    assert admin.request("GET", "/config/") == (200, {"ok": True})  # 1 s > ADMIN_TIMEOUT: a new relay waits longer
    assert admin.request("GET", "/config/") == (200, {"ok": True})  # no answer: sent again on a new relay
    assert len(_SlowRelay.made) == 2 and [r.answered for r in _SlowRelay.made] == [1, 1]
    with pytest.raises(PreviewError, match="cannot reach the proxy's admin API"):
        admin.request("POST", "/load", {})  # a change is sent once
    assert len(_SlowRelay.made) == 2
    admin.close()
