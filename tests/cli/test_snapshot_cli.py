"""The CLI end to end on a files source, on the folder store and on the real S3 server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clonekit.cli import main


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


@pytest.fixture(params=["folder", "s3"])
def site(request, tmp_path: Path) -> Path:
    files = tmp_path / "files"
    (files / "2026" / "11").mkdir(parents=True)
    (files / "2026" / "11" / "photo.jpg").write_bytes(os.urandom(2_500_000))
    (files / "readme.txt").write_text("hello\n")
    store = ""
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        store = f"store: {bucket.url}\nstore_options: {{endpoint_url: {bucket.endpoint_url}, region: us-east-1}}\n"
    (tmp_path / "clonekit.yml").write_text(f"project: site\n{store}sources:\n  prod:\n    files: [{files}]\n")
    return tmp_path


def test_snapshot_list_verify_dedup(site: Path, capsys) -> None:
    config = str(site / "clonekit.yml")
    code, out, err = run(["-c", config, "--json", "snapshot", "prod"], capsys)
    assert code == 0, err
    first = json.loads(out)
    assert first["stats"]["plain_bytes"] >= 2_500_000 and first["stats"]["new_bytes"] > 2_000_000

    code, out, _ = run(["-c", config, "--json", "snapshot", "prod"], capsys)
    second = json.loads(out)
    assert second["stats"]["new_bytes"] == 0  # nothing changed: nothing stored
    assert second["stats"]["plain_bytes"] == first["stats"]["plain_bytes"]

    code, out, _ = run(["-c", config, "--json", "snapshots", "prod"], capsys)
    assert [s["id"] for s in json.loads(out)] == [first["id"], second["id"]]

    code, out, err = run(["-c", config, "verify", "prod@latest"], capsys)
    assert code == 0 and "all good" in out

    code, _, err = run(["-c", config, "verify", "nope"], capsys)
    assert code == 2 and "nope" in err


def test_verify_names_a_corrupt_chunk(tmp_path: Path, capsys) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "doc.pdf").write_bytes(os.urandom(100_000))
    (tmp_path / "clonekit.yml").write_text(f"project: site\nsources:\n  prod:\n    files: [{files}]\n")
    config = str(tmp_path / "clonekit.yml")
    assert run(["-c", config, "snapshot", "prod"], capsys)[0] == 0
    chunk = next(p for p in (tmp_path / ".clonekit" / "store" / "chunks").rglob("*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.chmod(0o644)
    chunk.write_bytes(bytes(data))
    code, out, _ = run(["-c", config, "verify", "latest"], capsys)
    assert code == 1
    assert chunk.name in out and "BAD" in out


def test_snapshot_over_ssh_then_restore_the_database(tmp_path: Path, capsys, mysql_db, mysql_target_db, ssh_server, monkeypatch) -> None:
    """`ssh:` set: the database is read through a tunnel and the files through the SSH host."""
    mysql_db.execute(
        "CREATE TABLE customers (id INT PRIMARY KEY, email VARCHAR(120), note TEXT)",
        "INSERT INTO customers VALUES (1, 'jane.doe@real-mail.example', 'call 06 12 34 56 78'), (2, NULL, 'x')",
    )
    files = tmp_path / "remote-files"
    files.mkdir()
    (files / "a.txt").write_text("over ssh\n")
    server = mysql_db.server
    config = tmp_path / "clonekit.yml"
    config.write_text(f"""
project: site
sources:
  prod:
    ssh: {{host: {ssh_server.host}, port: {ssh_server.port}, user: {ssh_server.user},
           key_file: {ssh_server.key_file}, known_hosts: {ssh_server.known_hosts}}}
    database: {{host: 127.0.0.1, port: {server.port}, name: {mysql_db.name}, user: {server.user}, password_env: CK_DB_PW}}
    files: [{files}]
sanitize:
  secret_env: CK_SECRET
  tables:
    customers: {{columns: {{email: email, note: scrub}}}}
""")
    monkeypatch.setenv("CK_DB_PW", server.password)
    monkeypatch.setenv("CK_SECRET", "s3cret")
    code, out, err = run(["-c", str(config), "--json", "snapshot", "prod"], capsys)
    assert code == 0, err
    assert json.loads(out)["tables"] == 1 and json.loads(out)["file_trees"] == 1

    from clonekit.config import load_config
    from clonekit.db import DbEndpoint, restore_database
    from clonekit.repository import Repository

    repo = Repository.open(load_config(config).store, create=False)
    manifest = repo.resolve("prod@latest")
    target = DbEndpoint(server.host, server.port, server.user, server.password, mysql_target_db.name)
    restore_database(repo, manifest.database, target)
    rows = mysql_target_db.query("SELECT id, email, note FROM customers ORDER BY id")
    assert rows[0][1] != "jane.doe@real-mail.example" and "@" in rows[0][1]
    assert "06 12 34 56 78" not in rows[0][2] and rows[1] == (2, None, "x")
