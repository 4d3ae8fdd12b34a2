"""The WordPress production is up, renders its posts and holds the seeded personal data."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import time
import urllib.request

import pytest
from production_site import STATE, run_script

pytestmark = [pytest.mark.docker]  # grouped with every other user of ckprod by tests/conftest.py


def fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode("utf-8")


def _project_containers() -> dict[str, str]:
    """container id -> when it started, for the running ckprod containers."""
    ids = subprocess.run(["docker", "ps", "-q", "--filter", "label=com.docker.compose.project=ckprod"],
                         capture_output=True, text=True, check=True).stdout.split()
    started = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", *ids],
                             capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(ids, started, strict=True))


def test_up_again_is_a_no_op(ckprod):
    """A second `up` touches nothing: no container created, started or stopped (events, not time)."""
    before = _project_containers()
    since = subprocess.run(["docker", "system", "info", "-f", "{{.SystemTime}}"],
                           capture_output=True, text=True, check=True).stdout.strip()
    done = run_script("up")
    until = subprocess.run(["docker", "system", "info", "-f", "{{.SystemTime}}"],
                           capture_output=True, text=True, check=True).stdout.strip()
    events = subprocess.run(["docker", "events", "--since", since, "--until", until, "--format", "{{.Type}} {{.Action}}",
                             "--filter", "label=com.docker.compose.project=ckprod"],
                            capture_output=True, text=True, check=True, timeout=60).stdout.split("\n")
    assert done.returncode == 0, done.stderr
    assert "already running and seeded" in done.stderr
    assert "http://127.0.0.1:8088/" in done.stdout and "33306" in done.stdout
    assert _project_containers() == before and len(before) == 2
    changes = [e for e in events if e.split(" ")[-1] in {"create", "start", "stop", "die", "destroy", "kill", "restart"}]
    assert changes == []
    assert run_script("status").returncode == 0


def test_secrets_stay_in_a_private_env_file(ckprod):
    mode = stat.S_IMODE(os.stat(STATE / "prod.env").st_mode)
    assert mode == 0o600
    assert len(ckprod.secrets["CKPROD_DB_PASSWORD"]) >= 16
    done = run_script("up")
    assert ckprod.secrets["CKPROD_DB_PASSWORD"] not in done.stdout + done.stderr


def test_home_page_lists_the_latest_posts(ckprod):
    status, html = fetch(ckprod.url + "/")
    assert status == 200
    latest = [row[0] for row in ckprod.query(
        "SELECT post_title FROM wp_posts WHERE post_type='post' AND post_status='publish' "
        "ORDER BY post_date DESC LIMIT 5")]
    assert len(latest) == 5
    for title in latest:
        assert title in html
    assert len(re.findall(r'class="entry-title', html)) == 10  # posts_per_page


def test_a_post_page_renders_its_comments(ckprod):
    link, title = ckprod.query(
        "SELECT p.ID, p.post_title FROM wp_posts p JOIN wp_comments c ON c.comment_post_ID = p.ID "
        "WHERE p.post_type='post' AND c.comment_approved='1' AND c.comment_parent=0 GROUP BY p.ID ORDER BY p.ID LIMIT 1")[0]
    status, html = fetch(f"{ckprod.url}/?p={link}")
    assert status == 200 and title in html
    author = ckprod.query("SELECT comment_author FROM wp_comments WHERE comment_post_ID=%s AND comment_approved='1' "
                          "ORDER BY comment_ID LIMIT 1", (link,))[0][0]
    assert author in html


def test_seeded_users_and_their_meta_are_in_the_database(ckprod):
    seeded = ckprod.seeded
    assert len(seeded["users"]) == 50
    users = {login: email for login, email in ckprod.query("SELECT user_login, user_email FROM wp_users")}
    for user in seeded["users"]:
        assert users[user["login"]] == user["email"]
    meta = {(login, key): value for login, key, value in ckprod.query(
        "SELECT u.user_login, m.meta_key, m.meta_value FROM wp_usermeta m JOIN wp_users u ON u.ID = m.user_id")}
    for user in seeded["users"]:
        login = user["login"]
        for key in ("first_name", "last_name", "nickname", "description"):
            assert meta[(login, key)] == user[key]
        for key in ("billing_email", "billing_phone", "billing_address_1", "billing_city", "billing_postcode",
                    "shipping_address_1", "shipping_city", "shipping_postcode"):
            assert meta[(login, key)] == user["meta"][key]
        contact = user["meta"]["emergency_contact"]
        serialized = meta[(login, "emergency_contact")]
        assert serialized.startswith("a:4:{")
        for value in (contact["email"], contact["phone"]):
            assert f's:{len(value.encode())}:"{value}";' in serialized  # PHP counts bytes
    assert ckprod.query("SELECT option_value FROM wp_options WHERE option_name='admin_email'")[0][0] == seeded["admin"]["email"]


def test_seeded_comments_carry_authors_emails_and_ips(ckprod):
    rows = ckprod.query("SELECT comment_author, comment_author_email, comment_author_IP, comment_author_url FROM wp_comments")
    assert len(rows) >= 200
    stored = set(rows)
    for comment in ckprod.seeded["comments"]:
        assert (comment["author"], comment["email"], comment["ip"], comment["url"]) in stored
    ips = {row[2] for row in rows}
    assert any(":" in ip for ip in ips) and any("." in ip for ip in ips)


def test_seeded_json_lists_every_personal_value_found_in_the_database(ckprod):
    seeded = ckprod.seeded
    for kind in ("emails", "phones", "full_names", "ips"):
        assert len(seeded[kind]) >= 50, kind
    dump = "\n".join(
        "\t".join(str(v) for v in row)
        for table in ("wp_users", "wp_usermeta", "wp_comments", "wp_options")
        for row in ckprod.query(f"SELECT * FROM {table}")
    )
    missing = [v for kind in ("emails", "phones", "ips", "addresses", "urls") for v in seeded[kind] if v not in dump]
    assert missing == []


def test_uploads_are_on_the_host_path_and_served(ckprod):
    files = [p for p in ckprod.uploads.rglob("*") if p.is_file()]
    assert len(files) == ckprod.seeded["counts"]["upload_files"] >= 200
    assert all(re.match(r"^\d{4}/\d{2}/", str(p.relative_to(ckprod.uploads))) for p in files)
    attached = [row[0] for row in ckprod.query("SELECT meta_value FROM wp_postmeta WHERE meta_key='_wp_attached_file'")]
    assert len(attached) == ckprod.seeded["counts"]["attachments"] >= 100
    assert all((ckprod.uploads / path).is_file() for path in attached)
    pdf = next(path for path in attached if path.endswith(".pdf"))
    with urllib.request.urlopen(f"{ckprod.url}/wp-content/uploads/{pdf}", timeout=30) as response:
        assert response.read() == (ckprod.uploads / pdf).read_bytes()
    assert ckprod.uploads.stat().st_uid == 33  # www-data in the image


def test_wp_home_from_the_environment_overrides_the_database(ckprod):
    done = ckprod.php("echo home_url('/'), ' ', site_url();", env={"WP_HOME": "http://preview.demo.localhost:9000"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://preview.demo.localhost:9000/ http://preview.demo.localhost:9000"
    done = ckprod.php("echo home_url('/');")
    assert done.stdout.strip() == "http://127.0.0.1:8088/"


def test_mail_goes_nowhere_without_smtp_host_and_to_it_with_one(ckprod):
    send = ("add_action('wp_mail_failed', function ($e) { echo 'FAILED:', $e->get_error_message(), PHP_EOL; }); "
            "var_export(wp_mail('someone@example.net', 'hello', 'body'));")
    without = ckprod.php(send, env={"SMTP_HOST": ""})
    assert without.returncode == 0, without.stderr
    assert without.stdout.strip() == "false"  # refused before any transport was tried
    # Port 9 on loopback refuses at once: the failure proves PHPMailer went to SMTP_HOST.
    with_host = ckprod.php(send, env={"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "9"})
    assert "SMTP" in with_host.stdout and with_host.stdout.strip().endswith("false")


def test_wordpress_makes_no_outgoing_requests_by_default(ckprod):
    done = ckprod.php("var_export([DISABLE_WP_CRON, WP_HTTP_BLOCK_EXTERNAL, "
                      "is_wp_error(wp_remote_get('http://api.wordpress.org/core/version-check/1.7/'))]);")
    assert done.returncode == 0, done.stderr
    assert re.sub(r"\s+", "", done.stdout) == "array(0=>true,1=>true,2=>true,)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_second_app_container_serves_the_same_database_at_its_own_url(ckprod):
    """What a preview does with the image: same code, its own URL, settings by environment."""
    name = f"cktest-wpapp-{os.getpid()}"
    url = f"http://127.0.0.1:{free_port()}"
    env = {"DB_HOST": "db", "DB_NAME": "wordpress", "DB_USER": "wp",
           "DB_PASSWORD": ckprod.secrets["CKPROD_DB_PASSWORD"], "WP_HOME": url, "SMTP_HOST": ""}
    env_file = STATE.parent / f"{name}.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))  # the password stays out of argv
    try:
        subprocess.run(["docker", "run", "-d", "--name", name, "--network", "ckprod_default", "--env-file", str(env_file),
                        "-p", f"127.0.0.1:{url.rsplit(':', 1)[1]}:80", "clonekit/wordpress:6.1"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                status, html = fetch(url + "/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert status == 200
        assert f'href="{url}/20' in html  # post links are built from WP_HOME
        assert f"{url}/wp-content/themes/twentytwentyone/" in html  # theme assets from WP_SITEURL
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        env_file.unlink(missing_ok=True)
