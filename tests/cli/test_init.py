"""`clonekit init` writes a config that loads, filled from the compose project in the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from runtime.conftest import busybox_image  # noqa: F401  (the local images)

from clonekit.cli import main
from clonekit.config import load_config
from clonekit.db import DbEndpoint, table_checksums

ROOT = Path(__file__).resolve().parents[2]

COMPOSE = """
name: news
services:
  db:
    image: mariadb:10.11
    environment:
      MARIADB_DATABASE: wordpress
      MARIADB_USER: wp
    ports: ["127.0.0.1:33306:3306"]
  app:
    image: wordpress:6.1-apache
    environment: [WORDPRESS_DB_HOST=db]
    volumes:
      - ./uploads:/var/www/html/wp-content/uploads
"""


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_init_detects_compose_wordpress(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    (tmp_path / "uploads").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["init"], capsys)
    assert code == 0, err
    config = load_config(tmp_path / "clonekit.yml")
    assert config.sanitize.preset == "wordpress" and config.sanitize.strict
    prod = config.sources["prod"]
    assert prod.database is not None
    assert (prod.database.name, prod.database.user, prod.database.port) == ("wordpress", "wp", 33306)
    assert prod.containers is not None and prod.containers.compose_project == "news"
    assert prod.files[0].path == str(tmp_path / "uploads")
    assert config.previews.files[str(tmp_path / "uploads")].path == "/var/www/html/wp-content/uploads"
    assert config.previews.database_service == "db"
    assert "wrote" in out


def test_init_refuses_to_overwrite(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["init", "--project", "site"], capsys)[0] == 0
    code, _, err = run(["init"], capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert run(["init", "--force", "--project", "site"], capsys)[0] == 0
    assert load_config(tmp_path / "clonekit.yml").project == "site"


# The WordPress: names in the app's environment (a mapping), a named volume for uploads,
# the password a literal (never copied), the database port in long syntax.
WORDPRESS_NAMED_VOLUME = """
services:
  database:
    image: docker.io/library/mariadb:10.11
    environment: [MARIADB_DATABASE=wordpress, MARIADB_USER=wp, MARIADB_PASSWORD=literal-secret-value,
                  MARIADB_ROOT_PASSWORD=root-literal-secret]
    ports:
      - target: 3306
        published: "${DB_PORT:-3307}"
        host_ip: 127.0.0.1
  app:
    image: wordpress:6.1-apache
    environment:
      WORDPRESS_DB_HOST: database:3306
      WORDPRESS_DB_NAME: wordpress
      WORDPRESS_DB_USER: wp
      WORDPRESS_DB_PASSWORD: literal-secret-value
    ports: ["8080:80"]
    volumes:
      - uploads:/var/www/html/wp-content/uploads
      - type: bind
        source: ./theme
        target: /var/www/html/wp-content/themes/mine
volumes:
  uploads: {}
"""

# A Drupal: environment as a list, values from `.env` (`${VAR}`, `${VAR:-default}`), a named
# volume with its own name for sites/default/files, the password through a variable.
DRUPAL = """
name: ${SITE:-agency}
services:
  web:
    image: drupal:10-apache
    environment:
      - DRUPAL_DB_HOST=mariadb
      - DRUPAL_DB_NAME=${DB_NAME}
      - DRUPAL_DB_USER=${DB_USER:-drupal}
      - DRUPAL_DB_PASSWORD=${DRUPAL_DB_PASSWORD:?set it}
    ports: ["127.0.0.1:8081:80/tcp"]
    volumes:
      - files:/opt/drupal/web/sites/default/files
      - ./modules:/opt/drupal/web/modules/custom:ro
  mariadb:
    image: registry.example.net/mariadb:10.11
    env_file: db.env
    ports: ["${DB_BIND:-127.0.0.1}:${DB_PORT}:3306"]
volumes:
  files:
    name: news_drupal_files
