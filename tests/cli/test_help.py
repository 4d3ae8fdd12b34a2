"""`clonekit --help` lists every command of SPEC.md, each with an example."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from clonekit.cli import cli

SPEC_COMMANDS = ["init", "snapshot", "snapshots", "restore", "clone", "list", "refresh", "destroy", "prune", "scan", "verify"]


def test_help_lists_every_spec_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in SPEC_COMMANDS:
        assert f"  {name} " in result.output
    assert "clonekit serve" in result.output  # the dashboard is in the quick start


@pytest.mark.parametrize("name", SPEC_COMMANDS + ["materialize", "serve", "extend"])
def test_each_command_has_an_example(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"clonekit {name}" in result.output or name == "init"


def test_global_options() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    for option in ("--config", "--json", "--quiet", "--verbose", "--log-file"):
        assert option in result.output
