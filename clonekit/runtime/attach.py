"""Commands attached to the user's terminal inside a preview container (``exec``, ``logs``, ``db``).

The docker client inherits stdin/stdout/stderr, so output streams and interactive programs work;
the exit code of the command is returned as is. Values passed with ``pass_env`` go through the
client's environment (``docker exec -e NAME`` without a value), never through argv.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence

from ..errors import PreviewError
from .docker import DockerEngine


def run_attached(engine: DockerEngine, args: Sequence[str], *, pass_env: Mapping[str, str] | None = None,
                 input: bytes | None = None) -> int:
    """``docker ARGS`` on the user's terminal; returns its exit code."""
    env = {**engine.env, **(pass_env or {})}
    try:
        if input is not None:
            return subprocess.run([*engine.base_argv, *args], input=input, env=env).returncode
        return subprocess.run([*engine.base_argv, *args], env=env).returncode
    except OSError as exc:
        raise PreviewError(f"cannot run the docker client: {exc.strerror}") from exc
    except KeyboardInterrupt:
        return 130


def exec_args(container: str, argv: Sequence[str], *, env_names: Sequence[str] = (), interactive: bool | None = None) -> list[str]:
    """``exec [-i] [-t] [-e NAME]... CONTAINER ARGV`` (a TTY only when both ends are terminals)."""
    tty = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
    args = ["exec", "-i"] + (["-t"] if tty else [])
    for name in env_names:
        args += ["-e", name]
    return [*args, container, *argv]


def service_container(engine: DockerEngine, compose_project: str, service: str, preview: str) -> str:
    """The container id of ``service`` in a preview's compose project."""
    ids = engine.ids("container", {"com.docker.compose.project": compose_project,
                                   "com.docker.compose.service": service})
    if not ids:
        raise PreviewError(f"preview {preview} has no {service!r} container",
                           hint=f"`clonekit list` shows whether it runs; `clonekit refresh {preview}` recreates it")
    return ids[0]
