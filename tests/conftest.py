"""Fixtures that hand each test a real service, and clean up after it.

`make services` (scripts/services.sh) starts MariaDB, an S3 server, sshd and Docker and writes
$CLONEKIT_SERVICES_DIR/services.env. A missing or dead service FAILS the test: never a skip.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from production_site import Production, ckprod  # noqa: F401  (the suite's one WordPress production)

from tests.support import fetch_rows

SERVICES_DIR = Path(os.environ.get("CLONEKIT_SERVICES_DIR", "/var/tmp/clonekit-services"))

# Tests never wait long on retries.
os.environ.setdefault("CLONEKIT_RETRY_FIRST_WAIT", "0.01")
os.environ.setdefault("CLONEKIT_RETRY_MAX_WAIT", "0.2")


def _services_env() -> dict[str, str]:
    path = SERVICES_DIR / "services.env"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make services` (tests never skip a missing service)", pytrace=False)
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def _require_port(host: str, port: int, what: str) -> None:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"{what} is not answering on {host}:{port} ({exc}): run `make services`", pytrace=False)


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    return _services_env()


@dataclass(frozen=True)
class MysqlServer:
    host: str
    port: int
    user: str
    password: str
    socket: str

    def connect(self, database: str | None = None, **kwargs):
        import pymysql

        return pymysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=database, charset="utf8mb4", autocommit=True, **kwargs,
        )


@dataclass(frozen=True)
class MysqlDatabase:
    server: MysqlServer
    name: str

    def connect(self, **kwargs):
        return self.server.connect(self.name, **kwargs)

    def execute(self, *statements: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def query(self, sql: str, args=None) -> list[tuple]:
        return fetch_rows(self.connect, sql, args)


@pytest.fixture(scope="session")
def mysql_server(services) -> MysqlServer:
    server = MysqlServer(
        host=services["CLONEKIT_TEST_MYSQL_HOST"],
        port=int(services["CLONEKIT_TEST_MYSQL_PORT"]),
        user=services["CLONEKIT_TEST_MYSQL_USER"],
        password=services["CLONEKIT_TEST_MYSQL_PASSWORD"],
        socket=services["CLONEKIT_TEST_MYSQL_SOCKET"],
    )
    _require_port(server.host, server.port, "MariaDB")
    return server


def _fresh_database(server: MysqlServer, prefix: str) -> Iterator[MysqlDatabase]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()
    try:
        yield MysqlDatabase(server, name)
    finally:
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture
def mysql_db(mysql_server) -> Iterator[MysqlDatabase]:
    """A fresh, empty database on the real MariaDB server, dropped afterwards."""
    yield from _fresh_database(mysql_server, "t")


@pytest.fixture
def mysql_target_db(mysql_server) -> Iterator[MysqlDatabase]:
    """A second fresh database, to restore into."""
    yield from _fresh_database(mysql_server, "r")


@dataclass(frozen=True)
class S3Bucket:
    endpoint_url: str
    bucket: str
    server: str = "moto"  # "moto" (a mock) or "rgw" (Ceph's RADOS Gateway, a real S3 server)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/snapshots"

    def client(self):
        """A raw boto3 client, for what the test checks behind clonekit's back (credentials from the env)."""
        import boto3

        # a new session each time: boto3's default session keeps the first credentials it found
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")


@pytest.fixture(scope="session")
def s3_endpoint(services) -> str:
    endpoint = services["CLONEKIT_TEST_S3_ENDPOINT"]
    host, port = endpoint.rsplit("/", 1)[-1].split(":")
    _require_port(host, int(port), "The S3 server")
    # moto takes any key; the standard AWS chain reads these.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return endpoint


@dataclass(frozen=True)
class RgwServer:
    endpoint_url: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="session")
