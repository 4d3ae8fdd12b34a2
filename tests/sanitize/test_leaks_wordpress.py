"""`clonekit verify --leaks` on the WordPress production (ckprod, read only): a strict snapshot with
the wordpress preset holds none of the values the seed planted, anywhere (rows, uploads, container
configuration, manifest); the same values planted in the file list are found."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from support import run_cli as run

ROOT = Path(__file__).resolve().parents[2]
PERSONAL_KEYS = ("emails", "phones", "full_names", "ips", "addresses")


def test_wordpress_snapshot_leaks_no_seeded_value(ckprod, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    name = f"leaks{uuid.uuid4().hex[:6]}"
    (tmp_path / "clonekit.yml").write_text((ROOT / "demo" / "clonekit.yml").read_text().replace("project: demo", f"project: {name}"))
    for key, value in ckprod.secrets.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CLONEKIT_SECRET", "leaks-secret-" + name)
    config = str(tmp_path / "clonekit.yml")
    code, out, err = run(["-c", config, "--json", "snapshot", "prod"], capsys)  # strict: true in the demo config
    assert code == 0, err

    values = [v for key in PERSONAL_KEYS for v in ckprod.seeded[key] if v and len(v) >= 6]
    assert len(values) > 500
    known = tmp_path / "seeded.txt"
    known.write_text("\n".join(values) + "\n")
    code, out, err = run(["-c", config, "--json", "verify", "latest", "--leaks", str(known)], capsys)
    report = json.loads(out)["leaks"]
    assert code == 0, report["leaks"][:10]
    assert report["ok"] and report["values"] == len(values)
    assert report["searched"]["rows"] > 1000 and report["searched"]["files"] == ckprod.seeded["counts"]["upload_files"]

    # the harness does find what is there: a post title, an upload's file name and content, the compose project
    upload = next(p for p in sorted(ckprod.uploads.rglob("*")) if p.is_file() and p.stat().st_size > 0)
    title = ckprod.query("SELECT post_title FROM wp_posts WHERE post_status = 'publish' AND post_title <> '' LIMIT 1")[0][0]
    planted = tmp_path / "planted.txt"
    planted.write_text("\n".join([*values[:3], title, upload.name, "ckprod"]) + "\n")
    code, out, err = run(["-c", config, "verify", "latest", "--leaks", str(planted)], capsys)
    assert code == 1
    assert "LEAK line 4 of planted.txt: table wp_posts.post_title row" in out
    assert f"LEAK line 5 of planted.txt: file name {ckprod.uploads}: {os.path.relpath(upload, ckprod.uploads)}" in out
    assert "LEAK line 6 of planted.txt: manifest services.compose_project" in out
    assert not any(f"line {n} of" in out for n in (1, 2, 3))
    assert title not in out.replace(str(ckprod.uploads), "")
