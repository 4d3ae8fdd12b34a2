"""The SSH side of a source's containers.docker_host (pure logic; the real engine test is in
tests/runtime/test_remote_engine.py)."""

from __future__ import annotations

import pytest

from clonekit.config import SshTarget, source_engine_ssh
from clonekit.errors import ConfigError


def test_other_schemes_have_no_ssh_side() -> None:
    assert source_engine_ssh(None, None) is None
    assert source_engine_ssh("unix:///var/run/docker.sock", None) is None
    assert source_engine_ssh("tcp://10.0.0.5:2376", None) is None


def test_the_source_ssh_settings_apply_to_the_same_host_only() -> None:
    own = SshTarget("web1.example", "deploy", 22, "/etc/ck/known_hosts", "/etc/ck/key")
    assert source_engine_ssh("ssh://deploy@web1.example", own) == own
    other = source_engine_ssh("ssh://root@db1.example:2200", own)
    assert other == SshTarget("db1.example", "root", 2200, None, None)  # the user's defaults


def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="containers.docker_host"):
        source_engine_ssh("ssh://a b@", None)
