"""Upload and download N MB of snapshot chunks to a loopback S3 server, side by side with awscli.

    python3 -m benchmarks.store_bench --size-mb 256                 # moto (a mock of S3)
    python3 -m benchmarks.store_bench --size-mb 256 --server rgw    # Ceph's RADOS Gateway (a real one)

The same bytes (1 MiB chunks, as clonekit's chunkers cut them; half random, half repetitive
like table rows) go up with clonekit's ChunkWriter and with `aws s3 cp --recursive`, then come
back down with Repository.iter_chunks and `aws s3 cp --recursive`. Prints the time ratios
(below 1.0: clonekit is faster) and peak RSS. Every object it creates is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import boto3

from clonekit.config import StoreConfig
from clonekit.repository import Repository

from .common import Timing, report, time_command, time_function

CHUNK_BYTES = 1 << 20
DEFAULT_ENDPOINT = "http://127.0.0.1:5055"


def _service(name: str, default: str | None = None) -> str | None:
    """A CLONEKIT_TEST_* setting: from the environment, else from services.env (`make services`)."""
    if name in os.environ:
        return os.environ[name]
    env_file = Path(os.environ.get("CLONEKIT_SERVICES_DIR", "/var/tmp/clonekit-services")) / "services.env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if line.startswith(f"{name}="):
                return line.split("=", 1)[1].strip()
    return default


def _endpoint() -> str:
    return _service("CLONEKIT_TEST_S3_ENDPOINT", DEFAULT_ENDPOINT) or DEFAULT_ENDPOINT


def _rgw_endpoint() -> str:
    """The RADOS Gateway's endpoint; its test user's keys go into the environment (the AWS chain)."""
    endpoint, access, secret = (_service(f"CLONEKIT_TEST_RGW_{n}") for n in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY"))
    if not (endpoint and access and secret):
        raise SystemExit("the RADOS Gateway is not in services.env: run `make services`")
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = access, secret
    return endpoint


def make_chunks(folder: Path, size_mb: int, seed: int = 1, incompressible: bool = False) -> list[Path]:
    """size_mb files of 1 MiB: 512 KiB random + 512 KiB of repeated row-like text (or all random)."""
    import random

    rng = random.Random(seed)
    rows = [f"({i},'node-{i}','published',{rng.randrange(10**9)},'lorem ipsum dolor sit amet')\n".encode() for i in range(2000)]
    paths = []
    for n in range(size_mb):
        text = b"" if incompressible else b"".join(rng.choice(rows) for _ in range(8000))[: CHUNK_BYTES // 2]
        data = os.urandom(CHUNK_BYTES - len(text)) + text
        path = folder / f"chunk-{n:06d}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _empty_prefix(client, bucket: str, prefix: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def _median(timings: list[Timing]) -> Timing:
    return sorted(timings, key=lambda t: t.seconds)[len(timings) // 2]


def run(size_mb: int, workers: int, endpoint: str, repeat: int = 3, *, encrypt: bool = False, incompressible: bool = False,
        keep_temp: bool = False) -> list[str]:
    """Alternate awscli and clonekit rounds ``repeat`` times (the machine is shared: medians)."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"ck-bench-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    work = Path(tempfile.mkdtemp(prefix="ck-store-bench-"))
    lines: list[str] = []
    timings: dict[str, list[Timing]] = {"aws_up": [], "aws_down": [], "ours_up": [], "ours_down": []}
    try:
        src = work / "src"
        src.mkdir()
        paths = make_chunks(src, size_mb, incompressible=incompressible)
        print(f"data: {size_mb} MiB in {len(paths)} chunks of 1 MiB; workers {workers}; endpoint {endpoint}; "
              f"{repeat} alternating rounds, medians{'; AES-256-GCM on' if encrypt else ''}"
              f"{'; incompressible data' if incompressible else ''}", flush=True)
        aws = ["aws", "--endpoint-url", endpoint, "s3", "cp", "--recursive", "--only-show-errors", "--no-progress"]
        key_env = None
        if encrypt:
            key_env = "CLONEKIT_BENCH_STORE_KEY"
            os.environ[key_env] = os.urandom(32).hex()
        config = StoreConfig(
            url=f"s3://{bucket}/clonekit", endpoint_url=endpoint, region="us-east-1", upload_workers=workers,
            encryption_key_env=key_env,
        )
        stored = 0

        for _ in range(repeat):
            # awscli round; the server holds one copy at a time, so both tools meet the same conditions
            timings["aws_up"].append(time_command("aws s3 cp (upload)", [*aws, str(src), f"s3://{bucket}/aws/"]))
            aws_dst = work / "aws-down"
            timings["aws_down"].append(time_command("aws s3 cp (download)", [*aws, f"s3://{bucket}/aws/", str(aws_dst)]))
            shutil.rmtree(aws_dst)
            _empty_prefix(client, bucket, "")

            # clonekit round, from a fresh store
            repo = Repository.open(config)

            def upload(repo: Repository = repo) -> tuple[list[str], int]:
                with repo.writer(workers=workers, max_pending_bytes=64 << 20) as writer:
                    ids = [writer.put(p.read_bytes()).id for p in paths]
                return ids, writer.stats.new_stored_bytes

            up = time_function("clonekit upload", upload)
            timings["ours_up"].append(up)
            ids, stored = up.result
            ours_dst = work / "ck-down"
            ours_dst.mkdir()

            def download(ids: list[str] = ids, dst: Path = ours_dst) -> int:
                total = 0
                for n, data in enumerate(Repository.open(config, create=False).iter_chunks(ids, workers=workers)):
                    (dst / f"chunk-{n:06d}").write_bytes(data)
                    total += len(data)
                return total

            down = time_function("clonekit download", download)
            assert down.result == size_mb * CHUNK_BYTES
            timings["ours_down"].append(down)
            shutil.rmtree(ours_dst)

            def dedup_again() -> int:
                with Repository.open(config).writer(workers=workers) as writer:
                    for p in paths:
                        writer.put(p.read_bytes())
                return writer.stats.new_chunks

            again = time_function("clonekit re-upload", dedup_again)
            _empty_prefix(client, bucket, "")

        lines.append(report(f"upload {size_mb} MiB", _median(timings["ours_up"]), _median(timings["aws_up"])))
        lines.append(report(f"download {size_mb} MiB", _median(timings["ours_down"]), _median(timings["aws_down"])))
        for key, label in (("ours_up", "clonekit upload"), ("aws_up", "aws upload"), ("ours_down", "clonekit download"), ("aws_down", "aws download")):
            print(f"  {label} rounds: " + ", ".join(f"{t.seconds:.2f}" for t in timings[key]) + " s", flush=True)
        summary = (
            f"clonekit stored {stored / 2**20:.0f} MiB (zstd-3) for {size_mb} MiB; "
            f"re-upload of the same data (dedup): {again.seconds:.2f} s, {again.result} new chunks"
        )
        print(summary, flush=True)
        lines.append(summary)
    finally:
        _empty_prefix(client, bucket, "")
        client.delete_bucket(Bucket=bucket)
        if not keep_temp:
            shutil.rmtree(work, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--encrypt", action="store_true", help="client-side AES-256-GCM on (a random key)")
    parser.add_argument("--incompressible", action="store_true", help="random bytes only (the worst case for zstd)")
    parser.add_argument("--server", choices=["moto", "rgw"], default="moto",
                        help="which of the test services' S3 servers: moto (a mock) or Ceph's RADOS Gateway")
    parser.add_argument("--endpoint", default=None, help="another S3 endpoint (credentials from the AWS chain)")
    args = parser.parse_args()
    endpoint = args.endpoint or (_rgw_endpoint() if args.server == "rgw" else _endpoint())
    run(args.size_mb, args.workers, endpoint, repeat=args.repeat, encrypt=args.encrypt,
        incompressible=args.incompressible)


if __name__ == "__main__":
    main()