"""


def _init(folder: Path, capsys, monkeypatch) -> tuple[object, str]:
    monkeypatch.chdir(folder)
    code, out, err = run(["init", "--project", "site"], capsys)
    assert code == 0, err
    return load_config(folder / "clonekit.yml"), out


def test_init_names_the_password_variable_never_its_value(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "compose.yml").write_text(WORDPRESS_NAMED_VOLUME)
    monkeypatch.delenv("DB_PORT", raising=False)
    config, out = _init(tmp_path, capsys, monkeypatch)
    text = (tmp_path / "clonekit.yml").read_text()
    assert "literal-secret" not in text and "literal-secret" not in out
    db = config.sources["prod"].database
    assert (db.name, db.user, db.port, db.password_env) == ("wordpress", "wp", 3307, "PROD_DB_PASSWORD")
    assert "export PROD_DB_PASSWORD" in out and "WORDPRESS_DB_PASSWORD" in out
    # the named volume (project = the folder's name) holds the uploads; the theme bind mount does not
    project = tmp_path.name.lower()
    [files] = config.sources["prod"].files
    assert files.path.endswith(f"/volumes/{project}_uploads/_data")
    assert config.previews.files[files.path].path == "/var/www/html/wp-content/uploads"
    assert config.previews.files[files.path].service == "app"
    assert config.previews.env["WORDPRESS_DB_HOST"] == "{db.host}:{db.port}"
    assert config.previews.env["WORDPRESS_DB_PASSWORD"] == "{db.password}"
    assert dict(config.previews.replace) == {"http://localhost:8080": "{url}"}
    assert config.sanitize.preset == "wordpress" and config.previews.http_service == "app"
    assert config.previews.database_service == "database"


def test_init_reads_a_drupal_compose_with_env_file_and_interpolation(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "compose.yml").write_text(DRUPAL)
    (tmp_path / ".env").write_text("# compose reads this\nDB_NAME=news\nDB_PORT=33999\nexport SITE='news'\n")
    (tmp_path / "db.env").write_text("MARIADB_DATABASE=news\nMARIADB_USER=drupal\nMARIADB_PASSWORD=from-db-env\n")
    (tmp_path / "modules").mkdir()
    for name in ("DB_NAME", "DB_PORT", "SITE", "DB_USER", "DB_BIND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRUPAL_DB_PASSWORD", "exported-secret")
    config, out = _init(tmp_path, capsys, monkeypatch)
    text = (tmp_path / "clonekit.yml").read_text()
    assert "exported-secret" not in text and "from-db-env" not in text
    prod = config.sources["prod"]
    assert (prod.database.name, prod.database.user, prod.database.port) == ("news", "drupal", 33999)
    assert prod.database.password_env == "DRUPAL_DB_PASSWORD"
    assert prod.containers.compose_project == "news"
    assert config.previews.database_service == "mariadb"
    [files] = prod.files
    assert files.path.endswith("/volumes/news_drupal_files/_data")
    assert "css/*" in files.exclude
    assert config.previews.files[files.path].path == "/opt/drupal/web/sites/default/files"
    assert config.sanitize.preset == "drupal"
    assert config.previews.env["DRUPAL_DB_NAME"] == "{db.name}"


def test_init_reads_a_mounted_drupal_settings_php(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "compose.yml").write_text("""
services:
  db:
    image: mysql:8.0
    ports: ["3308:3306"]
  php:
    image: php:8.2-fpm
    volumes:
      - ./web:/var/www/html
""")
    default = tmp_path / "web" / "sites" / "default"
    (default / "files").mkdir(parents=True)
    (default / "settings.php").write_text("""<?php
