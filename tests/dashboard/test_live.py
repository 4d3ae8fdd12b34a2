"""`clonekit serve` on a real project (the runtime tests' busybox production, two previews), as
a real server on a free port: HTTP basic auth, the login form, CSRF, the JSON API against the
CLI's --json output, one run for two clicks; then headless Chromium logs in, sees the previews,
destroys one with the button, sees it gone, and sees the snapshots chart."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from runtime.conftest import busybox_image  # noqa: F401  (the local images)
from support import PROD_SECRETS, runtime_lifecycle, source_project_config

from clonekit.dashboard.app import create_app
from clonekit.dashboard.auth import CSRF_FIELD, Credentials

pytestmark = pytest.mark.xdist_group("dashboard")  # one server, one browser: on one worker

_lifecycle = runtime_lifecycle("ck_preview_lifecycle_dashboard")
source = _lifecycle.source

USER = "agency"
PASSWORD = "dashboard-pw-" + uuid.uuid4().hex[:8]
GUARD_SECONDS = 300  # only keeps a broken build from hanging the suite
TOKEN = re.compile(rf'name="{CSRF_FIELD}" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Live:
    """The project, its CLI and its dashboard server."""

    def __init__(self, root: Path, env: dict[str, str], port: int) -> None:
        self.root, self.env, self.port = root, env, port
        self.url = f"http://127.0.0.1:{port}"
        self.log_file = root / "ops.jsonl"

    def clonekit(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "clonekit", "-c", str(self.root / "clonekit.yml"),
                               "--log-file", str(self.log_file), *args],
                              capture_output=True, text=True, env=self.env, timeout=GUARD_SECONDS)

    def cli_json(self, *args: str) -> Any:
        done = self.clonekit("--json", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def session(self) -> requests.Session:
        """A browser-like session, logged in through the form."""
        s = requests.Session()
        s.headers["Accept"] = "text/html"
        token = TOKEN.search(s.get(f"{self.url}/login").text)
        assert token
        answer = s.post(f"{self.url}/login", data={CSRF_FIELD: token.group(1), "user": USER, "password": PASSWORD,
                                                   "next": "/"}, allow_redirects=False)
        assert answer.status_code == 303, answer.text
        return s

    def wait_idle(self, session: requests.Session, name: str) -> str:
        """Until preview ``name`` has no running action; the page's HTML then."""
        deadline = time.monotonic() + GUARD_SECONDS
        while time.monotonic() < deadline:
            page = session.get(f"{self.url}/").text
            row = re.search(rf'<tr data-preview="{name}">(.*?)</tr>', page, re.S)
            if row is None or "data-job=" not in row.group(1):
                return page
            time.sleep(0.5)
        raise AssertionError(f"an action on {name} did not end")


