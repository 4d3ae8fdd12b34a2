"""Clear errors for what users get wrong: bucket, credentials, endpoint, URL."""

from __future__ import annotations

import socket

import pytest

from clonekit import retry
from clonekit.config import StoreConfig
from clonekit.errors import ConfigError, StoreError, TransientStoreError
from clonekit.repository import Repository


def test_missing_bucket(s3_endpoint):
    config = StoreConfig(url="s3://ck-no-such-bucket-here/x", endpoint_url=s3_endpoint, region="us-east-1")
    with pytest.raises(ConfigError, match="bucket 'ck-no-such-bucket-here' does not exist"):
        Repository.open(config)


def test_no_credentials(s3_bucket, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never reach for a metadata service
    config = StoreConfig(url=s3_bucket.url, endpoint_url=s3_bucket.endpoint_url, region="us-east-1")
    with pytest.raises(ConfigError, match="no AWS credentials") as exc:
        Repository.open(config)
    assert exc.value.exit_code == 2 and "AWS_ACCESS_KEY_ID" in str(exc.value)


def test_unreachable_endpoint(s3_endpoint, monkeypatch):
    monkeypatch.setattr(retry, "MAX_ATTEMPTS", 2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = StoreConfig(url="s3://ck-bucket/x", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
    with pytest.raises(StoreError, match=f"cannot reach the S3 endpoint .*127.0.0.1:{port}.*gave up after 2 attempts") as exc:
        Repository.open(config)
    assert not isinstance(exc.value, TransientStoreError)  # final: no outer retry starts another round


@pytest.mark.parametrize(
    ("url", "endpoint", "message"),
    [
        ("s3://", None, "names no valid bucket"),
        ("gs://bucket/x", None, "unsupported URL scheme 'gs'"),
        ("s3://bucket/x", "ftp://host", "expected an http"),
    ],
)
def test_bad_store_urls(url, endpoint, message):
    with pytest.raises(ConfigError, match=message):
        Repository.open(StoreConfig(url=url, endpoint_url=endpoint))


def test_tls_failure_is_not_retried(s3_endpoint):
    from clonekit.errors import StoreError

    https = s3_endpoint.replace("http://", "https://")  # the server speaks plain HTTP: the handshake fails
    config = StoreConfig(url="s3://ck-bucket/x", endpoint_url=https, region="us-east-1")
    with pytest.raises(StoreError, match="TLS failed") as exc:
        Repository.open(config)
    assert not isinstance(exc.value, TransientStoreError) and "AWS_CA_BUNDLE" in str(exc.value)


@pytest.mark.parametrize(("which", "code"), [("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId"), ("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch")])
def test_wrong_credentials_on_a_real_server(rgw_bucket, monkeypatch, which, code):
    """moto takes any key; Ceph RGW checks them: a wrong key or secret is one clear, unretried error."""
    from clonekit.errors import StoreError

    monkeypatch.setenv(which, "not-the-right-one")
    config = StoreConfig(url=rgw_bucket.url, endpoint_url=rgw_bucket.endpoint_url, region="us-east-1")
    with pytest.raises(StoreError, match=f"access denied while trying to read config.json \\({code}\\)") as exc:
        Repository.open(config)
    assert not isinstance(exc.value, TransientStoreError) and "credentials" in str(exc.value)
