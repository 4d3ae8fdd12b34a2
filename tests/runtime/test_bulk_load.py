"""Load-time settings of a fresh preview database (``clonekit.db.target.bulk_load``): what is set
for which server (pure), and on a real MariaDB container: raised during the load, set back after,
and a server that refuses them still loads with its own."""

from __future__ import annotations

import logging
import subprocess
import uuid
from collections.abc import Iterator

import pymysql
import pytest

from clonekit.db.endpoint import DbEndpoint
from clonekit.db.target import LOAD_BUFFER_POOL_MAX, bulk_load, load_settings_sql, wait_for_database
from clonekit.errors import PreviewError
from clonekit.runtime.compose import DEFAULT_DB_IMAGE as MARIADB_IMAGE
from clonekit.runtime.docker import DockerEngine
from clonekit.runtime.service import in_container

MiB = 1 << 20
GiB = 1 << 30
READ = ("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.innodb_buffer_pool_size, "
        "@@GLOBAL.innodb_log_file_size")


def test_settings_for_the_load() -> None:
    before, after = load_settings_sql(1, 128 * MiB, 1800 * MiB)
    assert before.decode().splitlines() == ["SET GLOBAL innodb_flush_log_at_trx_commit = 0;",
                                            f"SET GLOBAL innodb_buffer_pool_size = {GiB};"]
    assert after.decode().splitlines() == ["SET GLOBAL innodb_flush_log_at_trx_commit = 1;",
                                           f"SET GLOBAL innodb_buffer_pool_size = {128 * MiB};"]
    # The pool grows only for data larger than it, in 128 MiB steps; a server already at 0 keeps it.
    assert load_settings_sql(0, 128 * MiB, 20 * MiB) == (b"", b"")
    assert f"= {256 * MiB};".encode() in load_settings_sql(1, 128 * MiB, 130 * MiB)[0]
    before, after = load_settings_sql(2, 4 * GiB, 3 * GiB)
    assert before == b"SET GLOBAL innodb_flush_log_at_trx_commit = 0;" and after.endswith(b"= 2;")
    assert f"= {LOAD_BUFFER_POOL_MAX};".encode() in load_settings_sql(1, 128 * MiB, 50 * GiB)[0]
    # The redo log is never resized (a checkpoint of every dirty page to set it back).
    assert b"log_file_size" not in load_settings_sql(1, 128 * MiB, 50 * GiB)[0]


@pytest.fixture
def preview_db(docker, busybox_image) -> Iterator[tuple[str, DbEndpoint]]:  # busybox_image: the test images are there
    name = f"ckbulk-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--name", name, "-e", "MARIADB_ROOT_PASSWORD=root-pw", "-e", "MARIADB_DATABASE=site",
                    "-e", "MARIADB_USER=site", "-e", "MARIADB_PASSWORD=site-pw", "-p", "127.0.0.1::3306", MARIADB_IMAGE],
                   check=True, capture_output=True)
    try:
        port = int(subprocess.run(["docker", "port", name, "3306/tcp"], capture_output=True, text=True,
                                  check=True).stdout.split()[0].rsplit(":", 1)[-1])
        endpoint = DbEndpoint("127.0.0.1", port, "site", "site-pw", "site")
        wait_for_database(endpoint)
        yield name, endpoint
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


def _globals(endpoint: DbEndpoint) -> tuple[int, int, int]:
    conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user, password=endpoint.password)
    try:
        with conn.cursor() as cur:
            cur.execute(READ)
            flush, pool, redo = cur.fetchone()
            return int(flush), int(pool), int(redo)
    finally:
        conn.close()


def test_raised_for_the_load_then_set_back(preview_db) -> None:
    name, endpoint = preview_db
    own = _globals(endpoint)
    assert own[0] == 1 and own[1] < GiB and own[2] < GiB  # the image's defaults
    with bulk_load(endpoint, in_container(DockerEngine(), name, what="tune"), "root-pw", 2 * GiB):
        assert _globals(endpoint) == (0, GiB, own[2])  # the redo log keeps its size
    assert _globals(endpoint) == own


def test_a_server_that_refuses_loads_with_its_own(preview_db, caplog) -> None:
    name, endpoint = preview_db
    own = _globals(endpoint)

    def refused(argv: list[str], stdin: bytes) -> None:
        raise PreviewError("access denied")

    with caplog.at_level(logging.INFO, logger="clonekit.db.target"):
        with bulk_load(endpoint, refused, "root-pw", 2 * GiB):
            assert _globals(endpoint) == own
    assert "load settings not applied" in caplog.text and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert _globals(endpoint) == own
