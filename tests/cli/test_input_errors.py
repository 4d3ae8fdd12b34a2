"""Input a user can get wrong ends in exit 2 with one message naming it, never `internal error` (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clonekit.cli import main
from clonekit.config import MAX_DURATION_SECONDS, env_number, parse_duration

SOURCE = "project: news\nsources:\n  prod:\n    files: [{files}]\n"


def run(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0), capsys.readouterr().err


def write_config(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "clonekit.yml"
    path.write_bytes(data)
    return str(path)


BAD_FILES = {
    "latin-1 text": ("project: café\n".encode("latin-1"), "line 1: not UTF-8 text (byte 0xe9 at offset 12)"),
    "utf-16 text": ("project: news\n".encode("utf-16"), "not UTF-8 text (byte 0xff at offset 0)"),
    "a NUL byte": (b"project: news\nsources: {}\x00\n", "line 2: not valid YAML: control character 0x00 is not allowed"),
    "a key given twice": (b"project: a\nproject: b\n", "line 2, column 1: not valid YAML: key 'project' is given twice"),
    "a nested key given twice": (
        b"project: a\nsources:\n  prod: {files: [/srv]}\n  prod: {files: [/tmp]}\n",
        "line 4, column 3: not valid YAML: key 'prod' is given twice",
    ),
    "nesting too deep": (b"[" * 20000 + b"]" * 20000, "not valid YAML"),
    "a python tag": (b"project: !!python/object/apply:os.system [id]\n", "could not determine a constructor"),
    "a huge ttl": (b"project: a\nsources:\n  prod: {files: [/srv]}\npreviews: {ttl: 99999999999999999d}\n", "previews.ttl: expected"),
    "a huge grace in seconds": (
        b"project: a\nsources:\n  prod: {files: [/srv]}\nretention: {grace: 99999999999999999999}\n",
        "retention.grace: expected",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_config_file_is_a_config_error(tmp_path: Path, capsys, case: str) -> None:
    data, expected = BAD_FILES[case]
    config = write_config(tmp_path, data)
    code, err = run(["-c", config, "snapshots"], capsys)
    assert code == 2, err
    assert expected in err and config in err
    assert "internal error" not in err and "Traceback" not in err


def test_a_folder_given_as_config_is_a_config_error(tmp_path: Path, capsys) -> None:
    code, err = run(["-c", str(tmp_path), "snapshots"], capsys)
    assert code == 2
    assert f"{tmp_path}: is a folder, not a configuration file" in err


@pytest.mark.parametrize("max_age", ["99999999999999999d", "-5s", "1e9d", "５h", "6 hours", "0x10s"])
def test_a_bad_max_age_is_a_usage_error_in_one_line(tmp_path: Path, capsys, max_age: str) -> None:
    config = write_config(tmp_path, SOURCE.format(files=tmp_path).encode())
    code, err = run(["-c", config, "clone", "prod", "--as", "x", "--max-age", max_age], capsys)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and f"--max-age {max_age!r}" in err
    assert not (tmp_path / ".clonekit").exists()  # refused before any snapshot was taken


def test_durations_are_bounded() -> None:
    assert parse_duration("6h") == 21600 and parse_duration(90) == 90
    assert parse_duration(f"{MAX_DURATION_SECONDS}s") == MAX_DURATION_SECONDS
    for bad in (f"{MAX_DURATION_SECONDS + 1}s", MAX_DURATION_SECONDS + 1, "99999999999999999d", -1, "٣h", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_missing_ssh_key_file_is_a_config_error(tmp_path: Path, capsys, ssh_server) -> None:
    missing = tmp_path / "no-such-key"
    config = write_config(
        tmp_path,
        (
            "project: news\nsources:\n  prod:\n"
            f"    ssh: {{target: {ssh_server.target}, key_file: {missing}, known_hosts: {ssh_server.known_hosts}}}\n"
            "    files: [/srv]\n"
        ).encode(),
    )
    code, err = run(["-c", config, "snapshot", "prod"], capsys)
    assert code == 2, err
    assert f"SSH key file {missing}" in err and "does not exist" in err
    assert "Traceback" not in err
    assert not (tmp_path / ".clonekit").exists()  # refused before the store was created


@pytest.mark.parametrize(("name", "value", "command"), [
    ("CLONEKIT_LOCK_WAIT_SECONDS", "abc", "snapshot"),
    ("CLONEKIT_LOCK_STALE_SECONDS", "1.5", "snapshot"),
    ("CLONEKIT_LOCK_WAIT_SECONDS", "nan", "snapshot"),
    ("CLONEKIT_PREVIEW_LOCK_WAIT", "-1", "list"),
    ("CLONEKIT_STALL_TIMEOUT", "soon", "snapshot"),
    ("CLONEKIT_STALL_TIMEOUT", "0", "snapshot"),
    ("CLONEKIT_RETRY_ATTEMPTS", "2.5", "snapshot"),
])
def test_a_bad_tuning_variable_is_a_config_error(tmp_path: Path, name: str, value: str, command: str) -> None:
    """Read when the module loads, in a fresh process: exit 2 naming the variable, no internal error."""
    config = write_config(tmp_path, SOURCE.format(files=tmp_path).encode())
    done = subprocess.run(
        [sys.executable, "-m", "clonekit", "-c", config, command, *(["prod"] if command == "snapshot" else [])],
        env={**os.environ, name: value}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"environment variable {name}: expected" in done.stderr and repr(value) in done.stderr
    assert "internal error" not in done.stderr


def test_env_number(monkeypatch) -> None:
    monkeypatch.setenv("CK_TEST_N", " 60 ")
    assert env_number("CK_TEST_N", 1) == 60 and env_number("CK_TEST_N", 1.0) == 60.0
    monkeypatch.delenv("CK_TEST_N")
    assert env_number("CK_TEST_N", 7) == 7
