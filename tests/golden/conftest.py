"""A small 'production' for the golden-copy tests: a database on the test MariaDB, a folder of
files and a compose project (created, never started) whose services a snapshot captures."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pymysql
import pytest
import yaml
from support import BUSYBOX_WEB, OFFICIAL_LIKE_DB, build_snapshot, seed_shop_database, source_compose

from clonekit.config import parse_config
from clonekit.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]
PROD_URL = "https://shop.example.net"
_NESTED = f'a:1:{{s:3:"url";s:{len(PROD_URL) + 5}:"{PROD_URL}/shop";}}'
# plain, PHP-serialized (nested), JSON with escaped slashes, case variant, no URL at all
OPTIONS = {
    "siteurl": PROD_URL,
    "widget": f'a:2:{{s:4:"home";s:{len(PROD_URL)}:"{PROD_URL}";s:4:"more";s:{len(_NESTED)}:"{_NESTED}";}}',
    "json": '{"home":"' + PROD_URL.replace("/", "\\/") + '\\/about"}',
    "upper": PROD_URL.upper() + " and " + PROD_URL + "/x",
    "other": "nothing to replace",
    "broken": 's:99:"' + PROD_URL + '";',
}
WATCHDOG_LOCATION = PROD_URL + "/user/login"
# Like the official images: VOLUME /var/lib/mysql; the server and its first-start initialisation
# read the datadir from the configuration (a plain Debian mariadb-server underneath).
VOLUME_IMAGE_DOCKERFILE = """
FROM clonekit/base-mariadb:10.11
VOLUME /var/lib/mysql
CMD ["sh", "-c", "mkdir -p /run/mysqld && chown mysql /run/mysqld && d=$(my_print_defaults mysqld | sed -n 's/^--datadir=//p' | tail -n 1) && d=${d:-/var/lib/mysql} && mkdir -p $d && chown mysql $d && { [ -d $d/mysql ] || mariadb-install-db --user=mysql --datadir=$d >/dev/null; } && exec mariadbd --user=mysql --bind-address=0.0.0.0"]
"""
VOLUME_DB = """
    image: {image}
    environment: {{MARIADB_DATABASE: shop}}"""
# An image that is not a distribution: one static binary, no shell on PATH, no mkdir, no
# /etc/passwd, no USER; its own working folder, entrypoint and command (as FROM scratch images have).
MINIMAL_WEB = """
    image: {image}"""
MINIMAL_IMAGE_CHANGES = ('ENTRYPOINT ["/bin/busybox"]', 'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]', "WORKDIR /www")

@pytest.fixture(scope="session")
def images(docker) -> None:
    if not (docker.image.exists("clonekit/busybox:latest") and docker.image.exists("clonekit/mariadb:10.11")):
        subprocess.run([str(ROOT / "scripts" / "images.sh"), "busybox", "mariadb"], check=True)


@pytest.fixture(scope="module")
def source(mysql_server, images, tmp_path_factory):
    yield from _source(mysql_server, tmp_path_factory.mktemp("golden-source"), OFFICIAL_LIKE_DB)


@pytest.fixture(scope="module")
def minimal_image(docker):
    """A scratch image holding only a static busybox (the test machine's /bin/busybox)."""
    image = f"cktest-minimal:{uuid.uuid4().hex[:8]}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(os.path.realpath(shutil.which("busybox") or "/bin/busybox"), arcname="bin/busybox")
    argv = ["docker", "import"]
    for change in MINIMAL_IMAGE_CHANGES:
        argv += ["-c", change]
    subprocess.run([*argv, "-", image], input=buffer.getvalue(), check=True, capture_output=True)
    try:
        yield image
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)


@pytest.fixture(scope="module")
def minimal_source(mysql_server, images, minimal_image, tmp_path_factory):
    """A source whose web service runs the minimal image."""
    yield from _source(mysql_server, tmp_path_factory.mktemp("golden-minimal-source"), OFFICIAL_LIKE_DB,
                       MINIMAL_WEB.format(image=minimal_image))


@pytest.fixture(scope="module")
def volume_source(mysql_server, images, tmp_path_factory):
    """A source whose database image declares VOLUME /var/lib/mysql (as the official images do)."""
    image = f"cktest-mariadb-volume:{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "build", "-q", "-t", image, "-"], input=VOLUME_IMAGE_DOCKERFILE.encode(), check=True,
                   capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    try:
        yield from _source(mysql_server, tmp_path_factory.mktemp("golden-volume-source"), VOLUME_DB.format(image=image))
    finally:
        subprocess.run(["docker", "image", "rm", "-f", image], capture_output=True)


