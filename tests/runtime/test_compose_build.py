"""The preview compose document, built by pure functions from a captured services section."""

from __future__ import annotations

import json
from types import MappingProxyType

import pytest

from clonekit.config import PreviewFilesTarget, PreviewsConfig
from clonekit.errors import PreviewError
from clonekit.runtime import compose as cmp
from clonekit.runtime.docker import host_ports

SERVICES = {
    "db": {
        "image": "mariadb:10.11", "environment": [
            {"name": "MARIADB_DATABASE", "value": "shop"}, {"name": "MARIADB_USER", "value": "shop"},
            {"name": "MARIADB_PASSWORD", "secret": True}],
        "ports": [{"container_port": 3306, "protocol": "tcp", "host_ip": "0.0.0.0", "host_port": "3306"}],
        "mounts": [{"type": "volume", "name": "prod_db", "volume": "db", "target": "/var/lib/mysql", "read_only": False}],
        "healthcheck": {"test": ["CMD", "healthcheck.sh"], "interval_seconds": 2.0, "retries": 5},
    },
    "app": {
        "image": "shop:1", "command": ["sh", "-c", "echo $HOME && run"],
        "environment": [
            {"name": "WORDPRESS_DB_PASSWORD", "secret": True}, {"name": "API_TOKEN", "secret": True},
            {"name": "SMTP_HOST", "value": "smtp.real.example"}, {"name": "SMTP_PORT", "value": "587"},
            {"name": "MAILER_DSN", "secret": True}, {"name": "VIRTUAL_HOST", "value": "www.example.net"},
            {"name": "PRICE", "value": "5$"}, {"name": "WORDPRESS_DB_HOST", "value": "prod-db.example.net"}],
        "ports": [{"container_port": 80, "protocol": "tcp", "host_ip": "", "host_port": "8080"}],
        "expose": [80],
        "mounts": [
            {"type": "bind", "source": "/srv/uploads", "target": "/var/www/uploads", "read_only": False},
            {"type": "bind", "source": "/srv/conf/php.ini", "target": "/etc/php.ini", "read_only": True},
            {"type": "bind", "source": "/srv/cache", "target": "/var/cache/app", "read_only": False}],
        "labels": {"traefik.http.routers.prod.rule": "Host(`www.example.net`)", "com.example.team": "web"},
        "depends_on": {"db": "service_healthy"},
    },
    "worker": {"image": "shop:1", "environment": [{"name": "API_TOKEN", "secret": True}],
               "command": ["worker", "--api-key", {"secret": True}, {"secret": True, "prefix": "--token="}]},
}


def _config(**overrides) -> PreviewsConfig:
    values = dict(
        env=MappingProxyType({"DB_HOST": "{db.host}", "APP_URL": "{url}", "JSON": '{"a": 1}'}),
        files=MappingProxyType({"/srv/uploads": PreviewFilesTarget("app", "/var/www/uploads")}),
    )
    values.update(overrides)
    return PreviewsConfig(**values)


def _plan(**overrides) -> cmp.PreviewPlan:
    values = dict(
        project="shop", name="feat", compose_project="ck-shop-feat", snapshot_id="prod-20261126-000000-abcd",
        source="prod", port=41000, url="http://127.0.0.1:41000", created_at="2026-11-26T00:00:00Z", expires_at="",
        http_service="app", http_container_port=80, db_service="db", db_image="mariadb:10.11",
        db=cmp.DbCredentials("shop", "fresh-db-password", "fresh-root-password", "shop"),
        secret_values={"API_TOKEN": "fresh-token", "WORDPRESS_DB_PASSWORD": "unused", "MAILER_DSN": "fresh-dsn",
                       "MARIADB_PASSWORD": "x"},
    )
    values.update(overrides)
    return cmp.PreviewPlan(**values)


def _build(config=None, plan=None, **kwargs) -> cmp.ComposeBuild:
    config = config or _config()
    volumes = cmp.file_volumes(SERVICES, config, ["/srv/uploads", "/srv/unknown"])
    return cmp.build_compose(SERVICES, config, plan or _plan(), volumes, **kwargs)


