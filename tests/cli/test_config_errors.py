"""Bad configuration: one clear message naming the file, the key and what was expected; exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clonekit.cli import main
from clonekit.config import load_config, parse_duration

GOOD = """
project: news
sources:
  prod:
    database: {engine: mariadb, name: drupal, user: ro, password_env: PROD_DB_PASSWORD}
    files:
      - path: /srv/news/files
        exclude: [css/*, js/*]
sanitize: {preset: drupal, secret_env: CLONEKIT_SECRET, strict: true}
previews:
  url: "http://{name}.{project}.localhost:{port}"
  env: {DB_PASSWORD: "{db.password}", SMTP_HOST: ""}
  ttl: 14d
retention: {keep_last: 7, keep_daily: 14}
"""


def run_cli(tmp_path: Path, text: str, *args: str, capsys) -> tuple[int, str]:
    config = tmp_path / "clonekit.yml"
    config.write_text(textwrap.dedent(text))
    with pytest.raises(SystemExit) as exit_info:
        main(["-c", str(config), *(args or ("snapshots",))])
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.err


def test_good_config_loads(tmp_path: Path) -> None:
    config_path = tmp_path / "clonekit.yml"
    config_path.write_text(GOOD)
    config = load_config(config_path)
    assert config.project == "news"
    assert config.sources["prod"].database.password_env == "PROD_DB_PASSWORD"
    assert config.sources["prod"].files[0].exclude == ("css/*", "js/*")
    assert config.store.url == str(tmp_path / ".clonekit" / "store")
    assert config.previews.ttl_seconds == 14 * 86400


BAD_CONFIGS = {
    "invalid yaml": ("project: news\nsources: [unclosed\n", "not valid YAML"),
    "empty file": ("", "the file is empty"),
    "unknown key with suggestion": (GOOD + "retension: {}\n", "retension: unknown key (did you mean 'retention'?)"),
    "project not a DNS label": (GOOD.replace("project: news", "project: News_Site"), "project: expected a DNS label"),
    "no sources": ("project: news\n", "sources: expected at least one source"),
    "password written in the file": (
        GOOD.replace("password_env: PROD_DB_PASSWORD", "password: hunter2"),
        "sources.prod.database.password: expected no password in this file",
    ),
    "port out of range": (
        GOOD.replace("engine: mariadb,", "engine: mariadb, port: 99999,"),
        "sources.prod.database.port: expected an integer from 1 to 65535, got 99999",
    ),
    "unknown engine": (GOOD.replace("engine: mariadb", "engine: postgres"), "sources.prod.database.engine: expected mariadb or mysql, got 'postgres'"),
    "unknown preset": (GOOD.replace("preset: drupal", "preset: joomla"), "sanitize.preset: expected drupal | wordpress | none, got 'joomla'"),
    "bad duration": (GOOD.replace("ttl: 14d", "ttl: fortnight"), "previews.ttl: expected a duration such as 90s, 30m, 6h, 14d or 2w"),
    "bad store scheme": ("store: ftp://host/x\n" + GOOD, "store: expected a folder path, a file:// URL or an s3://bucket/prefix URL"),
    "bad bucket name": ("store: s3://A_B/x\n" + GOOD, "store: expected s3://BUCKET[/prefix] with a valid bucket name"),
    "unknown url placeholder": (GOOD.replace("{name}.{project}", "{branch}.{project}"), "previews.url: expected placeholders among"),
    "relative files path": (GOOD.replace("/srv/news/files", "srv/files"), "sources.prod.files[0].path: expected an absolute path"),
    "secret env not a variable name": (
        GOOD.replace("secret_env: CLONEKIT_SECRET", "secret_env: 'my secret value'"),
        "sanitize.secret_env: expected the NAME of an environment variable",
    ),
    "wrong type for strict": (GOOD.replace("strict: true", "strict: maybe"), "sanitize.strict: expected true or false, got 'maybe'"),
    "bad env placeholder": (GOOD.replace('"{db.password}"', '"{db.pass}"'), "previews.env.DB_PASSWORD: expected placeholders among"),
    "sanitize rule not a mapping": (
        GOOD.replace("strict: true}", "strict: true, tables: {users: email}}"),
        "sanitize.tables.users",
    ),
    "docker host with an unknown scheme": (
        GOOD.replace("previews:\n", "previews:\n  docker_host: http://previews.example:2375\n"),
        "previews.docker_host: expected unix:///path/docker.sock, ssh://user@host[:port] or tcp://host:port",
    ),
    "docker host ssh with a path": (
        GOOD.replace("previews:\n", "previews:\n  docker_host: ssh://deploy@previews.example/var/run\n"),
        "previews.docker_host: expected ssh://user@host[:port]",
    ),
    "docker tls without tcp": (
        GOOD.replace("previews:\n", "previews:\n  docker_host: ssh://deploy@previews.example\n"
                                    "  docker_tls: {cert_path: /etc/ck}\n"),
        "previews.docker_tls: expected only with a tcp:// previews.docker_host",
    ),
    "docker ssh options on the local engine": (
        GOOD.replace("previews:\n", "previews:\n  docker_ssh: {known_hosts: /etc/ck/known_hosts}\n"),
        "previews.docker_ssh: expected only with an ssh:// previews.docker_host",
    ),
    "unknown preview engine": (
        GOOD.replace("previews:\n", "previews:\n  engine: kubernetes\n"),
        "previews.engine: expected one of compose, swarm, got 'kubernetes'",
    ),
    "swarm without a registry": (
        GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  docker_host: ssh://root@manager\n"
                                    "  nodes: {n1: ssh://root@n1}\n"),
        "previews.registry: expected a value (this key is required)",
    ),
    "swarm registry with a scheme": (
        GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  docker_host: ssh://root@manager\n"
                                    "  registry: http://registry:5000\n  nodes: {n1: ssh://root@n1}\n"),
        "previews.registry: expected a registry every node can pull from, as host[:port][/path]",
    ),
    "swarm on a local engine": (
        GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  registry: registry:5000\n"
                                    "  nodes: {n1: ssh://root@n1}\n"),
        "previews.docker_host: expected the swarm manager's engine as ssh://user@host[:port]",
    ),
    "swarm without nodes": (
        GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  docker_host: ssh://root@manager\n"
                                    "  registry: registry:5000\n"),
        "previews.nodes: expected the swarm nodes previews may run on",
    ),
    "swarm node over tcp": (
        GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  docker_host: ssh://root@manager\n"
                                    "  registry: registry:5000\n  nodes: {n1: tcp://n1:2376}\n"),
        "previews.nodes.n1: expected the node's engine as ssh://user@host[:port], got 'tcp://n1:2376'",
    ),
    "placement on an unknown node": (
        GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  docker_host: ssh://root@manager\n"
                                    "  registry: registry:5000\n  nodes: {n1: ssh://root@n1}\n  placement: n9\n"),
        "previews.placement: expected most-free-memory or one of previews.nodes (n1), got 'n9'",
    ),
    "swarm keys with the compose engine": (
        GOOD.replace("previews:\n", "previews:\n  registry: registry:5000\n"),
        "previews.registry: expected only with previews.engine: swarm",
    ),
    "compression level out of range": (
        "store_options: {compression_level: 22}\n" + GOOD,
        "store_options.compression_level: expected an integer from 1 to 19, got 22",
    ),
    "source without anything to capture": (
        "project: news\nsources:\n  prod: {ssh: deploy@host}\n",
        "sources.prod: expected at least one of database, files or containers",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exit_2_with_precise_message(tmp_path: Path, capsys, case: str) -> None:
    text, expected = BAD_CONFIGS[case]
    code, err = run_cli(tmp_path, text, capsys=capsys)
    assert code == 2, err
    assert expected in err
    assert str(tmp_path / "clonekit.yml") in err  # names the file
    assert "Traceback" not in err


def test_every_problem_is_reported_at_once(tmp_path: Path, capsys) -> None:
    text = GOOD.replace("engine: mariadb", "engine: oracle").replace("ttl: 14d", "ttl: soon").replace("preset: drupal", "preset: x")
    code, err = run_cli(tmp_path, text, capsys=capsys)
    assert code == 2
    assert "3 problems" in err
    for key in ("sources.prod.database.engine", "previews.ttl", "sanitize.preset"):
        assert key in err


def test_remote_docker_hosts_parse(tmp_path: Path) -> None:
    path = tmp_path / "clonekit.yml"
    path.write_text(GOOD.replace("previews:\n", "previews:\n  docker_host: ssh://deploy@previews.example:2222\n"
                                              "  docker_ssh: {key_file: ~/.ssh/previews, known_hosts: /etc/ck/known_hosts}\n"))
    ssh = load_config(path).previews.docker_ssh
    assert ssh is not None and (ssh.user, ssh.host, ssh.port) == ("deploy", "previews.example", 2222)
    assert (ssh.key_file, ssh.known_hosts) == ("~/.ssh/previews", "/etc/ck/known_hosts")
    path.write_text(GOOD.replace("previews:\n", "previews:\n  docker_host: tcp://previews.example:2376\n"
                                              f"  docker_tls: {{cert_path: {tmp_path}}}\n"))
    previews = load_config(path).previews
    assert previews.docker_tls is not None and previews.docker_tls.verify and previews.docker_ssh is None


def test_swarm_settings_parse(tmp_path: Path) -> None:
    path = tmp_path / "clonekit.yml"
    path.write_text(GOOD.replace("previews:\n", "previews:\n  engine: swarm\n  docker_host: ssh://root@manager:2222\n"
                                              "  registry: registry.example:5000/agency\n"
                                              "  nodes: {n1: ssh://deploy@10.0.0.11, n2: ssh://deploy@10.0.0.12:2200}\n"))
    previews = load_config(path).previews
    assert previews.uses_swarm and previews.registry == "registry.example:5000/agency"
    assert dict(previews.nodes) == {"n1": "ssh://deploy@10.0.0.11", "n2": "ssh://deploy@10.0.0.12:2200"}
    assert previews.placement == "most-free-memory"
    path.write_text(GOOD)
    assert load_config(path).previews.engine == "compose" and not load_config(path).previews.uses_swarm


def test_tcp_tls_engine_needs_its_certificates(tmp_path: Path, capsys) -> None:
    """The TLS files are checked before anything is done; with them, the CLI gets the TLS flags."""
    from clonekit.config import DockerTls
    from clonekit.errors import ConfigError
    from clonekit.runtime.docker import DockerEngine

    with pytest.raises(ConfigError, match="ca.pem"):
        DockerEngine("tcp://previews.example:2376", tls=DockerTls(str(tmp_path)))
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_text("test\n")
    argv = DockerEngine("tcp://previews.example:2376", tls=DockerTls(str(tmp_path))).base_argv
    assert "--tlsverify" in argv and str(tmp_path / "key.pem") in argv and "tcp://previews.example:2376" in argv
    text = GOOD.replace("previews:\n", "previews:\n  docker_host: tcp://previews.example:2376\n"
                                       f"  docker_tls: {{cert_path: {tmp_path / 'missing'}}}\n")
    code, err = run_cli(tmp_path, text, "list", capsys=capsys)
    assert code == 2 and "previews.docker_tls.cert_path" in err and "Traceback" not in err


def test_missing_config_file_exit_2(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["-c", str(tmp_path / "nope.yml"), "snapshots"])
    assert exit_info.value.code == 2
    assert "no such file" in capsys.readouterr().err


def test_unknown_source_exit_2(tmp_path: Path, capsys) -> None:
    code, err = run_cli(tmp_path, GOOD, "snapshots", "staging", capsys=capsys)
    assert code == 2
    assert "no source named 'staging' (sources: prod)" in err


@pytest.mark.parametrize("name", ["Feature_X", "-x", "a" * 64, "x.y"])
def test_preview_names_are_dns_labels(tmp_path: Path, capsys, name: str) -> None:
    code, err = run_cli(tmp_path, GOOD, "restore", "latest", "--as", name, capsys=capsys)
    assert code == 2
    assert "invalid preview name" in err


def test_json_error_document(tmp_path: Path, capsys) -> None:
    config = tmp_path / "clonekit.yml"
    config.write_text("project: Bad!\nsources: {}\n")
    with pytest.raises(SystemExit):
        main(["--json", "-c", str(config), "list"])
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["exit_code"] == 2
    assert doc["error"]["type"] == "ConfigError"


def test_no_traceback_from_the_real_command(tmp_path: Path) -> None:
    config = tmp_path / "clonekit.yml"
    config.write_text("project: news\nsources: [oops\n")
    proc = subprocess.run([sys.executable, "-m", "clonekit", "-c", str(config), "list"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "not valid YAML" in proc.stderr


def test_durations() -> None:
    assert parse_duration("6h") == 21600
    assert parse_duration("14d") == 14 * 86400
    assert parse_duration(90) == 90
    for bad in ("6 hours", "-1h", "", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("args", [("snapshots",), ("verify", "latest"), ("prune", "--dry-run"), ("restore", "latest", "--as", "x")])
def test_a_read_command_on_a_mistyped_store_creates_nothing(tmp_path: Path, capsys, args: tuple[str, ...]) -> None:
    mistyped = tmp_path / "stroe"
    code, err = run_cli(tmp_path, GOOD + f"store: {mistyped}\n", *args, capsys=capsys)
    assert code == 2, err
    assert f"no clonekit store at {mistyped}" in err
    assert not mistyped.exists()
