"""The store heals (issue 14): a missing or corrupt chunk, or an unreadable manifest, never wedges
later runs. Real files deleted and flipped on a folder store, objects deleted and overwritten on the
real S3 server, through the CLI and its exit codes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from clonekit.cli import main
from clonekit.config import load_config
from clonekit.files import iter_entries
from clonekit.repository import CHUNKS_PREFIX, SNAPSHOTS_PREFIX, Repository

BAD_PREFIX = "bad/"


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


class StoreHands:
    """Raw access to the stored objects, behind clonekit's back (the hostile-but-fair user)."""

    def __init__(self, site: Path, bucket) -> None:  # noqa: ANN001
        self.bucket = bucket
        self.folder = site / ".clonekit" / "store"

    def keys(self, prefix: str) -> list[str]:
        if self.bucket is None:
            base = self.folder
            return sorted(p.relative_to(base).as_posix() for p in (base / prefix).rglob("*") if p.is_file()) if (base / prefix).is_dir() else []
        client = self.bucket.client()
        name, _, root = self.bucket.url[len("s3://") :].partition("/")
        found = client.list_objects_v2(Bucket=name, Prefix=f"{root}/{prefix}").get("Contents", [])
        return sorted(o["Key"][len(root) + 1 :] for o in found)

    def _s3(self) -> tuple:
        name, _, root = self.bucket.url[len("s3://") :].partition("/")
        return self.bucket.client(), name, root

    def read(self, key: str) -> bytes:
        if self.bucket is None:
            return (self.folder / key).read_bytes()
        client, name, root = self._s3()
        return client.get_object(Bucket=name, Key=f"{root}/{key}")["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        if self.bucket is None:
            path = self.folder / key
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                path.chmod(0o644)
            path.write_bytes(data)
            return
        client, name, root = self._s3()
        client.put_object(Bucket=name, Key=f"{root}/{key}", Body=data)

    def delete(self, key: str) -> None:
        if self.bucket is None:
            (self.folder / key).unlink()
            return
        client, name, root = self._s3()
        client.delete_object(Bucket=name, Key=f"{root}/{key}")

    def flip(self, key: str) -> None:
        data = bytearray(self.read(key))
        data[len(data) // 2] ^= 0x01
        self.write(key, bytes(data))


@pytest.fixture(params=["folder", "moto", "rgw"])
def site(request, tmp_path: Path) -> tuple[Path, StoreHands]:
    """A files source with one large file (content-chunked) and many small ones (packed), stored
    in a folder, on moto (a mock of S3) or on Ceph's RADOS Gateway (a real S3 server)."""
    files = tmp_path / "files"
    (files / "thumbs").mkdir(parents=True)
    (files / "big.bin").write_bytes(os.urandom(900_000))
    for i in range(30):
        (files / "thumbs" / f"t{i:02d}.jpg").write_bytes(os.urandom(3000 + i))
    store, bucket = "", None
    if request.param != "folder":
        bucket = request.getfixturevalue(f"{request.param}_bucket")
        store = f"store: {bucket.url}\nstore_options: {{endpoint_url: {bucket.endpoint_url}, region: us-east-1}}\n"
    (tmp_path / "clonekit.yml").write_text(f"project: site\n{store}sources:\n  prod:\n    files: [{files}]\n")
    return tmp_path, StoreHands(tmp_path, bucket)


def assert_verifies(config: str, snap: str, capsys) -> None:
    code, out, err = run(["-c", config, "verify", snap], capsys)
    assert code == 0 and "all good" in out, out + err


def first_snapshot(site: tuple[Path, StoreHands], capsys) -> tuple[Path, str, StoreHands, dict]:
    root, hands = site
    config = str(root / "clonekit.yml")
    return root, config, hands, snapshot(config, capsys)


def snapshot(config: str, capsys) -> dict:
    code, out, err = run(["-c", config, "--json", "snapshot", "prod"], capsys)
    assert code == 0, err
    return json.loads(out)


def chunk_ids(config: str) -> set[str]:
    repo = Repository.open(load_config(config).store, create=False)
    return repo.latest("prod").chunk_ids()


def content_chunk_ids(config: str) -> set[str]:
    """The chunks of the files' contents (not the chunks that hold the list of files)."""
    manifest = Repository.open(load_config(config).store, create=False).latest("prod")
    return {ref["id"] for section in manifest.files for ref in section["content"]["chunks"]}


def tree_chunk_ids(config: str) -> set[str]:
    manifest = Repository.open(load_config(config).store, create=False).latest("prod")
    return {ref["id"] for section in manifest.files for ref in section["tree"]["chunks"]}


def pack_chunk(config: str) -> str:
    """The chunk that holds the packed small files."""
    repo = Repository.open(load_config(config).store, create=False)
    manifest = repo.latest("prod")
    entry = next(e for e in iter_entries(manifest.files[0], repo) if e.get("path", "").startswith("thumbs/"))
    return entry["chunks"][0]["id"]


def store_url(config: str) -> str:
    return Repository.open(load_config(config).store, create=False).url


def key_of(chunk_id: str) -> str:
    return f"{CHUNKS_PREFIX}{chunk_id[:2]}/{chunk_id[2:4]}/{chunk_id}"


def test_a_deleted_chunk_is_stored_again_by_the_next_snapshot(site, capsys) -> None:
    root, config, hands, first = first_snapshot(site, capsys)
    gone = pack_chunk(config)
    hands.delete(key_of(gone))

    second = snapshot(config, capsys)  # was: "not committed: 1 referenced chunk(s) are missing", forever
    assert second["stats"]["new_bytes"] > 0
    assert gone in chunk_ids(config) and key_of(gone) in hands.keys(CHUNKS_PREFIX)
    third = snapshot(config, capsys)
    assert third["stats"]["new_bytes"] == 0  # healed once, then deduplicated again

    assert_verifies(config, second["id"], capsys)
    assert_verifies(config, first["id"], capsys)  # same content: the old one is whole again


def test_a_deleted_list_of_files_is_stored_again_and_every_file_read(site, capsys, caplog) -> None:
    _, config, hands, first = first_snapshot(site, capsys)
    [tree] = tree_chunk_ids(config)
    hands.delete(key_of(tree))
    code, out, _ = run(["-c", config, "verify", first["id"]], capsys)
    assert code == 1 and tree in out
    with caplog.at_level(logging.WARNING, logger="clonekit.files"):
        second = snapshot(config, capsys)
    assert "list of files cannot be read" in caplog.text
    assert second["stats"]["new_bytes"] > 0 and key_of(tree) in hands.keys(CHUNKS_PREFIX)
    assert_verifies(config, second["id"], capsys)
    assert_verifies(config, first["id"], capsys)  # the same list: the old snapshot is whole again


def test_a_deleted_large_file_chunk_is_stored_again(site, capsys) -> None:
    _, config, hands, _ = first_snapshot(site, capsys)
    large = {c for c in content_chunk_ids(config) if c != pack_chunk(config)}
    victim = sorted(large)[0]
    hands.delete(key_of(victim))
    snapshot(config, capsys)
    assert key_of(victim) in hands.keys(CHUNKS_PREFIX)
    assert_verifies(config, "latest", capsys)


def test_a_corrupt_chunk_found_by_verify_is_set_aside_and_replaced(site, capsys) -> None:
    root, config, hands, first = first_snapshot(site, capsys)
    bad = pack_chunk(config)
    hands.flip(key_of(bad))
    flipped = hands.read(key_of(bad))

    code, out, _ = run(["-c", config, "verify", "latest"], capsys)
    assert code == 1 and bad in out and f"{BAD_PREFIX}{bad}" in out
    assert hands.keys(BAD_PREFIX) == [f"{BAD_PREFIX}{bad}"]
    assert hands.read(f"{BAD_PREFIX}{bad}") == flipped  # the evidence is kept, not trusted
    assert key_of(bad) not in hands.keys(CHUNKS_PREFIX)

    second = snapshot(config, capsys)  # was: "0 B new", the corrupt chunk referenced again
    assert second["stats"]["new_bytes"] > 0
    assert hands.read(key_of(bad)) != flipped
    assert hands.keys(BAD_PREFIX) == []  # the good copy is back: the evidence goes
    for snap in (second["id"], first["id"]):
        assert_verifies(config, snap, capsys)


def test_a_chunk_whose_move_was_cut_short_is_not_trusted(site, capsys) -> None:
    """Killed between writing bad/<id> and deleting the chunk (or a store that refuses deletes):
    the corrupt chunk is still in place, and the next snapshot writes a good copy over it."""
    _, config, hands, _ = first_snapshot(site, capsys)
    bad = pack_chunk(config)
    hands.flip(key_of(bad))
    flipped = hands.read(key_of(bad))
    hands.write(f"{BAD_PREFIX}{bad}", flipped)

    assert snapshot(config, capsys)["stats"]["new_bytes"] > 0
    assert hands.read(key_of(bad)) != flipped and hands.keys(BAD_PREFIX) == []
    assert_verifies(config, "latest", capsys)


def test_a_set_aside_chunk_the_source_no_longer_has_goes_with_its_snapshots(site, capsys) -> None:
    root, config, hands, first = first_snapshot(site, capsys)
    victim = sorted(c for c in content_chunk_ids(config) if c != pack_chunk(config))[0]
    hands.flip(key_of(victim))
    assert run(["-c", config, "verify", "latest"], capsys)[0] == 1
    (root / "files" / "big.bin").unlink()  # the only copy of that data was the corrupt chunk
    snapshot(config, capsys)
    assert hands.keys(BAD_PREFIX) == [f"{BAD_PREFIX}{victim}"]  # kept while a snapshot needs it
    code, out, _ = run(["-c", config, "verify", first["id"]], capsys)
    assert code == 1 and f"is missing from the store {store_url(config)} (a corrupt copy was set aside as {BAD_PREFIX}{victim})" in out

    (root / "clonekit.yml").write_text((root / "clonekit.yml").read_text() + "retention: {keep_last: 1, grace: 0s}\n")
    code, out, err = run(["-c", config, "prune"], capsys)
    assert code == 0 and f"removed snapshot {first['id']}" in out, out + err
    assert hands.keys(BAD_PREFIX) == []


def test_a_corrupt_chunk_found_by_any_read_is_set_aside(site, capsys) -> None:
    """Not only verify: a restore (any read through the repository) sets a bad chunk aside too."""
    _, config, hands, _ = first_snapshot(site, capsys)
    victim = sorted(c for c in content_chunk_ids(config) if c != pack_chunk(config))[0]
    hands.write(key_of(victim), b"CK\x01\x01 truncated")
    repo = Repository.open(load_config(config).store, create=False)
    from clonekit.errors import IntegrityError

    with pytest.raises(IntegrityError) as failure:
        list(repo.iter_chunks([victim]))
    assert victim in failure.value.message and BAD_PREFIX in str(failure.value)
    assert hands.keys(BAD_PREFIX) == [f"{BAD_PREFIX}{victim}"]
    snapshot(config, capsys)
    assert_verifies(config, "latest", capsys)


def test_an_unreadable_manifest_is_named_and_the_rest_still_works(site, capsys, webhook_server, monkeypatch) -> None:
    root, config, hands, first = first_snapshot(site, capsys)
    before_second = set(hands.keys(CHUNKS_PREFIX))
    (root / "files" / "new.txt").write_text("only in the second snapshot\n")
    second = snapshot(config, capsys)
    only_second = set(hands.keys(CHUNKS_PREFIX)) - before_second
    assert only_second
    broken_key = f"{SNAPSHOTS_PREFIX}{second['id']}.json"
    hands.write(broken_key, b"not a manifest")

    code, out, err = run(["-c", config, "--json", "snapshots"], capsys)
    assert code == 1
    assert [s["id"] for s in json.loads(out)] == [first["id"]]
    assert second["id"] in err and broken_key in err and "Traceback" not in err

    code, out, err = run(["-c", config, "snapshots", "prod"], capsys)
    assert code == 1 and first["id"] in out and broken_key in err

    (root / "files" / "new.txt").unlink()
    third = snapshot(config, capsys)  # the newest manifest is broken: passed over, not a wedge
    assert third["stats"]["new_bytes"] == 0

    # keep_last 1 keeps the third; the chunk only the unreadable second references must survive.
    url, received = webhook_server
    monkeypatch.setenv("CK_TEST_HOOK", url)
    (root / "clonekit.yml").write_text(
        (root / "clonekit.yml").read_text() + "retention: {keep_last: 1, grace: 0s}\nnotify: {webhook_env: CK_TEST_HOOK}\n"
    )
    before = set(hands.keys(CHUNKS_PREFIX))
    code, out, err = run(["-c", config, "prune"], capsys)
    assert code == 1
    assert f"UNREADABLE snapshot {second['id']} ({broken_key})" in out
    assert f"removed snapshot {first['id']}" in out  # retention still applies to the readable ones
    assert set(hands.keys(CHUNKS_PREFIX)) == before  # ... but no chunk is deleted
    assert [m["body"]["text"] for m in received if broken_key in m["body"]["text"]]  # cron: someone hears of it

    hands.delete(broken_key)  # the user's fix (docs/operations.md)
    code, out, err = run(["-c", config, "prune"], capsys)
    assert code == 0, out + err
    assert not only_second & set(hands.keys(CHUNKS_PREFIX))  # now unreferenced: deleted
    assert_verifies(config, "latest", capsys)


def test_database_chunks_heal_and_the_restore_is_exact(tmp_path: Path, capsys, mysql_db, mysql_target_db, monkeypatch) -> None:
    """A table chunk deleted, then another flipped, on a folder store: the next snapshots store
    them again and a real restore into MariaDB gives back every row."""
    mysql_db.execute(
        "CREATE TABLE node (id INT PRIMARY KEY, body TEXT)",
        "INSERT INTO node SELECT seq, REPEAT(CONCAT('row ', seq, ' '), 40) FROM seq_1_to_3000",
    )
    server = mysql_db.server
    (tmp_path / "clonekit.yml").write_text(
        "project: site\nsources:\n  prod:\n"
        f"    database: {{host: 127.0.0.1, port: {server.port}, name: {mysql_db.name}, user: {server.user}, password_env: CK_DB_PW}}\n"
        "sanitize: {secret_env: CK_SECRET, preset: none}\n"
    )
    monkeypatch.setenv("CK_DB_PW", server.password)
    monkeypatch.setenv("CK_SECRET", "s3cret")
    _, config, hands, _ = first_snapshot((tmp_path, StoreHands(tmp_path, None)), capsys)
    ids = sorted(chunk_ids(config))
    hands.delete(key_of(ids[0]))
    assert snapshot(config, capsys)["stats"]["new_bytes"] > 0
    assert_verifies(config, "latest", capsys)

    from clonekit.db import DbEndpoint, restore_database
    from clonekit.errors import IntegrityError

    hands.flip(key_of(ids[-1]))
    target = DbEndpoint(server.host, server.port, server.user, server.password, mysql_target_db.name)
    repo = Repository.open(load_config(config).store, create=False)
    with pytest.raises(IntegrityError):  # a real restore finds it: set aside, like verify would
        restore_database(repo, repo.resolve("prod@latest").database, target)
    assert hands.keys(BAD_PREFIX) == [f"{BAD_PREFIX}{ids[-1]}"]
    mysql_target_db.execute("DROP TABLE IF EXISTS node")
    assert snapshot(config, capsys)["stats"]["new_bytes"] > 0

    repo = Repository.open(load_config(config).store, create=False)
    restore_database(repo, repo.resolve("prod@latest").database, target)
    sql = "SELECT COUNT(*), SUM(CRC32(body)) FROM node"
    assert mysql_target_db.query(sql) == mysql_db.query(sql)


def test_a_deleted_chunk_heals_when_files_come_over_ssh(tmp_path: Path, capsys, ssh_server) -> None:
    files = tmp_path / "remote-files"
    files.mkdir()
    for i in range(10):
        (files / f"f{i}.txt").write_bytes(os.urandom(2000))
    (tmp_path / "clonekit.yml").write_text(
        "project: site\nsources:\n  prod:\n"
        f"    ssh: {{host: {ssh_server.host}, port: {ssh_server.port}, user: {ssh_server.user},\n"
        f"           key_file: {ssh_server.key_file}, known_hosts: {ssh_server.known_hosts}}}\n"
        f"    files: [{files}]\n"
    )
    _, config, hands, _ = first_snapshot((tmp_path, StoreHands(tmp_path, None)), capsys)
    [pack] = content_chunk_ids(config)
    hands.delete(key_of(pack))
    assert snapshot(config, capsys)["stats"]["new_bytes"] > 0
    assert_verifies(config, "latest", capsys)