@pytest.fixture(scope="module")
def live(source, tmp_path_factory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("dashboard")
    project = f"dash{uuid.uuid4().hex[:6]}"
    config = source_project_config(source, project)
    config["previews"]["hooks"] = {"after_restore": [{"service": "web", "run": "echo restored"}]}
    config["dashboard"] = {"user": USER, "password_env": "CK_TEST_DASHBOARD_PASSWORD"}
    (root / "clonekit.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "CK_TEST_DB_PASSWORD": source["server"].password, "CK_TEST_DASHBOARD_PASSWORD": PASSWORD}
    live = Live(root, env, _free_port())
    server = None
    try:
        for args in (("clone", "prod", "--as", "one"), ("restore", "prod@latest", "--as", "two"),
                     ("verify", "prod@latest")):
            done = live.clonekit(*args)
            assert done.returncode == 0, done.stderr
        server = subprocess.Popen([sys.executable, "-m", "clonekit", "-c", str(root / "clonekit.yml"),
                                   "--log-file", str(live.log_file), "serve", "--port", str(live.port)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert server.stdout is not None
        first = server.stdout.readline()  # printed once the socket listens
        assert f"127.0.0.1:{live.port}" in first, first
        yield live
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        live.clonekit("destroy", "--all", "--yes")
        assert _lifecycle._labelled("container", project) == []


def test_every_page_asks_for_credentials(live: Live) -> None:
    for path in ("/", "/snapshots", "/api/previews", "/api/snapshots", "/jobs/1", "/static/dashboard.js",
                 "/previews/one/destroy"):
        bare = requests.get(live.url + path, allow_redirects=False)
        assert bare.status_code == 401, path
        assert bare.headers["WWW-Authenticate"].startswith("Basic"), path
        assert requests.get(live.url + path, auth=(USER, "wrong"), allow_redirects=False).status_code == 401, path
        assert requests.get(live.url + path, auth=("someone", PASSWORD)).status_code == 401, path
    assert requests.get(f"{live.url}/api/previews", auth=(USER, PASSWORD)).status_code == 200
    # A browser gets the login form (still a 401, and no challenge: no pop-up).
    page = requests.get(f"{live.url}/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "WWW-Authenticate" not in page.headers
    assert 'action="/login"' in page.text and "data-preview" not in page.text
    # A browser's own requests (a script, a poll after the session ended) get no challenge either.
    script = requests.get(f"{live.url}/static/dashboard.js", headers={"Sec-Fetch-Mode": "no-cors"})
    assert script.status_code == 401 and "WWW-Authenticate" not in script.headers


def test_login_form_opens_a_session(live: Live) -> None:
    s = requests.Session()
    token = TOKEN.search(s.get(f"{live.url}/login").text)
    assert token
    wrong = s.post(f"{live.url}/login", data={CSRF_FIELD: token.group(1), "user": USER, "password": "nope"})
    assert wrong.status_code == 401 and 'id="login-failed"' in wrong.text
    assert s.get(f"{live.url}/api/previews").status_code == 401
    s = live.session()
    page = s.get(f"{live.url}/")
    assert page.status_code == 200
    assert 'data-preview="one"' in page.text
    # An open redirect is not one.
    token = TOKEN.search(s.get(f"{live.url}/login").text)
    assert token
    away = s.post(f"{live.url}/login", data={CSRF_FIELD: token.group(1), "user": USER, "password": PASSWORD,
                                             "next": "//evil.example/"}, allow_redirects=False)
    assert away.headers["location"] == "/"


def _post_routes() -> list[str]:
    app = create_app(None, Credentials(USER, PASSWORD))  # type: ignore[arg-type] - only its routes are read
    paths = [r.path for r in app.routes if "POST" in (getattr(r, "methods", None) or ())]
    assert {"/login", "/logout", "/previews", "/previews/{name}/extend", "/previews/{name}/{action}"} <= set(paths)
    return [p.replace("{name}", "two").replace("{action}", "destroy") for p in paths]


def test_a_forged_post_is_refused(live: Live) -> None:
    s = live.session()
    before = s.get(f"{live.url}/api/previews").json()
    for path in _post_routes():
        data = {"user": USER, "password": PASSWORD, "name": "forged", "source": "prod"}
        assert s.post(live.url + path, data=data, allow_redirects=False).status_code == 403, path
        forged = {**data, CSRF_FIELD: "not-the-token"}
        assert s.post(live.url + path, data=forged, allow_redirects=False).status_code == 403, path
        # Basic auth alone (a browser resends it by itself) carries no token either.
        assert requests.post(live.url + path, data=data, auth=(USER, PASSWORD)).status_code == 403, path
    assert s.get(f"{live.url}/api/previews").json() == before  # nothing happened: two is still there


def test_json_api_is_the_cli_json(live: Live) -> None:
    auth = (USER, PASSWORD)
    assert requests.get(f"{live.url}/api/previews", auth=auth).json() == live.cli_json("list")
    assert requests.get(f"{live.url}/api/snapshots", auth=auth).json() == live.cli_json("snapshots")
    snapshots = requests.get(f"{live.url}/api/snapshots", params={"source": "prod"}, auth=auth).json()
    assert snapshots == live.cli_json("snapshots", "prod") and len(snapshots) == 1
    assert snapshots[0]["sanitization"]["strict"] == "off"  # the runtime production's config: strict: false


def test_pages_show_the_project_and_no_secret(live: Live) -> None:
    s = live.session()
    page = s.get(f"{live.url}/").text
    row = re.search(r'<tr data-preview="one">(.*?)</tr>', page, re.S)
    assert row is not None
    listed = {p["name"]: p for p in live.cli_json("list")}
    for text in (listed["one"]["url"], listed["one"]["snapshot_id"], "running", "ok"):  # ok: the after_restore hook
        assert text in row.group(1), text
    snapshots = s.get(f"{live.url}/snapshots", params={"source": "prod"}).text
    assert "ok (" in snapshots  # the fixture's `clonekit verify`, from the operation log
    secrets = json.loads((live.root / ".clonekit" / "previews" / "one" / "secrets.json").read_text())
    values = [secrets["db"]["password"], secrets["db"]["root_password"], *secrets["env"].values(), *PROD_SECRETS, PASSWORD]
    api = requests.get(f"{live.url}/api/previews", auth=(USER, PASSWORD)).text
    for text in (page, snapshots, api):
        for value in values:
            assert value not in text


def test_text_is_escaped(live: Live) -> None:
    s = live.session()
    token = TOKEN.search(s.get(f"{live.url}/").text)
    assert token
    answer = s.post(f"{live.url}/previews", data={CSRF_FIELD: token.group(1), "source": "prod",
                                                  "name": "<script>alert(1)</script>"})
    assert answer.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert "<script>alert" not in answer.text


def test_two_clicks_make_one_run(live: Live) -> None:
    s = live.session()
    token = TOKEN.search(s.get(f"{live.url}/").text)
    assert token
    # Another clonekit run (here: this test) holds preview one's lock: the action waits for it.
    with open(live.root / ".clonekit" / "previews" / ".locks" / "one.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        first = s.post(f"{live.url}/previews/one/refresh-code", data={CSRF_FIELD: token.group(1)})
        second = s.post(f"{live.url}/previews/one/refresh-code", data={CSRF_FIELD: token.group(1)})
        assert "refresh-code one: started" in first.text
        assert "already busy with refresh-code" in second.text
        assert re.search(r'<tr data-preview="one">.*?data-job=', second.text, re.S)
    page = live.wait_idle(s, "one")
    # Once the lock is free the one run goes on, and says why there is nothing to do.
    assert re.search(r'data-state="failed"><td>one</td><td>refresh-code</td>', page), page
    assert "runs production&#39;s images: there is no code to refresh" in page
    runs = [e for e in map(json.loads, live.log_file.read_text().splitlines())
            if e["operation"] == "refresh-code" and e.get("preview") == "one"]
    assert [e["status"] for e in runs] == ["failed"]
    assert {p["name"]: p for p in live.cli_json("list")}["one"]["status"] == "running"


def test_extend_pushes_the_expiry(live: Live) -> None:
    s = live.session()
    before = {p["name"]: p for p in live.cli_json("list")}["two"]["expires_at"]
    token = TOKEN.search(s.get(f"{live.url}/").text)
    assert token
    page = s.post(f"{live.url}/previews/two/extend", data={CSRF_FIELD: token.group(1), "by": "2d"})
    assert "two now expires" in page.text
    after = {p["name"]: p for p in live.cli_json("list")}["two"]["expires_at"]
    assert after > before  # ISO 8601 UTC strings sort as times
    done = live.clonekit("extend", "two", "--by", "bad")
    assert done.returncode == 2 and "--by 'bad'" in done.stderr


def test_browser_logs_in_destroys_a_preview_and_sees_the_chart(live: Live, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, GUARD_SECONDS)
    browser.get(f"{live.url}/")
    browser.find_element(By.ID, "user").send_keys(USER)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    wait.until(ec.presence_of_element_located((By.ID, "previews")))
    names = {row.get_attribute("data-preview") for row in browser.find_elements(By.CSS_SELECTOR, "tr[data-preview]")}
    assert {"one", "two"} <= names
    link = browser.find_element(By.CSS_SELECTOR, 'tr[data-preview="one"] a[href^="http"]')
    assert link.get_attribute("href").rstrip("/") == {p["name"]: p for p in live.cli_json("list")}["one"]["url"].rstrip("/")

    browser.find_element(By.ID, "destroy-two").click()
    wait.until(ec.presence_of_element_located((By.ID, "confirm-destroy"))).click()
    # The page follows the background destroy (it polls /jobs/N) and reloads when it is done.
    wait.until(lambda b: b.find_elements(By.ID, "jobs") and not b.find_elements(By.CSS_SELECTOR, 'tr[data-preview="two"]'))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "tr[data-job-row][data-state=ok]"))
    assert browser.find_elements(By.CSS_SELECTOR, 'tr[data-preview="one"]')
    assert "two" not in {p["name"] for p in live.cli_json("list")}

    browser.find_element(By.LINK_TEXT, "Snapshots").click()
    chart = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#chart svg.chart")))
    assert chart.size["width"] > 0 and chart.size["height"] > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart svg rect.bar")) == 1
    ET.fromstring(chart.get_attribute("outerHTML"))  # well-formed SVG
