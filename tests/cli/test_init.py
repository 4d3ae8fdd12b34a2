"""`clonekit init` writes a config that loads, filled from the compose project in the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from clonekit.cli import main
from clonekit.config import load_config

COMPOSE = """
name: news
services:
  db:
    image: mariadb:10.11
    environment:
      MARIADB_DATABASE: wordpress
      MARIADB_USER: wp
    ports: ["127.0.0.1:33306:3306"]
  app:
    image: wordpress:6.1-apache
    environment: [WORDPRESS_DB_HOST=db]
    volumes:
      - ./uploads:/var/www/html/wp-content/uploads
"""


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def test_init_detects_compose_wordpress(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "compose.yml").write_text(COMPOSE)
    (tmp_path / "uploads").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["init"], capsys)
    assert code == 0, err
    config = load_config(tmp_path / "clonekit.yml")
    assert config.sanitize.preset == "wordpress" and config.sanitize.strict
    prod = config.sources["prod"]
    assert prod.database is not None
    assert (prod.database.name, prod.database.user, prod.database.port) == ("wordpress", "wp", 33306)
    assert prod.containers is not None and prod.containers.compose_project == "news"
    assert prod.files[0].path == str(tmp_path / "uploads")
    assert config.previews.files[str(tmp_path / "uploads")].path == "/var/www/html/wp-content/uploads"
    assert config.previews.database_service == "db"
    assert "wrote" in out


def test_init_refuses_to_overwrite(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["init", "--project", "site"], capsys)[0] == 0
    code, _, err = run(["init"], capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert run(["init", "--force", "--project", "site"], capsys)[0] == 0
    assert load_config(tmp_path / "clonekit.yml").project == "site"
