"""A stalled S3 endpoint (accepts connections, never answers) ends a run with a clear failure.

The CLI runs as a real process against the fault proxy in ``stall`` mode in front of the S3
server, with a small configured deadline: it must end by itself, exit 1, log its retries as they
happen and name the endpoint. (The subprocess timeout only keeps a broken build from hanging the
suite; the test asserts the outcome, never a duration.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clonekit import retry
from clonekit.errors import StoreError, TransientStoreError
from clonekit.repository import Repository

from .conftest import s3_config
from .faultproxy import FaultProxy

GUARD_SECONDS = 300  # far beyond the configured deadline; hitting it fails the test


def _project(tmp_path: Path, endpoint_url: str, bucket_url: str, stall: str | None) -> Path:
    files = tmp_path / "files"
    files.mkdir()
    (files / "index.html").write_text("hello\n")
    options = f"endpoint_url: {endpoint_url}, region: us-east-1"
    if stall:
        options += f", stall_timeout: {stall}"
    config = tmp_path / "clonekit.yml"
    config.write_text(f"project: site\nstore: {bucket_url}\nstore_options: {{{options}}}\n"
                      f"sources:\n  prod:\n    files: [{files}]\n")
    return config


@pytest.mark.parametrize("configured_by", ["store_options", "environment"])
def test_stalled_endpoint_ends_the_snapshot_with_a_clear_failure(s3_bucket, tmp_path, configured_by):
    with FaultProxy(s3_bucket.endpoint_url, failure_rate=1.0, modes=("stall",)) as proxy:
        config = _project(tmp_path, proxy.endpoint_url, s3_bucket.url, "2s" if configured_by == "store_options" else None)
        env = {**os.environ, "CLONEKIT_RETRY_FIRST_WAIT": "0.01", "CLONEKIT_RETRY_MAX_WAIT": "0.1"}
        if configured_by == "environment":
            env["CLONEKIT_STALL_TIMEOUT"] = "2"
        done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "snapshot", "prod"],
                              capture_output=True, text=True, env=env, timeout=GUARD_SECONDS)
        stalled = proxy.counts["stall"]
    assert done.returncode == 1, done.stderr
    err = done.stderr
    assert proxy.endpoint_url in err  # the message names the endpoint
    assert "gave up after" in err and "CLONEKIT_STALL_TIMEOUT" in err
    assert "retry 1/" in err  # the retry was said as it happened, at the default log level
    assert "Traceback" not in err
    assert stalled >= 2  # it really waited on the stalled endpoint, and tried again


def test_an_endpoint_that_stalls_mid_snapshot_ends_it_in_one_round(s3_bucket, tmp_path):
    """Uploads under way when the endpoint stalls: each gives up once, queued ones never start, the
    lock is released with a single try: no second round of waiting."""
    with FaultProxy(s3_bucket.endpoint_url, failure_rate=0.0, modes=("stall",)) as proxy:
        config = _project(tmp_path, proxy.endpoint_url, s3_bucket.url, "2s")
        config.write_text(config.read_text().replace("region: us-east-1", "region: us-east-1, upload_workers: 2"))
        (tmp_path / "files" / "big.bin").write_bytes(os.urandom(24 << 20))  # many chunks to upload
        started = threading.Event()

        def stall_when_uploads_start() -> None:
            while not started.is_set():
                if proxy.counts["PUT chunks"] > 0:
                    proxy.failure_rate = 1.0
                    return
                started.wait(0.005)

        watcher = threading.Thread(target=stall_when_uploads_start, daemon=True)
        watcher.start()
        env = {**os.environ, "CLONEKIT_RETRY_FIRST_WAIT": "0.01", "CLONEKIT_RETRY_MAX_WAIT": "0.1"}
        try:
            done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "snapshot", "prod"],
                                  capture_output=True, text=True, env=env, timeout=GUARD_SECONDS)
        finally:
            started.set()
            watcher.join()
        stalled = proxy.counts["stall"]
    assert done.returncode == 1, done.stderr
    assert "S3 slow" in done.stderr and "chunks/" in done.stderr and "gave up after" in done.stderr
    # 2 upload workers x 2 attempts, plus one try to remove the lock (and a PUT that raced the switch)
    assert 2 <= stalled <= 2 * 2 + 2, stalled


def test_a_transient_error_becomes_final_when_the_deadline_passes(s3_bucket, monkeypatch, caplog):
    """Through the API: the last error is a plain StoreError (no outer retry starts a new round)."""
    monkeypatch.setattr(retry, "STALL_TIMEOUT_SECONDS", 1.0)
    with FaultProxy(s3_bucket.endpoint_url, failure_rate=1.0, modes=("stall",)) as proxy:
        config = s3_config(s3_bucket)
        with pytest.raises(StoreError, match="gave up after") as exc:
            Repository.open(config.__class__(**{**config.__dict__, "endpoint_url": proxy.endpoint_url}))
    assert not isinstance(exc.value, TransientStoreError)
    assert proxy.endpoint_url in str(exc.value)
    assert any("retry 1/" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