def _source(mysql_server, root: Path, db_block: str, web_block: str = BUSYBOX_WEB, more_services: str = ""):
    site = root / "site"
    site.mkdir()
    (site / "index.html").write_text("golden files\n")
    project = f"cktest-{uuid.uuid4().hex[:8]}"
    compose_file = root / "compose.yml"
    text = source_compose(prod_url=PROD_URL, site=site, db=db_block, web=web_block)
    compose_file.write_text(text.replace("\nvolumes: {dbdata", more_services.rstrip("\n") + "\nvolumes: {dbdata", 1))
    subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", project, "create"], check=True, capture_output=True)
    database = seed_shop_database(mysql_server, "cktest_golden", OPTIONS, posts=5)
    conn = mysql_server.connect()
    try:  # a log table: previews.replace leaves it alone unless previews.replace_skip opts it in
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE `{database}`.watchdog (wid INT PRIMARY KEY, location TEXT)")
            cur.execute(f"INSERT INTO `{database}`.watchdog VALUES (1, %s)", (WATCHDOG_LOCATION,))
    finally:
        conn.close()
    try:
        yield {"root": root, "site": site, "project": project, "database": database, "server": mysql_server}
    finally:
        subprocess.run(["docker", "compose", "-f", str(compose_file), "-p", project, "down", "-v", "-t", "0"],
                       capture_output=True)
        conn = mysql_server.connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        conn.close()


@pytest.fixture
def config(source, tmp_path):
    """A clonekit project of its own (cktest...); everything labelled with it is removed afterwards."""
    yield from _config(source, tmp_path)


@pytest.fixture
def volume_config(volume_source, tmp_path):
    yield from _config(volume_source, tmp_path)


@pytest.fixture
def minimal_config(minimal_source, tmp_path):
    yield from _config(minimal_source, tmp_path)


def _config(source, tmp_path):
    project = f"cktest{uuid.uuid4().hex[:6]}"
    raw = {
        "project": project,
        "store": str(tmp_path / "store"),
        "sources": {"prod": {"files": [str(source["site"])], "containers": {"compose_project": source["project"]}}},
        "previews": {"env": {"DB_PASSWORD": "{db.password}", "SITE_URL": "{url}"}, "replace": {PROD_URL: "{url}"}},
    }
    (tmp_path / "clonekit.yml").write_text(yaml.safe_dump(raw))  # for the CLI
    config = parse_config(raw, tmp_path / "clonekit.yml")
    try:
        yield config
    finally:
        sweep(project)


def sweep(project: str) -> None:
    label = f"label=clonekit.project={project}"
    subprocess.run(["sh", "-c", f"docker rm -f $(docker ps -aq --filter {label}) 2>/dev/null;"
                    f"docker volume rm -f $(docker volume ls -q --filter {label}) 2>/dev/null;"
                    f"docker network rm $(docker network ls -q --filter {label}) 2>/dev/null;"
                    f"docker image rm -f $(docker images -q --filter {label}) 2>/dev/null"], capture_output=True)


def take_snapshot(config, source) -> Manifest:
    return build_snapshot(config, source, source["project"])


def preview_db(preview, *, user: str | None = None, password: str | None = None) -> pymysql.connections.Connection:
    """A connection to a preview's database (its own credentials unless others are given)."""
    secrets = json.loads((preview.path / "secrets.json").read_text())
    compose = ["docker", "compose", "-f", str(preview.path / "compose.yml")]
    address = subprocess.run([*compose, "port", "db", "3306"], check=True, capture_output=True, text=True).stdout.strip()
    host, port = address.rsplit(":", 1)
    db = secrets["db"]
    return pymysql.connect(host=host, port=int(port), user=user or db["user"], password=password or db["password"],
                           database=db["database"], connect_timeout=10)


def compose_exec(preview, service: str, command: str) -> str:
    return subprocess.run(["docker", "compose", "-f", str(preview.path / "compose.yml"), "exec", "-T", service,
                           "sh", "-c", command], check=True, capture_output=True, text=True).stdout
