"""SshSession against the real loopback sshd (and MariaDB through a tunnel)."""

from __future__ import annotations

import socket
from pathlib import Path

import paramiko
import pymysql
import pytest

from clonekit.config import SshTarget
from clonekit.errors import SourceError, TransientSourceError
from clonekit.retry import stall_timeout
from clonekit.transport.ssh import SshSession, fingerprint_sha256


def _target(ssh_server, **overrides) -> SshTarget:
    values = dict(
        host=ssh_server.host, user=ssh_server.user, port=ssh_server.port,
        known_hosts=ssh_server.known_hosts, key_file=ssh_server.key_file,
    )
    values.update(overrides)
    return SshTarget(**values)


@pytest.fixture
def session(ssh_server):
    with SshSession.connect(_target(ssh_server)) as s:
        yield s


def test_run_returns_stdout_and_quotes_arguments(session):
    out = session.run(["printf", "%s|", "a b", "it's", "$HOME", "x;y"])
    assert out == b"a b|it's|$HOME|x;y|"


def test_run_feeds_stdin(session):
    data = bytes(range(256)) * 5000  # larger than one channel window
    assert session.run(["cat"], stdin=data) == data


def test_run_failure_shows_status_and_stderr(session):
    with pytest.raises(SourceError) as info:
        session.run(["sh", "-c", "echo boom-detail >&2; exit 3"])
    assert "status 3" in str(info.value)
    assert "boom-detail" in str(info.value)


def test_stream_reads_large_output(session):
    with session.stream(["head", "-c", "5000000", "/dev/zero"]) as out:
        total = 0
        while chunk := out.read(65536):
            assert chunk.count(0) == len(chunk)
            total += len(chunk)
    assert total == 5_000_000


def test_stream_early_stop_still_checks_exit(session):
    with session.stream(["sh", "-c", "echo x; exit 0"]) as out:
        assert out.read(1) == b"x"
    with pytest.raises(SourceError, match="status 4"):
        with session.stream(["sh", "-c", "echo y; exit 4"]) as out:
            out.read(1)


def test_sftp(session, tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello")
    sftp = session.sftp()
    assert sftp.stat(str(path)).st_size == 5
    assert session.sftp() is sftp
    channel = sftp.get_channel()
    assert channel is not None and channel.gettimeout() == stall_timeout()  # reads are bounded


def test_forward_to_mariadb(session, mysql_server):
    with session.forward("127.0.0.1", mysql_server.port) as (host, port):
        assert host == "127.0.0.1"
        for _ in range(2):  # two connections through the same listener
            conn = pymysql.connect(host=host, port=port, user=mysql_server.user, password=mysql_server.password)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 40 + 2, REPEAT('z', 300000)")
                    answer, blob = cur.fetchone()
            finally:
                conn.close()
            assert answer == 42 and blob == "z" * 300000
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=2).close()


def test_unknown_host_key_refused_with_fingerprint(ssh_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    line = Path(ssh_server.known_hosts).read_text().split()
    expected = fingerprint_sha256(paramiko.Ed25519Key(data=__import__("base64").b64decode(line[2])))
    with pytest.raises(SourceError) as info:
        SshSession.connect(_target(ssh_server, known_hosts=str(empty)))
    text = str(info.value)
    assert "ssh-ed25519" in text and expected in text
    assert f"[{ssh_server.host}]:{ssh_server.port} ssh-ed25519 {line[2]}" in text
    assert "ssh-keyscan" in text


def test_changed_host_key_refused(ssh_server, tmp_path):
    other = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    if other is None:
        import subprocess

        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
        other = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "k"))
    known = tmp_path / "known_hosts"
    known.write_text(f"[{ssh_server.host}]:{ssh_server.port} ssh-ed25519 {other.get_base64()}\n")
    with pytest.raises(SourceError, match="CHANGED") as info:
        SshSession.connect(_target(ssh_server, known_hosts=str(known)))
    assert fingerprint_sha256(other) in str(info.value)


def test_wrong_key_refused_with_next_step(ssh_server, tmp_path):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "wrong")], check=True)
    with pytest.raises(SourceError) as info:
        SshSession.connect(_target(ssh_server, key_file=str(tmp_path / "wrong")))
    assert not isinstance(info.value, TransientSourceError)
    assert "authentication" in str(info.value) and "authorized_keys" in str(info.value)


def test_connection_refused_is_transient(ssh_server, monkeypatch):
    monkeypatch.setattr("clonekit.retry.MAX_ATTEMPTS", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    with pytest.raises(SourceError, match="gave up after 1 attempt") as info:
        SshSession.connect(_target(ssh_server, port=port))
    assert isinstance(info.value.__cause__, TransientSourceError)  # retried, then final


def test_stream_accepts_listed_statuses_and_reports_them(session):
    with session.stream(["sh", "-c", "echo out; echo warned >&2; exit 1"], ok_status=(0, 1)) as out:
        assert out.read() == b"out\n"
    assert out.exit_status == 1 and out.stderr_tail == "warned"
