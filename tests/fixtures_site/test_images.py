"""The local images: what previews and other tests rely on."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pymysql
import pytest
from production_site import ROOT

pytestmark = pytest.mark.docker

IMAGES = ("clonekit/mariadb:10.11", "clonekit/wordpress:6.1", "clonekit/busybox:latest", "clonekit/caddy:2.6")


def inspect(image: str) -> dict:
    done = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    assert done.returncode == 0, f"{image} is missing: run scripts/images.sh"
    return json.loads(done.stdout)[0]


@pytest.mark.parametrize("image", IMAGES)
def test_images_exist_without_volumes(image):
    config = inspect(image)["Config"]
    # A VOLUME would keep a committed container's data out of its image (golden copies).
    assert not config.get("Volumes")


def test_server_images_have_health_checks():
    assert "mariadb-admin" in inspect("clonekit/mariadb:10.11")["Config"]["Healthcheck"]["Test"]
    assert "curl" in inspect("clonekit/wordpress:6.1")["Config"]["Healthcheck"]["Test"]


def test_busybox_runs_a_shell():
    done = subprocess.run(["docker", "run", "--rm", "clonekit/busybox:latest", "sh", "-c", "echo ok; wget --help 2>&1 | head -1"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("ok\n") and "BusyBox" in done.stdout


def test_mariadb_initialises_from_mysql_variables_and_serves_local_infile():
    name = f"cktest-mariadb-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "-p", "127.0.0.1::3306",
         "-e", "MYSQL_DATABASE=shop", "-e", "MYSQL_USER=app", "-e", "MYSQL_PASSWORD=it's a secret",
         "-e", "MYSQL_ROOT_PASSWORD=root-pw", "clonekit/mariadb:10.11"],
        check=True, capture_output=True, timeout=60,
    )
    try:
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            status = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", name],
                                    capture_output=True, text=True).stdout.strip()
            time.sleep(0.5)
        assert status == "healthy"
        port = int(subprocess.run(["docker", "port", name, "3306/tcp"], capture_output=True, text=True,
                                  check=True).stdout.split(":")[-1])
        conn = pymysql.connect(host="127.0.0.1", port=port, user="app", password="it's a secret",
                               database="shop", local_infile=True)
        with conn.cursor() as cur:
            cur.execute("SELECT @@local_infile, @@innodb_log_file_size, @@character_set_server")
            assert cur.fetchone() == (1, 48 * 1024 * 1024, "utf8mb4")
            cur.execute("CREATE TABLE t (a INT)")  # the user owns its database
        conn.close()
        root = pymysql.connect(host="127.0.0.1", port=port, user="root", password="root-pw")
        root.close()
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        assert "it's a secret" not in logs and "root-pw" not in logs
        assert "Access denied" not in logs  # the healthcheck logs in over the socket
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


def test_images_script_skips_what_is_built():
    ids = {image: inspect(image)["Id"] for image in IMAGES}
    done = subprocess.run([str(ROOT / "scripts" / "images.sh")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(IMAGES) and all(line.endswith(": present") for line in lines), done.stderr
    assert {image: inspect(image)["Id"] for image in IMAGES} == ids