$databases['default']['default'] = [
  'database' => 'agency_site',
  'username' => 'site_ro',
  'password' => $_ENV['SITE_DB_PASSWORD'] ?? '',
  'host' => 'db',
  'driver' => 'mysql',
];
""")
    config, out = _init(tmp_path, capsys, monkeypatch)
    db = config.sources["prod"].database
    assert (db.engine, db.name, db.user, db.password_env, db.port) == ("mysql", "agency_site", "site_ro",
                                                                       "SITE_DB_PASSWORD", 3308)
    [files] = config.sources["prod"].files
    assert files.path == str(default / "files")
    assert config.previews.files[files.path].path == "/var/www/html/sites/default/files"
    assert config.sanitize.preset == "drupal"


def _source_state(ckprod) -> dict:  # noqa: F811
    """Checksums of every production table: the clone must leave all of them as they were (the
    suite runs every user of ckprod one after the other, so nothing else renders meanwhile)."""
    source = DbEndpoint("127.0.0.1", ckprod.db_port, "wp", ckprod.secrets["CKPROD_DB_PASSWORD"], "wordpress")
    return table_checksums(source)


@pytest.mark.docker
@pytest.mark.xdist_group("ckprod")
def test_init_on_the_wordpress_production_then_clone_works_as_written(tmp_path: Path, ckprod) -> None:
    """A new user's first ten minutes: the production's compose file in a folder, `clonekit init`,
    export the variables it names, `clonekit clone prod --as x`: no editing in between."""
    shutil.copy(ROOT / "fixtures" / "wordpress" / "compose.yml", tmp_path / "compose.yml")
    project = f"cktestinit{uuid.uuid4().hex[:6]}"
    # the shell of a user who has not exported anything yet (no CKPROD_* variables)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKPROD_", "CLONEKIT_"))}
    clonekit = [sys.executable, "-m", "clonekit"]
    done = subprocess.run([*clonekit, "init", "--project", project], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "running, read with docker inspect" in done.stdout
    text = (tmp_path / "clonekit.yml").read_text()
    assert ckprod.secrets["CKPROD_DB_PASSWORD"] not in text and ckprod.secrets["CKPROD_DB_PASSWORD"] not in done.stdout
    config = load_config(tmp_path / "clonekit.yml")
    db = config.sources["prod"].database
    assert (db.port, db.name, db.user) == (ckprod.db_port, "wordpress", "wp")
    assert [f.path for f in config.sources["prod"].files] == [str(ckprod.uploads)]
    # export what it names, with the values the production was started with
    exported = {db.password_env: ckprod.secrets[db.password_env], config.sanitize.secret_env: uuid.uuid4().hex}
    assert f"export {db.password_env}" in done.stdout

    before = _source_state(ckprod)
    titles = [t for (t,) in ckprod.query("SELECT post_title FROM wp_posts WHERE post_type='post' "
                                          "AND post_status='publish' ORDER BY post_date DESC LIMIT 3")]
    try:
        cloned = subprocess.run([*clonekit, "--json", "clone", "prod", "--as", "x"], cwd=tmp_path,
                                env={**env, **exported}, capture_output=True, text=True, timeout=900)
        assert cloned.returncode == 0, cloned.stderr[-3000:]
        url = json.loads(cloned.stdout)["url"]
        page = urllib.request.urlopen(url + "/", timeout=30).read().decode()
        assert any(title in page or title.replace("'", "&#8217;") in page for title in titles)
        assert ckprod.url.split("//")[1] not in page  # links point at the preview
        upload = next(p for p in sorted(ckprod.uploads.rglob("*")) if p.is_file())
        relative = upload.relative_to(ckprod.uploads).as_posix()
        assert urllib.request.urlopen(f"{url}/wp-content/uploads/{relative}", timeout=30).read() == upload.read_bytes()
        assert _source_state(ckprod) == before  # read-only on the source
    finally:
        subprocess.run([*clonekit, "destroy", "--all", "--yes"], cwd=tmp_path, env={**env, **exported},
                       capture_output=True, timeout=300)


def test_init_reads_compose_override_on_top(tmp_path: Path, capsys, monkeypatch) -> None:
    """compose.override.yml counts as `docker compose` counts it: environment by variable, more ports."""
    (tmp_path / "docker-compose.yml").write_text("""
services:
  db:
    image: mariadb:11
    environment: {MARIADB_DATABASE: shop, MARIADB_USER: shop, MARIADB_PASSWORD: "${SHOP_DB_PASSWORD}"}
  shop:
    image: example/shop:1
    environment: [DB_HOST=db, DB_NAME=shop]
""")
    (tmp_path / "docker-compose.override.yml").write_text("""
services:
  db:
    ports: ["127.0.0.2:3310:3306"]
  shop:
    environment: {DB_USER: shop_ro, DB_PASSWORD: "${SHOP_RO_PASSWORD:-}"}
    volumes: ["./media:/srv/shop/wp-content/uploads"]