def test_ports_env_and_secrets():
    build = _build()
    doc = build.document
    app, db = doc["services"]["app"], doc["services"]["db"]
    assert app["ports"] == ["127.0.0.1:41000:80"] and db["ports"] == ["127.0.0.1::3306"]
    assert "ports" not in doc["services"]["worker"]
    text = json.dumps(doc)
    for secret in ("fresh-db-password", "fresh-root-password", "fresh-token"):
        assert secret not in text
    assert build.secret_env["app"]["WORDPRESS_DB_PASSWORD"] == "fresh-db-password"  # rewired to the preview db
    assert build.secret_env["app"]["API_TOKEN"] == build.secret_env["worker"]["API_TOKEN"] == "fresh-token"
    assert build.secret_env["db"]["MARIADB_PASSWORD"] == "fresh-db-password"
    assert build.secret_env["db"]["MARIADB_ROOT_PASSWORD"] == "fresh-root-password"
    assert db["environment"]["MARIADB_USER"] == "shop" and db["environment"]["MYSQL_DATABASE"] == "shop"
    env = app["environment"]
    assert env["SMTP_HOST"] == "mailsink" and env["SMTP_PORT"] == "25" and "VIRTUAL_HOST" not in env
    assert env["DB_HOST"] == "db" and env["APP_URL"] == "http://127.0.0.1:41000" and env["JSON"] == '{"a": 1}'
    assert env["WORDPRESS_DB_HOST"] == "db"  # never production's database
    assert env["PRICE"] == "5$$" and app["command"] == ["sh", "-c", "echo $$HOME && run"]
    assert app["env_file"] == ["app.env"]
    worker_command = doc["services"]["worker"]["command"]
    assert worker_command[:2] == ["worker", "--api-key"] and len(worker_command[2]) >= 32
    assert worker_command[3].startswith("--token=") and len(worker_command[3]) > 40
    assert "mailsink" in doc["services"]
    assert app["depends_on"] == {"db": {"condition": "service_started"}}


def test_labels_isolation_and_volumes():
    doc = _build().document
    app = doc["services"]["app"]
    assert "traefik.http.routers.prod.rule" not in app["labels"] and app["labels"]["com.example.team"] == "web"
    for service in doc["services"].values():
        assert service["labels"]["clonekit.preview"] == "feat" and service["labels"]["clonekit.project"] == "shop"
    assert doc["networks"]["default"]["name"] == "ck-shop-feat"
    # the snapshot's files go into an external volume filled beforehand; other binds become fresh volumes
    assert "files-app-var-www-uploads:/var/www/uploads" in app["volumes"]
    assert doc["volumes"]["files-app-var-www-uploads"] == {"name": "ck-shop-feat-files-app-var-www-uploads", "external": True}
    assert not any(v.startswith("/srv/") for v in app["volumes"])
    assert doc["volumes"]["db"]["name"] == "ck-shop-feat-db" and doc["volumes"]["db"]["labels"]["clonekit.preview"] == "feat"
    kept = _build(keep_readonly_binds=True).document["services"]["app"]["volumes"]
    assert "/srv/conf/php.ini:/etc/php.ini:ro" in kept and not any(v.startswith("/srv/cache") for v in kept)


def test_remote_engine_database_publishes_nothing():
    local = _build().document
    assert local["services"]["db"]["ports"] == ["127.0.0.1::3306"]
    remote = _build(publish_db=False).document
    assert "ports" not in remote["services"]["db"]  # reached through an SSH tunnel to the container
    assert remote["services"]["app"]["ports"] == local["services"]["app"]["ports"]
    assert not any(key.startswith("traefik.") for key in remote["services"]["app"]["labels"])


def test_http_service_guess_and_errors():
    assert cmp.guess_http_service(SERVICES, _config()) == ("app", 80)
    with pytest.raises(PreviewError, match="http_service"):
        cmp.guess_http_service({"db": SERVICES["db"], "worker": SERVICES["worker"]}, _config())
    with pytest.raises(PreviewError, match="nope"):
        cmp.guess_http_service(SERVICES, _config(http_service="nope"))


def test_render_only_known_placeholders():
    assert cmp.render("{url}/x {other} {db.port}", {"url": "http://a", "db.port": "3306"}) == "http://a/x {other} 3306"


def test_host_ports_of_a_remote_engine():
    text = "127.0.0.1:49153->80/tcp, 3306/tcp\n0.0.0.0:8080->8080/tcp, :::8080->8080/tcp\n\n[::1]:5000-5001->5000-5001/tcp\n"
    assert host_ports(text) == {49153, 8080, 5000, 5001}


def test_start_order_puts_each_service_after_its_dependencies() -> None:
    from clonekit.runtime.compose import start_order

    started = {"condition": "service_started"}
    doc = {"services": {"web": {"depends_on": {"db": started, "cache": started}}, "worker": {"depends_on": ["web"]},
                        "db": {}, "cache": {}, "mailsink": {}}}
    order = start_order(doc)
    assert order is not None and sorted(order) == sorted(doc["services"])
    assert order.index("db") < order.index("web") and order.index("cache") < order.index("web")
    assert order.index("web") < order.index("worker")
    # what only compose up does: wait for a condition, run replicas; a cycle or an unknown service
    for services in ({"web": {"depends_on": {"migrate": {"condition": "service_completed_successfully"}}}, "migrate": {}},
                     {"web": {"depends_on": {"db": {"condition": "service_healthy"}}}, "db": {}},
                     {"web": {"deploy": {"replicas": 2}}},
                     {"web": {"scale": 2}},
                     {"a": {"depends_on": ["b"]}, "b": {"depends_on": ["a"]}},
                     {"web": {"depends_on": ["gone"]}}):
        assert start_order({"services": services}) is None, services
