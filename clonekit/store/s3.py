"""A store in an S3-compatible bucket (AWS, MinIO, Ceph, Scaleway, OVH, R2...).

One boto3 client shared by every thread (boto3 clients are thread-safe), its connection pool
sized to the workers. botocore's own retries are off: retries happen only in RetryingStore,
through clonekit.retry. Credentials come from the standard AWS chain, never from clonekit.yml.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions
import urllib3.exceptions

from ..config import StoreConfig
from ..errors import ConfigError, StoreError, TransientStoreError
from ..retry import stall_timeout
from .base import MissingObjectError, ObjectInfo, check_key

log = logging.getLogger("clonekit.store.s3")
T = TypeVar("T")

MULTIPART_THRESHOLD_BYTES = 64 << 20
MULTIPART_PART_BYTES = 16 << 20
# The largest single PUT S3 accepts (AWS, and RGW's default rgw_max_put_size). put_if_absent
# always uses one conditional PUT: Ceph RGW ignores If-None-Match on CompleteMultipartUpload,
# so a multipart create could overwrite (docs/format.md, "S3 servers").
SINGLE_PUT_MAX_BYTES = 5 << 30
LIST_PAGE_KEYS = 1000
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60  # per request; never more than half the operation's stall deadline (clonekit.retry)

TRANSIENT_CODES = frozenset(
    {
        "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests",
        "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500",
        "502", "504", "BadGateway", "GatewayTimeout", "OperationAborted",
        "ConditionalRequestConflict",  # a concurrent conditional write on the same key: try again
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchUpload", "404", "NotFound"})
CONDITIONAL_UNSUPPORTED_CODES = frozenset({"NotImplemented", "501"})

# Connection-level failures: worth retrying.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,  # EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError...
    botocore.exceptions.HTTPClientError,  # ReadTimeoutError and friends
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError while streaming a body
    ConnectionError,
    TimeoutError,
)


class S3Store:
    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None, region: str | None, path_style: bool, workers: int,
                 stall_seconds: float | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        if endpoint_url:
            self.url += f" at {endpoint_url}"
        self._read_timeout = min(READ_TIMEOUT_SECONDS, stall_timeout(stall_seconds) / 2)
        config = botocore.config.Config(
            region_name=region,
            max_pool_connections=max(10, workers + 4),
            retries={"total_max_attempts": 1},  # retries only through clonekit.retry
            # A request that waits longer is retried, so that the operation gets at least two tries
            # before its deadline: a stalled endpoint ends the run within the stall timeout.
            connect_timeout=min(CONNECT_TIMEOUT_SECONDS, stall_timeout(stall_seconds) / 2),
            read_timeout=self._read_timeout,
            s3={"addressing_style": "path" if path_style else "virtual"},
            tcp_keepalive=True,
            response_checksum_validation="when_required",  # reads are verified by SHA-256 anyway
        )
        try:
            session = boto3.session.Session()
            self._client = session.client("s3", endpoint_url=endpoint_url, config=config)
        except botocore.exceptions.BotoCoreError as exc:
            raise ConfigError(f"store {self.url}: cannot set up the S3 client: {exc}") from exc
        self._conditional_put = True  # cleared when the provider rejects If-None-Match

    @classmethod
    def from_config(cls, config: StoreConfig, *, workers: int | None = None) -> S3Store:
        parsed = urlparse(config.url)
        bucket = parsed.netloc
        if not bucket or len(bucket) < 3:
            raise ConfigError(f"store: {config.url!r} names no valid bucket; expected s3://BUCKET/optional/prefix")
        if config.endpoint_url and not urlparse(config.endpoint_url).scheme.startswith("http"):
            raise ConfigError(f"store_options.endpoint_url: expected an http(s):// URL, got {config.endpoint_url!r}")
        return cls(
            bucket,
            parsed.path,
            endpoint_url=config.endpoint_url,
            region=config.region,
            path_style=config.path_style,
            workers=workers or config.upload_workers,
            stall_seconds=config.stall_timeout,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- operations ------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        full = self._key(key)
        if len(data) > MULTIPART_THRESHOLD_BYTES:
            self._call("write", key, lambda: self._multipart(full, data))
        else:
            self._call("write", key, lambda: self._client.put_object(Bucket=self.bucket, Key=full, Body=data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """One PUT with ``If-None-Match: *``, whatever the size (up to SINGLE_PUT_MAX_BYTES): the
        server decides atomically, so of racing creators exactly one wins. Never multipart:
        servers that ignore the condition on CompleteMultipartUpload (Ceph RGW) would let a
        second creator overwrite the first."""
        full = self._key(key)
        if len(data) > SINGLE_PUT_MAX_BYTES:
            raise StoreError(
                f"cannot create {key} in {self.url}: {len(data)} bytes is more than one S3 PUT takes "
                f"({SINGLE_PUT_MAX_BYTES} bytes), and a multipart upload cannot be created only once"
            )
        if not self._conditional_put:
            # The provider lacks conditional writes: check, then write (racing creators may both write).
            if self.exists(key):
                return False
            self.put(key, data)
            return True
        try:
            self._call(
                "write", key, lambda: self._client.put_object(Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*")
            )
            return True
        except _PreconditionFailed:
            return False
        except _ConditionalUnsupported:
            log.info("%s does not support conditional writes; checking existence first", self.url)
            self._conditional_put = False
            return self.put_if_absent(key, data)

    def get(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            body = response["Body"]
            try:
                # botocore checks the length against Content-Length; a body read to its end
                # returns its connection to the pool (close() would drop the connection).
                return body.read()
            except BaseException:
                body.close()
                raise

        return self._call("read", key, read)

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self._call("check", key, lambda: self._client.head_object(Bucket=self.bucket, Key=full))
            return True
        except MissingObjectError:
            return False

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        full_prefix = root + prefix
        strip = len(root)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix, "MaxKeys": LIST_PAGE_KEYS}
            if token:
                kwargs["ContinuationToken"] = token
            page: dict[str, Any] = self._call("list", prefix or "/", partial(self._client.list_objects_v2, **kwargs))
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"][strip:], int(obj["Size"]), obj["LastModified"].astimezone(UTC))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=full))

    def cleanup(self, older_than: datetime) -> int:
        """Abort multipart uploads under our prefix started before ``older_than`` (killed runs)."""
        root = f"{self.prefix}/" if self.prefix else ""
        aborted = 0
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root}
        while True:
            page: dict[str, Any] = self._call("list uploads", "/", partial(self._client.list_multipart_uploads, **kwargs))
            for upload in page.get("Uploads", []):
                if upload["Initiated"].astimezone(UTC) < older_than:
                    try:
                        self._call(
                            "abort upload", upload["Key"][len(root) :],
                            partial(self._client.abort_multipart_upload, Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]),
                        )
                    except MissingObjectError:
                        continue  # finished or aborted meanwhile
                    aborted += 1
            if not page.get("IsTruncated"):
                return aborted
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")

    def close(self) -> None:
        self._client.close()

    # -- internals -------------------------------------------------------------------------------

    def _multipart(self, full: str, data: bytes) -> None:
        """One object from parts; completed only when every part is in, aborted otherwise."""
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)
        upload_id = upload["UploadId"]
        try:
            parts = []
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), MULTIPART_PART_BYTES), start=1):
                part = self._client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
                    Body=bytes(view[start : start + MULTIPART_PART_BYTES]),
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            done = self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                log.debug("could not abort multipart upload of %s", full)
            raise
        if not done.get("ETag", "").strip('"'):
            # Ceph RGW answers CompleteMultipartUpload with an empty <ETag/>: confirm the whole
            # object is there (HEAD gives its "md5-N" ETag and length) before calling it written.
            head = self._client.head_object(Bucket=self.bucket, Key=full)
            if int(head["ContentLength"]) != len(data) or not head.get("ETag", "").strip('"').endswith(f"-{len(parts)}"):
                raise StoreError(
                    f"multipart upload of {full} in {self.url} completed without an ETag, and the object there "
                    f"is not the one written ({head['ContentLength']} bytes, ETag {head.get('ETag')!r})",
                    hint="another writer may have replaced it; run again",
                )

    def _call(self, verb: str, key: str, fn: Callable[[], T]) -> T:
        """Run one request; translate botocore's exceptions into clonekit's."""
        try:
            return fn()
        except botocore.exceptions.ClientError as exc:
            raise self._client_error(verb, key, exc) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ConfigError(
                f"store {self.url}: no AWS credentials found",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (the standard AWS chain); clonekit.yml never holds them",
            ) from exc
        except botocore.exceptions.SSLError as exc:  # retrying cannot fix a certificate
            raise StoreError(
                f"store {self.url}: TLS failed ({exc})",
                hint="check the endpoint's certificate; a private CA goes in AWS_CA_BUNDLE",
            ) from exc
        except botocore.exceptions.EndpointConnectionError as exc:
            raise TransientStoreError(
                f"cannot reach the S3 endpoint of {self.url} ({exc.kwargs.get('endpoint_url', '')})",
                hint="check store_options.endpoint_url and the network",
            ) from exc
        except botocore.exceptions.ReadTimeoutError as exc:
            raise TransientStoreError(
                f"S3 slow: {self._client.meta.endpoint_url} did not answer within {self._read_timeout:g} s "
                f"(trying to {verb} {key} in {self.url})"
            ) from exc
        except TRANSIENT_EXCEPTIONS as exc:
            raise TransientStoreError(f"cannot {verb} {key} in {self.url}: {type(exc).__name__}: {exc}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StoreError(f"cannot {verb} {key} in {self.url}: {exc}") from exc

    def _client_error(self, verb: str, key: str, exc: botocore.exceptions.ClientError) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code == "PreconditionFailed" or status == 412:
            return _PreconditionFailed(key)
        if code in CONDITIONAL_UNSUPPORTED_CODES and verb == "write":
            return _ConditionalUnsupported(key)
        if code in NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return MissingObjectError(f"{key} is missing from the store {self.url}")
        if code == "NoSuchBucket":
            return ConfigError(f"store {self.url}: the bucket {self.bucket!r} does not exist", hint="create it, or fix the store URL")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden") or status == 403:
            return StoreError(
                f"store {self.url}: access denied while trying to {verb} {key} ({code})",
                hint="check the credentials of the AWS chain and the bucket policy",
            )
        if code == "RequestTimeTooSkewed":
            return StoreError(f"store {self.url}: the server refused the request: this machine's clock is wrong", hint="sync the clock (NTP)")
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientStoreError(f"cannot {verb} {key} in {self.url}: {code or status} (will retry)")
        return StoreError(f"cannot {verb} {key} in {self.url}: {code} {error.get('Message', '')}".strip())


class _PreconditionFailed(StoreError):
    """The object already exists (If-None-Match: *)."""


class _ConditionalUnsupported(StoreError):
    """The provider does not implement If-None-Match on PUT."""