def rgw_server(services) -> RgwServer:
    """Ceph's RADOS Gateway on loopback (scripts/ceph-rgw.sh, started by `make services`)."""
    missing = [k for k in ("CLONEKIT_TEST_RGW_ENDPOINT", "CLONEKIT_TEST_RGW_ACCESS_KEY", "CLONEKIT_TEST_RGW_SECRET_KEY") if not services.get(k)]
    if missing:
        pytest.fail(f"services.env lacks {', '.join(missing)}: run `make services` (it starts the RADOS Gateway)", pytrace=False)
    server = RgwServer(services["CLONEKIT_TEST_RGW_ENDPOINT"], services["CLONEKIT_TEST_RGW_ACCESS_KEY"], services["CLONEKIT_TEST_RGW_SECRET_KEY"])
    host, port = server.endpoint_url.rsplit("/", 1)[-1].split(":")
    _require_port(host, int(port), "The RADOS Gateway (Ceph S3)")
    return server


def _fresh_bucket(bucket: S3Bucket) -> Iterator[S3Bucket]:
    client = bucket.client()
    client.create_bucket(Bucket=bucket.bucket)
    try:
        yield bucket
    finally:
        for upload in client.list_multipart_uploads(Bucket=bucket.bucket).get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket.bucket):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket.bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket.bucket)


@pytest.fixture
def moto_bucket(s3_endpoint) -> Iterator[S3Bucket]:
    """A fresh bucket on the moto S3 server over HTTP, emptied and deleted afterwards."""
    yield from _fresh_bucket(S3Bucket(s3_endpoint, f"ck-{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def rgw_bucket(rgw_server, monkeypatch) -> Iterator[S3Bucket]:
    """A fresh bucket on Ceph's RADOS Gateway, emptied and deleted afterwards. The test user's
    keys are in the environment for the test's duration (the standard AWS chain reads them)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", rgw_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", rgw_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield from _fresh_bucket(S3Bucket(rgw_server.endpoint_url, f"ck-{uuid.uuid4().hex[:12]}", server="rgw"))


@pytest.fixture
def s3_bucket(moto_bucket) -> S3Bucket:
    """A fresh bucket on the loopback S3 server (moto); tests/store runs its S3 tests on RGW too."""
    return moto_bucket


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    key_file: str
    known_hosts: str

    @property
    def target(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@pytest.fixture(scope="session")
def ssh_server(services) -> SshServer:
    server = SshServer(
        host=services["CLONEKIT_TEST_SSH_HOST"],
        port=int(services["CLONEKIT_TEST_SSH_PORT"]),
        user=services["CLONEKIT_TEST_SSH_USER"],
        key_file=services["CLONEKIT_TEST_SSH_KEY"],
        known_hosts=services["CLONEKIT_TEST_SSH_KNOWN_HOSTS"],
    )
    _require_port(server.host, server.port, "sshd")
    return server


@pytest.fixture(scope="session")
def docker():
    """A python-on-whales client for the real local Docker engine."""
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

    client = DockerClient()
    try:
        client.info()
    except DockerException as exc:
        pytest.fail(f"the Docker engine is not answering ({exc}): run `make services`", pytrace=False)
    return client


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server standing in for a Slack incoming webhook: (URL, received messages)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "type": self.headers["Content-Type"], "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000", received
    finally:
        server.shutdown()


CKPROD_GROUP = "ckprod"


def pytest_itemcollected(item) -> None:
    """Every test that uses the shared production runs in one xdist group, one after the other.

    Rendering a WordPress page writes to its database (transients), so a test that renders it
    beside one that checks "the source is untouched" would fail for a reason of the suite's own.
    Marked as each test is collected, before any collection_modifyitems (xdist reads the groups
    there), whatever fixture chain brings `ckprod` in.
    """
    if "ckprod" in getattr(item, "fixturenames", ()) and item.get_closest_marker("xdist_group") is None:
        item.add_marker(pytest.mark.xdist_group(CKPROD_GROUP))


def pytest_collection_finish(session) -> None:
    """Refuse to run when xdist would not honour the ckprod group (pytest-xdist#1386 on pytest 9.2)."""
    if not getattr(session.config.option, "loadgroup", False):
        return  # not an xdist worker, or not --dist loadgroup: nothing runs side by side
    split = [item.nodeid for item in session.items
             if "ckprod" in getattr(item, "fixturenames", ()) and "@" not in item.nodeid]
    if split:
        raise pytest.UsageError(
            f"--dist loadgroup is not grouping tests on this pytest/xdist ({split[0]} has no @group suffix): "
            "tests of the shared production would run side by side; install the versions setup.cfg pins")
