"""Previews online, end to end with the WordPress production: two previews behind clonekit's Caddy
proxy at https://NAME.preview.test:18443 (curl --resolve, trusted with `clonekit proxy ca`), closed
to strangers (401), marked noindex, redirected from HTTP, independent of each other; outbound SMTP
blocked from inside a preview while its mail sink still answers; a screenshot by headless Chromium
through the proxy."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import PROXY_HTTP_PORT, PROXY_HTTPS_PORT, PROXY_YAML, HostListener

from clonekit import Project
from tests.e2e.browser import open_page

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "review-" + uuid.uuid4().hex[:12]


@pytest.fixture
def online(tmp_path: Path, ckprod, monkeypatch, webhook_server) -> Iterator[tuple[Path, dict[str, str], list[dict]]]:
    name = f"on{uuid.uuid4().hex[:6]}"
    text = (ROOT / "demo" / "clonekit.yml").read_text().replace("project: demo", f"project: {name}")
    text = text.replace("previews:\n", "previews:" + PROXY_YAML, 1)
    text = text.replace('SMTP_HOST: ""                   # previews never send mail', "SMTP_HOST: mailsink")
    (tmp_path / "clonekit.yml").write_text(text + "\nnotify: {webhook_env: CK_TEST_WEBHOOK}\n")
    hook_url, received = webhook_server
    env = {**os.environ, **ckprod.secrets, "CLONEKIT_SECRET": "online-" + name, "CLONEKIT_TEST_REVIEW_PASSWORD": PASSWORD,
           "CK_TEST_WEBHOOK": hook_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield tmp_path / "clonekit.yml", env, received
    shutil.rmtree(tmp_path / ".clonekit", ignore_errors=True)


def cli(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / ".venv" / "bin" / "clonekit"), "-c", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def curl(url: str, *args: str) -> tuple[int, dict[str, str], str]:
    host = url.split("/")[2]
    hostname, port = host.split(":")
    out = subprocess.run(["curl", "-sS", "-D", "-", "--max-time", "30", "--resolve", f"{hostname}:{port}:127.0.0.1",
                          *args, url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")  # text mode turns CRLF into LF
    lines = head.split("\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def in_app(project_name: str, preview: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", f"ck-{project_name}-{preview}-app-1", "bash", "-c", script],
                          capture_output=True, text=True, timeout=60)


def test_two_previews_online_behind_the_proxy(online, ckprod, tmp_path: Path) -> None:
    config, env, webhook_messages = online
    api = Project.load(config)
    project_name = api.config.project
    a = api.clone("prod", name="a")
    b = api.clone("prod", name="b", max_age="1h")
    url_a, url_b = f"https://a.preview.test:{PROXY_HTTPS_PORT}", f"https://b.preview.test:{PROXY_HTTPS_PORT}"
    try:
        assert (a.url, b.url) == (url_a, url_b)
        listed = json.loads(cli(config, env, "--json", "list").stdout)
        assert {p["name"]: p["url"] for p in listed} == {"a": url_a, "b": url_b}
        assert any(f"Preview a of prod is ready: {url_a} " in m["body"]["text"] for m in webhook_messages), webhook_messages

        ca = cli(config, env, "proxy", "ca")
        assert ca.returncode == 0 and ca.stdout.startswith("-----BEGIN CERTIFICATE-----")
        (tmp_path / "ca.pem").write_text(ca.stdout)
        trust = ["--cacert", str(tmp_path / "ca.pem")]

        # closed to strangers, open with the credentials, noindex everywhere, links rewritten
        status, headers, _ = curl(url_a + "/", *trust)
        assert status == 401 and headers["x-robots-tag"] == "noindex, nofollow"
        status, headers, page = curl(url_a + "/", *trust, "-u", f"review:{PASSWORD}")
        assert status == 200 and headers["x-robots-tag"] == "noindex, nofollow"
        title = ckprod.query("SELECT post_title FROM wp_posts WHERE post_type='post' AND post_status='publish' "
                             "ORDER BY post_date DESC LIMIT 1")[0][0]
        assert title in page and url_a + "/" in page and "127.0.0.1:8088" not in page
        status, headers, _ = curl(f"http://a.preview.test:{PROXY_HTTP_PORT}/?p=1")
        assert status == 308 and headers["location"] == url_a + "/?p=1" and headers["x-robots-tag"] == "noindex, nofollow"

        status_out = json.loads(cli(config, env, "--json", "proxy", "status").stdout)
        routes = {r["host"]: r["upstream"] for r in status_out["routes"]}
        assert routes["a.preview.test"] == f"ck-{project_name}-a-app-1:80" and "b.preview.test" in routes
        assert {c["host"] for c in status_out["certificates"]} >= {"a.preview.test", "b.preview.test"}

        # egress: SMTP from inside the preview to this machine is refused, other ports and the sink work
        gateway = in_app(project_name, "a", "ip route 2>/dev/null | awk '/default/ {print $3}' || true").stdout.strip()
        if not gateway:
            gateway = json.loads(subprocess.run(["docker", "network", "inspect", f"ck-{project_name}-a"], capture_output=True,
                                                text=True, check=True).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
        smtp, other = HostListener(587), HostListener(0)
        try:
            blocked = in_app(project_name, "a", f"timeout 10 bash -c 'exec 3<>/dev/tcp/{gateway}/587 && head -c 3 <&3'")
            allowed = in_app(project_name, "a", f"timeout 10 bash -c 'exec 3<>/dev/tcp/{gateway}/{other.port} && head -c 3 <&3'")
        finally:
            smtp.close()
            other.close()
        assert blocked.returncode != 0 and smtp.connections == 0, blocked
        assert allowed.returncode == 0 and allowed.stdout == "220" and other.connections == 1, allowed
        sink = in_app(project_name, "a", 'printf "Subject: t\\r\\n\\r\\nhello\\r\\n" > /tmp/m && '
                      "curl -sS smtp://mailsink:25 --mail-from a@example.net --mail-rcpt b@example.net -T /tmp/m -v 2>&1")
        assert sink.returncode == 0 and "preview mail sink" in sink.stdout, sink.stdout
        env_smtp = in_app(project_name, "a", "echo $SMTP_HOST").stdout.strip()
        assert env_smtp == "mailsink"  # what WordPress sends goes to the sink, inside the preview's subnet

        # headless Chromium through the proxy (HTTP/1.1: this machine's churning Docker interfaces make
        # Chromium drop its one HTTP/2 session, and every subresource with it, ERR_NETWORK_CHANGED)
        shot = Path(os.environ.get("CLONEKIT_TEST_SCREENSHOT") or tmp_path / "preview.png")
        auth = "Basic " + base64.b64encode(f"review:{PASSWORD}".encode()).decode()
        html = open_page(url_a + "/", {"Authorization": auth}, shot, tmp_path / "chromium",
                         ["--host-resolver-rules=MAP *.preview.test 127.0.0.1", "--ignore-certificate-errors",
                          "--disable-http2"])
        assert title in html and url_a + "/wp-content/themes/" in html
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

        # refresh keeps the address; destroying A leaves B answering
        refreshed = api.refresh("b")
        assert refreshed.url == url_b
        assert curl(url_b + "/", *trust, "-u", f"review:{PASSWORD}")[0] == 200
        api.destroy("a")
        assert curl(url_b + "/", *trust, "-u", f"review:{PASSWORD}")[0] == 200
        assert "a.preview.test" not in {r["host"] for r in json.loads(cli(config, env, "--json", "proxy", "status").stdout)["routes"]}
    finally:
        for preview in api.previews():
            api.destroy(preview.name)
    left = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=True).stdout
    assert f"clonekit ck-{project_name}-" not in left  # the egress rules went with the previews
