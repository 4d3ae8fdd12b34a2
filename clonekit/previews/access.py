"""A developer's doors into a running preview: ``exec``, ``logs`` and ``db``.

The default service is the preview's HTTP service (``exec``, ``logs``); ``db`` opens the
database client of the database service with the preview's own credentials (from its 0600
secrets file). Each returns the exit code of what ran, which the CLI passes through.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Config, check_name
from ..db.client import PASSWORD_ENV, client_argv
from ..errors import NotFoundError, PreviewError, UsageError
from ..runtime.attach import exec_args, run_attached, service_container
from ..runtime.docker import DockerEngine
from .plan import SECRETS_FILE, STATE_FILE, preview_dir, preview_engine, read_json


@dataclass(frozen=True)
class RunningPreview:
    """What the doors need of a preview: its compose project and services (from state.json)."""

    name: str
    compose_project: str
    http_service: str
    db_service: str
    state: dict[str, Any]


def running_preview(config: Config, name: str) -> RunningPreview:
    check_name("preview", name)
    state = read_json(preview_dir(config, name) / STATE_FILE)
    if state is None:
        raise NotFoundError(f"no preview named {name!r} in project {config.project}", hint="`clonekit list` shows the previews")
    return RunningPreview(name, str(state["compose_project"]), str(state.get("http_service") or ""),
                          str(state.get("db_service") or ""), state)


def _container(config: Config, engine: DockerEngine, preview: RunningPreview, service: str | None) -> str:
    chosen = service or preview.http_service
    if not chosen:
        raise UsageError(f"preview {preview.name} has no HTTP service: name one with -s SERVICE")
    return service_container(engine, preview.compose_project, chosen, preview.name)


def exec_in(config: Config, name: str, argv: Sequence[str], *, service: str | None = None) -> int:
    """Run ``argv`` in a service of preview ``name`` (default: the HTTP one); its exit code."""
    if not argv:
        raise UsageError("give the command to run after --, e.g. `clonekit exec feature-x -- ls /`")
    preview = running_preview(config, name)
    engine = preview_engine(config, name)
    return run_attached(engine, exec_args(_container(config, engine, preview, service), argv))


def show_logs(config: Config, name: str, *, service: str | None = None, follow: bool = False, tail: int | None = None) -> int:
    """The log of a service of preview ``name`` (default: the HTTP one), followed with ``follow``."""
    preview = running_preview(config, name)
    engine = preview_engine(config, name)
    args = ["logs"] + (["-f"] if follow else []) + (["--tail", str(tail)] if tail is not None else [])
    return run_attached(engine, [*args, _container(config, engine, preview, service)])


def db_client(config: Config, name: str, *, execute: str | None = None) -> int:
    """The database client of preview ``name``: interactive, or run ``execute`` and print the result."""
    preview = running_preview(config, name)
    if not preview.db_service:
        raise PreviewError(f"preview {name} has no database")
    secrets = (read_json(preview_dir(config, name) / SECRETS_FILE) or {}).get("db") or {}
    if not secrets.get("user"):
        raise PreviewError(f"preview {name} has no database credentials in {preview_dir(config, name) / SECRETS_FILE}",
                           hint=f"`clonekit refresh {name}` writes them again")
    engine = preview_engine(config, name)
    container = service_container(engine, preview.compose_project, preview.db_service, name)
    argv = client_argv(secrets["user"], secrets["database"], table=execute is not None)
    env = {PASSWORD_ENV: str(secrets.get("password") or "")}
    if execute is not None:
        args = exec_args(container, argv, env_names=[PASSWORD_ENV], interactive=False)
        return run_attached(engine, args, pass_env=env, input=execute.encode() + b"\n")
    return run_attached(engine, exec_args(container, argv, env_names=[PASSWORD_ENV],
                                          interactive=sys.stdin.isatty()), pass_env=env)