""")
    config, out = _init(tmp_path, capsys, monkeypatch)
    db = config.sources["prod"].database
    assert (db.host, db.port, db.name, db.user, db.password_env) == ("127.0.0.2", 3310, "shop", "shop_ro",
                                                                     "SHOP_RO_PASSWORD")
    assert [f.path for f in config.sources["prod"].files] == [str(tmp_path / "media")]
    assert config.previews.env["DB_HOST"] == "{db.host}" and config.previews.env["DB_USER"] == "{db.user}"


NAMED_VOLUME_SITE = """
name: ${SHOP_PROJECT}
services:
  db:
    image: clonekit/mariadb:10.11
    environment:
      - MARIADB_DATABASE=shop
      - MARIADB_USER=shop
      - MARIADB_PASSWORD=${SHOP_DB_PASSWORD:?set it in .env}
      - MARIADB_ROOT_PASSWORD=${SHOP_ROOT_PASSWORD:?set it in .env}
    ports:
      - target: 3306
        published: "${SHOP_DB_PORT}"
        host_ip: 127.0.0.1
  app:
    image: clonekit/busybox:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    environment:
      WORDPRESS_DB_HOST: db:3306
      WORDPRESS_DB_NAME: shop
      WORDPRESS_DB_USER: shop
      WORDPRESS_DB_PASSWORD: ${SHOP_DB_PASSWORD:?set it in .env}
    ports: ["127.0.0.1::80"]
    volumes: [uploads:/www/wp-content/uploads]
volumes:
  uploads: {}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.docker
def test_init_on_a_running_project_with_a_named_volume_and_dotenv_then_clone(tmp_path: Path, busybox_image) -> None:  # noqa: F811
    """The issue's shape, running: uploads in a named volume, secrets in `.env`, names in the
    app's WORDPRESS_DB_*; init, export what it names, clone: the upload is served by the preview."""
    import pymysql

    site = f"cktestsite{uuid.uuid4().hex[:6]}"
    port = _free_port()
    dotenv = {"SHOP_PROJECT": site, "SHOP_DB_PASSWORD": uuid.uuid4().hex, "SHOP_ROOT_PASSWORD": uuid.uuid4().hex,
              "SHOP_DB_PORT": str(port)}
    (tmp_path / "compose.yml").write_text(NAMED_VOLUME_SITE)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "CLONEKIT_"))}
    compose = ["docker", "compose", "--project-directory", str(tmp_path)]
    clonekit = [sys.executable, "-m", "clonekit"]
    project = f"cktestinit{uuid.uuid4().hex[:6]}"
    try:
        subprocess.run([*compose, "up", "-d"], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([*compose, "exec", "-T", "app", "sh", "-c", "echo uploaded > /www/wp-content/uploads/a.txt"],
                       cwd=tmp_path, env=env, check=True, capture_output=True, timeout=60)
        conn = None
        for _ in range(120):  # the server initialises its datadir first
            try:
                conn = pymysql.connect(host="127.0.0.1", port=port, user="shop", password=dotenv["SHOP_DB_PASSWORD"],
                                       database="shop", autocommit=True, connect_timeout=2)
                break
            except pymysql.err.OperationalError:
                time.sleep(1)
        assert conn is not None, "the site's database never accepted its own account"
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE posts (id INT PRIMARY KEY, title VARCHAR(100))")
            cur.execute("INSERT INTO posts VALUES (1, 'hello from the named volume site')")
        conn.close()

        done = subprocess.run([*clonekit, "init", "--project", project], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "running, read with docker inspect" in done.stdout and "set -a; . ./.env; set +a" in done.stdout
        text = (tmp_path / "clonekit.yml").read_text()
        assert dotenv["SHOP_DB_PASSWORD"] not in text and dotenv["SHOP_ROOT_PASSWORD"] not in text
        config = load_config(tmp_path / "clonekit.yml")
        db = config.sources["prod"].database
        assert (db.port, db.name, db.user, db.password_env) == (port, "shop", "shop", "SHOP_DB_PASSWORD")
        [files] = config.sources["prod"].files
        assert files.path.endswith(f"/{site}_uploads/_data") and Path(files.path, "a.txt").is_file()

        exported = {**env, "SHOP_DB_PASSWORD": dotenv["SHOP_DB_PASSWORD"], "CLONEKIT_SECRET": uuid.uuid4().hex}
        cloned = subprocess.run([*clonekit, "--json", "clone", "prod", "--as", "x"], cwd=tmp_path, env=exported,
                                capture_output=True, text=True, timeout=900)
        assert cloned.returncode == 0, cloned.stderr[-3000:]
        url = json.loads(cloned.stdout)["url"]
        assert urllib.request.urlopen(f"{url}/wp-content/uploads/a.txt", timeout=30).read() == b"uploaded\n"
    finally:
        subprocess.run([*clonekit, "destroy", "--all", "--yes"], cwd=tmp_path, env=env, capture_output=True, timeout=300)
        subprocess.run([*compose, "down", "-v", "-t", "0"], cwd=tmp_path, env=env, capture_output=True, timeout=300)
