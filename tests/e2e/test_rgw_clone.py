"""End to end with the store on a real S3 server (Ceph's RADOS Gateway), from the CLI.

`clonekit clone prod --as ...` of the WordPress production with `store: s3://...` on RGW: the
preview renders the site's posts; the bucket holds config.json, one manifest and chunks, no lock
left and no seeded personal value. Two more snapshots, an unreferenced chunk, then `clonekit
prune` with `keep_last: 1` forgets the older snapshots and deletes the orphan on RGW; `verify
latest` still passes. The source is read-only throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from clonekit import Project
from clonekit.config import load_config
from clonekit.repository import Repository, chunk_key

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.xdist_group("ckprod")]

ROOT = Path(__file__).resolve().parents[2]
PERSONAL_KEYS = ("emails", "phones", "full_names", "ips", "addresses")


def _config_text(project: str, bucket) -> str:
    text = (ROOT / "demo" / "clonekit.yml").read_text().replace("project: demo", f"project: {project}")
    text = text.replace(
        "# store: the default, .clonekit/store beside this file",
        f"store: s3://{bucket.bucket}/wp\nstore_options: {{endpoint_url: {bucket.endpoint_url}, region: us-east-1}}",
    )
    head, _, _ = text.partition("retention:")
    assert "store: s3://" in head and head != text
    # grace 0s: nothing writes concurrently here, and a clock-based wait would make the test depend on time
    return head + "retention:\n  keep_last: 1\n  grace: 0s\n"


def _cli(config_path: Path, env: dict[str, str], *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config_path), "--json", *args],
                          capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, f"clonekit {' '.join(args)}: {done.stderr[-3000:]}"
    return json.loads(done.stdout) if done.stdout.strip() else {}


def _keys(bucket, prefix: str) -> list[str]:
    client = bucket.client()
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket.bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    return keys


def test_clone_and_prune_with_the_store_on_rgw(ckprod, rgw_bucket, tmp_path, monkeypatch) -> None:
    project = f"ckrgw{uuid.uuid4().hex[:6]}"
    config_path = tmp_path / "clonekit.yml"
    config_path.write_text(_config_text(project, rgw_bucket))
    env = {**os.environ, **ckprod.secrets, "CLONEKIT_SECRET": "rgw-secret-" + project}  # the RGW keys are in os.environ
    titles = [t for (t,) in ckprod.query(
        "SELECT post_title FROM wp_posts WHERE post_type='post' AND post_status='publish' ORDER BY post_date DESC LIMIT 3")]
    try:
        _cli(config_path, env, "clone", "prod", "--as", "rgw-x")
        api = Project.load(config_path)
        [preview] = api.previews()
        assert preview.name == "rgw-x" and preview.status == "running"
        page = urllib.request.urlopen(preview.url + "/", timeout=30).read().decode()
        for title in titles:
            assert title.replace("'", "&#8217;") in page or title in page
        assert "127.0.0.1:8088" not in page

        # The bucket on RGW: the format's layout, no lock left behind.
        [first_manifest] = _keys(rgw_bucket, "wp/snapshots/")
        chunks = _keys(rgw_bucket, "wp/chunks/")
        assert "wp/config.json" in _keys(rgw_bucket, "wp/config.json") and len(chunks) >= 5
        assert _keys(rgw_bucket, "wp/locks/") == []
        # Nothing personal in the store: every chunk read back from RGW, verified and decompressed.
        for key, value in env.items():  # (restored after the test)
            if key not in os.environ:
                monkeypatch.setenv(key, value)
        repo = Repository.open(load_config(config_path).store, create=False)
        store_text = "\n".join(repo.get_chunk(k.rsplit("/", 1)[-1]).decode("utf-8", "replace") for k in chunks)
        seeded = [v for key in PERSONAL_KEYS for v in ckprod.seeded[key] if v and len(v) >= 6]
        assert len(seeded) > 100
        leaked = [v for v in seeded if v in store_text]
        assert not leaked, f"{len(leaked)} personal values in the store on RGW"

        # Two more snapshots (deduplicated), and a chunk no snapshot references (a killed run's).
        _cli(config_path, env, "snapshot", "prod")
        _cli(config_path, env, "snapshot", "prod")
        manifests = _keys(rgw_bucket, "wp/snapshots/")
        assert len(manifests) == 3 and first_manifest in manifests
        assert len(_keys(rgw_bucket, "wp/chunks/")) < 2 * len(chunks)  # the second and third stored little
        with repo.writer() as writer:
            orphan = writer.put(b"a chunk of a run killed before its manifest " + uuid.uuid4().bytes)
        assert chunk_key(orphan.id) in [k[len("wp/"):] for k in _keys(rgw_bucket, "wp/chunks/")]
        newest = max(manifests)

        report = _cli(config_path, env, "prune")
        assert len(report["forgotten_snapshots"]) == 2 and len(report["kept_snapshots"]) == 1
        assert report["deleted_chunks"] >= 1
        assert _keys(rgw_bucket, "wp/snapshots/") == [newest]
        assert f"wp/{chunk_key(orphan.id)}" not in _keys(rgw_bucket, "wp/chunks/")
        assert _keys(rgw_bucket, "wp/locks/") == []
        verified = _cli(config_path, env, "verify", "latest")
        assert verified["ok"] is True and verified["chunks_checked"] >= 5
        api.destroy("rgw-x")
        assert api.previews() == []
    finally:
        subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config_path), "destroy", "--all", "--yes"],
                       capture_output=True, env=env, timeout=300)
