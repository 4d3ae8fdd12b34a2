"""capture_services against a real compose project on the local engine (and through sshd)."""

from __future__ import annotations

import json
import subprocess

import pytest

from clonekit.config import ContainersSource, SshTarget
from clonekit.containers import capture_services, is_secret_name
from clonekit.errors import SourceError

SECRET_VALUES = ("s3cr3t-db-pass", "k3y-material-xyz", "hunter2", "tok-123456", "opaque-value-1")

COMPOSE = """
services:
  db:
    image: {image}
    command: ["sh", "-c", "sleep 600"]
    environment:
      MARIADB_PASSWORD: s3cr3t-db-pass
      MARIADB_DATABASE: shop
    volumes: [dbdata:/var/lib/mysql]
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
      retries: 3
  app:
    image: {image}
    command: ["sh", "-c", "sleep 600"]
    working_dir: /srv
    user: "1000"
    environment:
      SECRET_KEY: k3y-material-xyz
      DB_PASSWORD: hunter2
      API_TOKEN: tok-123456
      DATABASE_URL: mysql://shop:hunter2@db/shop
      CUSTOM_OPAQUE: opaque-value-1
      PLAIN_SETTING: hello
    ports: ["127.0.0.1::8080"]
    volumes: [uploads:/srv/uploads, ./conf:/etc/app:ro]
    labels:
      com.example.role: web
    depends_on:
      db: {{condition: service_started}}
volumes:
  dbdata: {{}}
  uploads: {{}}
"""


def _up(folder, name, image):
    (folder / "conf").mkdir()
    (folder / "compose.yml").write_text(COMPOSE.format(image=image))
    subprocess.run(["docker", "compose", "-f", str(folder / "compose.yml"), "-p", name, "up", "-d"], check=True, capture_output=True)


def _check(section, name, folder, image):
    text = json.dumps(section)
    for secret in SECRET_VALUES:
        assert secret not in text
    services = section["services"]
    assert set(services) == {"db", "app"}
    app, db = services["app"], services["db"]
    env = {e["name"]: e for e in app["environment"]}
    assert env["PLAIN_SETTING"] == {"name": "PLAIN_SETTING", "value": "hello"}
    for secret_name in ("SECRET_KEY", "DB_PASSWORD", "API_TOKEN", "DATABASE_URL", "CUSTOM_OPAQUE"):
        assert env[secret_name] == {"name": secret_name, "secret": True}
    assert "PATH" not in env  # inherited from the image, not recorded
    assert app["image"] == image and app["image_id"].startswith("sha256:")
    assert app["command"] == ["sh", "-c", "sleep 600"]
    assert app["working_dir"] == "/srv" and app["user"] == "1000"
    assert app["ports"] == [{"container_port": 8080, "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": ""}]
    mounts = {m["target"]: m for m in app["mounts"]}
    assert mounts["/srv/uploads"]["type"] == "volume" and mounts["/srv/uploads"]["volume"] == "uploads"
    assert mounts["/srv/uploads"]["name"] == f"{name}_uploads"
    assert mounts["/etc/app"] == {"type": "bind", "target": "/etc/app", "read_only": True, "source": str(folder / "conf")}
    assert app["labels"] == {"com.example.role": "web"}
    assert app["depends_on"] == {"db": "service_started"}
    assert db["healthcheck"]["test"] == ["CMD", "true"]
    assert db["healthcheck"]["interval_seconds"] == 5 and db["healthcheck"]["retries"] == 3
    assert {e["name"]: e for e in db["environment"]}["MARIADB_DATABASE"]["value"] == "shop"
    assert section["compose_project"] == name


def test_capture_local_engine_redacts_secrets(docker, busybox_image, compose_project):
    name, folder = compose_project
    _up(folder, name, busybox_image)
    # a one-off `docker compose run` container of the same service must not stand for it
    subprocess.run(["docker", "compose", "-f", str(folder / "compose.yml"), "-p", name, "run", "--no-deps", "-d",
                    "--name", f"{name}-a-oneoff", "app", "sh", "-c", "sleep 60"], check=True, capture_output=True)
    try:
        section = capture_services(ContainersSource(compose_project=name, secret_env_names=("CUSTOM_OPAQUE",)))
    finally:  # `compose down` leaves named one-off containers behind
        subprocess.run(["docker", "rm", "-f", f"{name}-a-oneoff"], capture_output=True)
    _check(section, name, folder, busybox_image)


def test_capture_through_the_source_ssh_session(docker, busybox_image, compose_project, ssh_server):
    name, folder = compose_project
    _up(folder, name, busybox_image)
    ssh = SshTarget(host=ssh_server.host, user=ssh_server.user, port=ssh_server.port,
                    known_hosts=ssh_server.known_hosts, key_file=ssh_server.key_file)
    section = capture_services(ContainersSource(compose_project=name, secret_env_names=("CUSTOM_OPAQUE",)), ssh=ssh)
    _check(section, name, folder, busybox_image)


def test_unknown_project_is_a_clear_source_error(docker):
    with pytest.raises(SourceError, match="cktest-nothing-here"):
        capture_services(ContainersSource(compose_project="cktest-nothing-here"))


@pytest.mark.parametrize("name", ["DB_PASSWORD", "WORDPRESS_AUTH_SALT", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
                                  "SMTP_PASS", "MYSQL_PWD", "SENTRY_DSN", "app.credentials"])
def test_secret_names(name):
    assert is_secret_name(name)


def test_secret_command_options_are_redacted():
    from clonekit.containers import redact_argv

    argv = ["redis-server", "--requirepass", "hunter2", "--db-password=s3cret", "--port", "6379",
            "mysql://u:pw@db/x"]
    out = redact_argv(argv)
    assert out[:3] == ["redis-server", "--requirepass", {"secret": True}]
    assert out[3] == {"secret": True, "prefix": "--db-password="}
    assert out[4:6] == ["--port", "6379"] and out[6] == {"secret": True}
    assert "hunter2" not in repr(out) and "s3cret" not in repr(out)


@pytest.mark.parametrize("name", ["PATH", "WP_HOME", "DB_HOST", "PASSENGER_MODE", "SMTP_HOST"])
def test_plain_names(name):
    assert not is_secret_name(name)
